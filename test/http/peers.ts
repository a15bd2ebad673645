// Peers nobody here wrote, against node:tls/https.Server and against ktls in one
// run: curl downloading with Connection: close and with keep-alive, and
// OpenSSL's s_client writing a line and leaving. What the server side observes
// (events, errors, bytes) and what the peer prints must be the same on both.
import type { Test } from 'tap';
import { execFile } from 'node:child_process';
import * as https from 'node:https';
import type * as http from 'node:http';
import type * as net from 'node:net';
import * as tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import * as ktls from '../../lib/index.js';
import { CERTS, FIXTURES } from '../helpers/tls.js';

type Kind = 'node' | 'ktls';
const TLS = { key: CERTS.key, cert: CERTS.cert };
const CA = `${FIXTURES}/ca.pem`;

function run(cmd: string, args: string[], input?: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 20_000, maxBuffer: 1 << 24 }, (err, stdout) =>
      resolve({ code: err ? Number((err as NodeJS.ErrnoException & { code?: unknown }).code ?? 1) || 1 : 0, out: stdout }),
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Server-side events of every connection, in order of the connections. */
function watch(server: tls.Server | ktls.KtlsServer | https.Server | ktls.KtlsHttpsServer, log: string[]): void {
  (server as tls.Server).on('secureConnection', (s: net.Socket) => {
    const i = log.filter((l) => l.startsWith('#')).length;
    log.push(`#${i} secureConnection`);
    s.on('error', (err: NodeJS.ErrnoException) => log.push(`#${i} error ${String(err.code)} ${String(err.syscall)}`));
    s.on('close', (hadError: boolean) => log.push(`#${i} close ${hadError}`));
  });
}

async function listen(server: tls.Server | ktls.KtlsServer | https.Server | ktls.KtlsHttpsServer): Promise<number> {
  await new Promise<void>((resolve) => (server as tls.Server).listen(0, '127.0.0.1', () => resolve()));
  return (server.address() as net.AddressInfo).port;
}

function closeAll(server: { close(cb: () => void): unknown }): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

async function settle(log: string[], closes: number): Promise<void> {
  const end = Date.now() + 3000;
  while (log.filter((l) => / close /.test(l)).length < closes && Date.now() < end) await sleep(10);
  await sleep(50);
}

const handler = (body: Buffer, close: boolean) => (_req: http.IncomingMessage, res: http.ServerResponse) => {
  if (close) res.setHeader('Connection', 'close');
  res.end(body);
};

function httpsServer(kind: Kind, h: http.RequestListener, kernel: boolean): https.Server | ktls.KtlsHttpsServer {
  return kind === 'node' ? https.createServer(TLS, h) : ktls.createHttpsServer({ ...TLS, ktls: kernel ? {} : { kernel: false } }, h);
}

/** Each peer scenario on node:tls and on ktls (kernel records where `kernel`), compared. */
export async function peers(t: Test, kernel: boolean): Promise<void> {
  const body = Buffer.alloc(4096, 0x65);
  await t.test("curl, 20 downloads of 4 KiB with Connection: close: no server socket sees an 'error'", async (t) => {
    const runs: Record<Kind, string[]> = { node: [], ktls: [] };
    for (const kind of ['node', 'ktls'] as const) {
      const server = httpsServer(kind, handler(body, true), kernel);
      const log: string[] = [];
      watch(server, log);
      const port = await listen(server);
      const results: string[] = [];
      for (let i = 0; i < 20; i++) {
        const r = await run('curl', ['-sS', '--cacert', CA, '--resolve', `localhost:${port}:127.0.0.1`, `https://localhost:${port}/`]);
        results.push(`curl ${r.code} ${r.out.length}`);
      }
      await settle(log, 20);
      await closeAll(server);
      runs[kind] = [...new Set(results), ...new Set(log.map((l) => l.replace(/^#\d+ /, '')))];
    }
    t.same(runs.ktls, runs.node, `the same as https.Server: ${runs.node.join(', ')}`);
  });

  await t.test('curl, three downloads on one keep-alive connection', async (t) => {
    const runs: Record<Kind, string[]> = { node: [], ktls: [] };
    for (const kind of ['node', 'ktls'] as const) {
      const server = httpsServer(kind, handler(body, false), kernel);
      const log: string[] = [];
      watch(server, log);
      const port = await listen(server);
      const url = `https://localhost:${port}/`;
      const r = await run('curl', ['-sS', '--cacert', CA, '--resolve', `localhost:${port}:127.0.0.1`, url, url, url]);
      await settle(log, 1);
      await closeAll(server);
      runs[kind] = [`curl ${r.code} ${r.out.length}`, ...log];
    }
    t.same(runs.ktls, runs.node, `the same as https.Server: ${runs.node.join(', ')}`);
  });

  await t.test('openssl s_client writes a line and leaves: the server reads it and sees the end', async (t) => {
    const runs: Record<Kind, string[]> = { node: [], ktls: [] };
    for (const kind of ['node', 'ktls'] as const) {
      const log: string[] = [];
      const onSocket = (s: net.Socket): void => {
        let got = '';
        s.setEncoding('utf8');
        s.on('data', (d: string) => (got += d));
        s.on('end', () => log.push(`end after ${JSON.stringify(got)}`));
        s.on('finish', () => log.push('finish'));
      };
      const server =
        kind === 'node'
          ? tls.createServer(TLS, onSocket)
          : ktls.createServer({ ...TLS, ktls: kernel ? {} : { kernel: false } }, (s) => onSocket(s as unknown as net.Socket));
      watch(server, log);
      const port = await listen(server);
      const r = await run(
        'openssl',
        ['s_client', '-quiet', '-no_ign_eof', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', CA],
        'hello from s_client\n',
      );
      await settle(log, 1);
      await closeAll(server);
      runs[kind] = [`s_client exit ${r.code}`, ...log];
    }
    t.same(runs.ktls, runs.node, `the same as node:tls: ${runs.node.join(', ')}`);
  });
}
