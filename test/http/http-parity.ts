// HTTP over ktls against https.Server, each scenario run on both in one run
// with node's https client: keep-alive, Connection: close, a client that aborts
// mid-response, a large upload the server refuses early, and close() with
// connections in every state. What each side observes is recorded and compared.
import type { Test } from 'tap';
import { once } from 'node:events';
import * as https from 'node:https';
import type * as http from 'node:http';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import * as ktls from '../../lib/index.js';
import { parity } from '../helpers/parity-log.js';
import { CERTS } from '../helpers/tls.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;
type AnyServer = https.Server | ktls.KtlsHttpsServer;

interface Served {
  server: AnyServer;
  port: number;
  /** What the server side saw, in order. */
  log: string[];
}

const TLS = { host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca };

async function serve(kind: 'https' | 'ktls', handler: Handler, kernel: boolean): Promise<Served> {
  const log: string[] = [];
  const options = { key: CERTS.key, cert: CERTS.cert };
  const server: AnyServer =
    kind === 'https' ? https.createServer(options, handler) : ktls.createHttpsServer({ ...options, ktls: kernel ? {} : { kernel: false } }, handler);
  server.on('secureConnection', (s: net.Socket) => {
    log.push('secureConnection');
    s.on('error', (err: NodeJS.ErrnoException) => log.push(`socket error ${String(err.code)}`));
    s.on('close', (hadError: boolean) => log.push(`socket close ${hadError}`));
  });
  server.on('clientError', (err: NodeJS.ErrnoException) => log.push(`clientError ${String(err.code)}`));
  await new Promise<void>((resolve) => (server as https.Server).listen(0, '127.0.0.1', () => resolve()));
  return { server, port: (server.address() as net.AddressInfo).port, log };
}

function closeServer(s: AnyServer): Promise<void> {
  return new Promise((resolve) => s.close(() => resolve()));
}

interface Reply {
  status: number;
  body: Buffer;
  reused: boolean;
}

function request(port: number, options: https.RequestOptions, body?: (req: http.ClientRequest) => void): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request({ ...TLS, port, ...options }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body) body(req);
    else req.end();
  });
}

/** A scenario: what it does with a server of either kind, returning the client's observations. */
interface HttpScenario {
  name: string;
  members: Parameters<typeof parity>[1];
  handler: Handler;
  client(port: number, served: Served): Promise<string[]>;
  /**
   * Under kernel records, lines ktls's server may log on top of https.Server's, with the reason.
   * Each is a difference found and not fixed yet; the closing note of issue 21 lists it.
   */
  kernelExtra?: { lines: string[]; reason: string };
}

const SCENARIOS: HttpScenario[] = [
  {
    name: 'keep-alive: three requests on one connection, then the agent closes it',
    members: ['Server@secureConnection'],
    handler: (req, res) => res.end(`body of ${String(req.url)}`),
    async client(port, served) {
      const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
      const out: string[] = [];
      for (const p of ['/a', '/b', '/c']) {
        const r = await request(port, { path: p, agent });
        out.push(`${r.status} ${r.body.toString()} reused=${r.reused}`);
      }
      agent.destroy();
      await until(() => served.log.includes('socket close false') || served.log.some((l) => l.startsWith('socket close')));
      return out;
    },
  },
  {
    name: 'Connection: close: five downloads of 4 KiB, each on its own connection',
    members: ['Server@secureConnection', 'Server@tlsClientError'],
    handler: (_req, res) => {
      res.setHeader('Connection', 'close');
      res.end(Buffer.alloc(4096, 0x62));
    },
    async client(port, served) {
      const agent = new https.Agent({ keepAlive: true });
      const out: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await request(port, { path: '/', agent });
        out.push(`${r.status} ${r.body.length} reused=${r.reused}`);
      }
      agent.destroy();
      await until(() => served.log.filter((l) => l.startsWith('socket close')).length === 5);
      return out;
    },
  },
  {
    name: 'a client that aborts mid-response',
    members: ['Server@secureConnection'],
    handler: (_req, res) => {
      let n = 0;
      const timer = setInterval(() => {
        if (res.destroyed || n++ === 32) return void (clearInterval(timer), res.end());
        res.write(Buffer.alloc(64 << 10, 0x63));
      }, 5);
    },
    async client(port, served) {
      const out: string[] = [];
      await new Promise<void>((resolve) => {
        const req = https.request({ ...TLS, port, path: '/', agent: false }, (res) => {
          out.push(`status ${String(res.statusCode)}`);
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', (err: NodeJS.ErrnoException) => out.push(`client error ${String(err.code)}`));
        req.end();
      });
      await until(() => served.log.some((l) => l.startsWith('socket close')));
      return out;
    },
  },
  {
    name: 'a 100 MiB upload that the server answers with 413 and Connection: close without reading',
    members: ['Server@secureConnection'],
    handler: (_req, res) => {
      res.writeHead(413, { Connection: 'close', 'Content-Length': '7' });
      res.end('too big');
    },
    kernelExtra: {
      lines: ['clientError HPE_INVALID_EOF_STATE'],
      reason:
        "under kernel TX, 'finish' waits until TCP has taken every sealed record (tx-flush.ts), so destroySoon() destroys later than on node:tls, " +
        'and the client, which stops uploading once it has the 413, can end first: the http parser then meets EOF mid-body',
    },
    async client(port, served) {
      const out: string[] = [];
      const total = 100 << 20;
      const chunk = Buffer.alloc(1 << 20, 0x64);
      const got = await new Promise<string>((resolve) => {
        const req = https.request({ ...TLS, port, path: '/upload', method: 'POST', agent: false, headers: { 'Content-Length': String(total) } }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve(`response ${String(res.statusCode)} ${body}`));
          res.on('error', () => resolve(`response ${String(res.statusCode)} cut`));
        });
        req.on('error', () => undefined); // the upload itself may fail once the server has closed: not what is compared
        let sent = 0;
        const pump = (): void => {
          while (sent < total && !req.destroyed) {
            sent += chunk.length;
            if (!req.write(chunk)) return void req.once('drain', pump);
          }
          if (!req.destroyed) req.end();
        };
        pump();
      });
      out.push(got);
      await until(() => served.log.some((l) => l.startsWith('socket close')));
      return out;
    },
  },
  {
    name: 'close() with an idle keep-alive connection, a request in flight, a TCP connection with no handshake, and half a request',
    members: ['Server#close'],
    handler: (req, res) => {
      if (req.url === '/slow') {
        res.write('slow,');
        setTimeout(() => res.end('done'), 300);
      } else res.end('quick');
    },
    async client(port, served) {
      const out: string[] = [];
      const idleAgent = new https.Agent({ keepAlive: true });
      out.push(`idle: ${(await request(port, { path: '/', agent: idleAgent })).body.toString()}`);
      const idleSocket = Object.values(idleAgent.freeSockets)[0]?.[0];
      const idleClosed = idleSocket ? once(idleSocket, 'close').then(() => 'closed') : Promise.resolve('none');
      const slow = request(port, { path: '/slow', agent: false });
      const raw = net.connect(port, '127.0.0.1');
      await once(raw, 'connect');
      const rawClosed = once(raw.on('error', () => undefined).resume(), 'close').then(() => 'closed');
      const half = tls.connect({ ...TLS, port });
      await once(half, 'secureConnect');
      half.on('error', () => undefined).write('GET / HTTP/1.1\r\nHost: x\r\n');
      const halfClosed = once(half, 'close').then(() => 'closed');
      await sleep(50);
      let closedAt = '';
      const start = Date.now();
      served.server.close(() => (closedAt = Date.now() - start < 2000 ? 'within 2 s' : 'late'));
      const timeout = (p: Promise<string>, ms: number): Promise<string> => Promise.race([p, sleep(ms).then(() => 'open')]);
      out.push(`idle connection: ${await timeout(idleClosed, 1000)}`);
      out.push(`in flight: ${(await slow).body.toString()}`);
      out.push(`half a request: ${await timeout(halfClosed, 1000)}`);
      out.push(`TCP without a handshake: ${await timeout(rawClosed, 1000)}`);
      // One at a time: the order in which a server notices two connections ending is not what is compared.
      half.destroy();
      await sleep(100);
      raw.destroy();
      idleAgent.destroy();
      await until(() => closedAt !== '', 3000);
      out.push(`close callback: ${closedAt || 'not yet'}`);
      return out;
    },
  },
];

async function until(ok: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok() && Date.now() < end) await sleep(10);
}

/** Runs every scenario on https.Server and KtlsHttpsServer (kernel records where `kernel`) and compares. */
export async function httpParity(t: Test, kernel: boolean): Promise<void> {
  for (const sc of SCENARIOS) {
    await t.test(sc.name, async (t) => {
      const runs: Record<string, string[]> = {};
      for (const kind of ['https', 'ktls'] as const) {
        const served = await serve(kind, sc.handler, kernel);
        const client = await sc.client(served.port, served);
        await closeServer(served.server).catch(() => undefined);
        runs[kind] = [...client, '| server:', ...served.log];
      }
      const extra = kernel ? sc.kernelExtra : undefined;
      const ours = extra ? runs.ktls.filter((l) => !extra.lines.includes(l)) : runs.ktls;
      if (extra && ours.length !== runs.ktls.length) t.comment(`allowed on kernel records: ${extra.lines.join(', ')}: ${extra.reason}`);
      t.same(ours, runs.https, `the same as https.Server: ${runs.https.join(', ')}`);
      parity(t, sc.members);
    });
  }
}
