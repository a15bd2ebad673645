// HTTP/2 on ktls.createSecureHttp2Server and on node:http2's createSecureServer,
// each scenario on both in one run: what clients (http2.connect, curl, undici,
// fastify's routes) receive and what the server observes are compared, and the
// ktls side says whether the kernel carried the records.
import type { Test } from 'tap';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import Fastify from 'fastify';
import * as undici from 'undici';
import * as ktls from '../../lib/index.js';
import { fdCount } from '../helpers/connect-cases.js';
import { collect, Collected } from '../helpers/gc.js';
import { curl, sha256 } from '../helpers/http.js';
import { CERTS } from '../helpers/tls.js';

type Kind = 'node' | 'ktls';
const KINDS: Kind[] = ['node', 'ktls'];
type Handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;
type AnyServer = http2.Http2SecureServer | ktls.KtlsHttp2Server;

function makeServer(kind: Kind, kernel: boolean, options: { allowHTTP1?: boolean }, handler?: Handler): AnyServer {
  const opts = { key: CERTS.key, cert: CERTS.cert, ...options };
  const server =
    kind === 'node' ? http2.createSecureServer(opts, handler) : ktls.createSecureHttp2Server({ ...opts, ktls: kernel ? {} : { kernel: false } }, handler);
  return server;
}

async function listen(server: AnyServer): Promise<number> {
  await new Promise<void>((resolve) => (server as { listen(port: number, host: string, cb: () => void): unknown }).listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

const closeServer = (server: AnyServer): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

function connect(port: number): http2.ClientHttp2Session {
  return http2.connect(`https://localhost:${port}`, { ca: CERTS.ca, host: '127.0.0.1' });
}

interface Got {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** One request on a session, its whole response. */
async function get(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer): Promise<Got> {
  const req = session.request(headers, { endStream: body === undefined });
  if (body !== undefined) req.end(body);
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  const ended = once(req, 'end');
  const [head] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
  await ended;
  return { status: Number(head[':status']), headers: head, body: Buffer.concat(chunks) };
}

/** Whether the kernel carried a ktls connection's records, from the server's side (`undefined` on node:http2). */
function kernelOf(req: { socket: unknown }): boolean | undefined {
  return (req.socket as { kernel?: boolean }).kernel;
}

export async function h2Scenarios(t: Test, kernel: boolean): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-h2-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const big = Buffer.alloc(1024 * 1024 + 77);
  for (let i = 0; i < big.length; i++) big[i] = (i * 131 + (i >> 9)) & 0xff;
  fs.writeFileSync(path.join(dir, 'big.bin'), big);

  /** The routes every scenario's server has; `seen` collects what the server observes. */
  const routes =
    (seen: string[]): Handler =>
    (req, res) => {
      const url = req.url;
      if (url.startsWith('/json/')) {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ n: Number(url.slice(6)), version: req.httpVersion, kernel: kernelOf(req) }));
      } else if (url === '/file') {
        req.stream.respondWithFile(path.join(dir, 'big.bin'), { 'content-type': 'application/octet-stream' });
      } else if (url === '/serve') {
        void ktls.serveFile(res, 'big.bin', { root: dir }).then(
          (r) => seen.push(`serveFile ${r.statusCode} ${r.method} ${r.bytes}`),
          (err: NodeJS.ErrnoException) => seen.push(`serveFile rejected ${String(err.code)}`),
        );
      } else if (url === '/upload') {
        const hash = (async () => {
          const chunks: Buffer[] = [];
          for await (const c of req) chunks.push(c as Buffer);
          return Buffer.concat(chunks);
        })();
        void hash.then((b) => res.end(`${b.length} ${sha256(b)}`));
      } else if (url === '/endless') {
        const chunk = Buffer.alloc(16 * 1024, 7);
        const pump = (): void => {
          while (!res.stream.destroyed && res.write(chunk));
          if (!res.stream.destroyed) res.once('drain', pump);
        };
        req.stream.on('close', () => seen.push(`endless closed rstCode ${req.stream.rstCode}`));
        pump();
      } else if (url === '/slow') {
        seen.push('slow request');
        setTimeout(() => res.end('slow done'), 100);
      } else {
        res.statusCode = 404;
        res.end();
      }
    };

  await t.test('http2.connect: 64 concurrent streams, respondWithFile of 1 MiB, serveFile with ranges and validators, as node:http2', async (t) => {
    const runs: Record<Kind, unknown> = { node: null, ktls: null };
    for (const kind of KINDS) {
      const seen: string[] = [];
      const server = makeServer(kind, kernel, {}, routes(seen));
      const session = connect(await listen(server));
      const many = await Promise.all(Array.from({ length: 64 }, (_, i) => get(session, { ':path': `/json/${i}` })));
      const jsons = many.map((g) => JSON.parse(g.body.toString()) as { n: number; version: string; kernel?: boolean });
      if (kind === 'ktls')
        t.ok(
          jsons.every((j) => j.kernel === kernel),
          `every stream's connection is on ${kernel ? 'kernel' : 'userspace'} records`,
        );
      const file = await get(session, { ':path': '/file' });
      const whole = await get(session, { ':path': '/serve' });
      const ranged = await get(session, { ':path': '/serve', range: 'bytes=10-1000009' });
      const notModified = await get(session, { ':path': '/serve', 'if-none-match': String(whole.headers.etag) });
      const past = await get(session, { ':path': '/serve', range: `bytes=${big.length + 5}-` });
      session.close();
      await once(session, 'close');
      await closeServer(server);
      t.equal(sha256(file.body), sha256(big), `${kind}: respondWithFile delivers the file`);
      t.equal(sha256(ranged.body), sha256(big.subarray(10, 1000010)), `${kind}: serveFile's range is the file's bytes`);
      runs[kind] = {
        streams: jsons.map((j) => `${j.n} ${j.version}`),
        file: [file.status, file.body.length, file.headers['content-type']],
        whole: [whole.status, sha256(whole.body) === sha256(big), whole.headers['content-length'], whole.headers['accept-ranges']],
        ranged: [ranged.status, ranged.headers['content-range'], ranged.headers['content-length']],
        notModified: [notModified.status, notModified.body.length],
        past: [past.status, past.headers['content-range']],
        seen: seen.sort(),
      };
    }
    t.same(runs.ktls, runs.node, 'ktls serves what node:http2 serves');
  });

  await t.test('a 16 MiB upload through HTTP/2 flow control arrives whole', async (t) => {
    const body = Buffer.alloc(16 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 4096) body.writeUInt32LE(i, i);
    const answers: Record<Kind, string> = { node: '', ktls: '' };
    for (const kind of KINDS) {
      const server = makeServer(kind, kernel, {}, routes([]));
      const session = connect(await listen(server));
      answers[kind] = (await get(session, { ':path': '/upload', ':method': 'POST' }, body)).body.toString();
      session.close();
      await closeServer(server);
    }
    t.equal(answers.ktls, `${body.length} ${sha256(body)}`, 'the server read every byte');
    t.equal(answers.ktls, answers.node, 'as on node:http2');
  });

  await t.test('a client that resets streams mid-body: the server sees each reset, the session goes on', async (t) => {
    const runs: Record<Kind, unknown> = { node: null, ktls: null };
    for (const kind of KINDS) {
      const seen: string[] = [];
      const server = makeServer(kind, kernel, {}, routes(seen));
      const session = connect(await listen(server));
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          const req = session.request({ ':path': '/endless' });
          await once(req, 'data');
          req.close(http2.constants.NGHTTP2_CANCEL);
          await once(req, 'close');
        }),
      );
      // A file being served, reset after its first bytes: serveFile rejects, naming the reset.
      const served = session.request({ ':path': '/serve' });
      await once(served, 'data');
      served.close(http2.constants.NGHTTP2_CANCEL);
      await once(served, 'close');
      await new Promise((resolve) => setTimeout(resolve, 100));
      const after = await get(session, { ':path': '/json/1' });
      session.close();
      await once(session, 'close');
      await closeServer(server);
      runs[kind] = { seen: seen.sort(), after: after.status };
    }
    t.equal((runs.ktls as { seen: string[] }).seen.filter((l) => l.startsWith('endless')).length, 10, 'ktls: ten resets seen');
    t.ok(
      (runs.ktls as { seen: string[] }).seen.includes('serveFile rejected ERR_HTTP2_STREAM_CANCEL'),
      'serveFile of a reset stream rejects with ERR_HTTP2_STREAM_CANCEL',
    );
    t.same(runs.ktls, runs.node, 'as on node:http2');
  });

  await t.test('close(): the stream in flight finishes, GOAWAY from session.close(), then the close callback', async (t) => {
    const runs: Record<Kind, string[]> = { node: [], ktls: [] };
    for (const kind of KINDS) {
      const log = runs[kind];
      const server = makeServer(kind, kernel, {}, routes(log));
      const sessionEnds: Array<Promise<void>> = [];
      const open = new Set<http2.ServerHttp2Session>();
      server.on('session', (s: http2.ServerHttp2Session) => {
        open.add(s);
        sessionEnds.push(new Promise((resolve) => s.on('close', () => resolve(void log.push('server session close')))));
      });
      const port = await listen(server);
      const session = connect(port);
      session.on('goaway', (code: number) => log.push(`client goaway ${code}`));
      const slow = get(session, { ':path': '/slow' });
      await new Promise((resolve) => setTimeout(resolve, 30));
      const closed = new Promise<void>((resolve) => server.close(() => (log.push('server close callback'), resolve())));
      log.push(`in flight: ${(await slow).body.toString()}`);
      const refused = await new Promise<string>((resolve) => {
        const s = connect(port);
        s.on('error', (err: NodeJS.ErrnoException) => resolve(String(err.code)));
      });
      log.push(`new connection: ${refused}`);
      // The server ends its sessions with GOAWAY, as an application does at shutdown.
      for (const s of open) if (!s.closed) s.close();
      await closed;
      log.push(`client closed: ${session.closed}`);
      await Promise.all(sessionEnds);
    }
    t.ok(runs.ktls.includes('client goaway 0'), 'ktls: the client got GOAWAY');
    t.same(runs.ktls, runs.node, 'as on node:http2');
  });

  await t.test('allowHTTP1: curl --http2 and --http1.1, undici with allowH2, on one server as on node:http2', async (t) => {
    const runs: Record<Kind, string[]> = { node: [], ktls: [] };
    for (const kind of KINDS) {
      const server = makeServer(kind, kernel, { allowHTTP1: true }, routes([]));
      const port = await listen(server);
      const url = `https://localhost:${port}/json/5`;
      for (const v of ['--http2', '--http1.1']) {
        const r = await curl([v, '--resolve', `localhost:${port}:127.0.0.1`, '-w', ' %{http_version}', url]);
        const [json, version] = [r.out.slice(0, r.out.lastIndexOf(' ')), r.out.slice(r.out.lastIndexOf(' ') + 1)];
        const parsed = JSON.parse(json) as { version: string; kernel?: boolean };
        if (kind === 'ktls') t.equal(parsed.kernel, kernel, `curl ${v}: the connection is on ${kernel ? 'kernel' : 'userspace'} records`);
        runs[kind].push(`curl ${v}: exit ${r.code}, HTTP ${version}, server saw ${parsed.version}`);
      }
      const agent = new undici.Agent({ allowH2: true, connect: { ca: CERTS.ca, servername: 'localhost' } });
      const res = await undici.request(`https://127.0.0.1:${port}/json/6`, { dispatcher: agent });
      runs[kind].push(`undici allowH2: ${res.statusCode} ${(JSON.parse(await res.body.text()) as { version: string }).version}`);
      await agent.close();
      await closeServer(server);
    }
    t.same(runs.ktls, runs.node, 'as on node:http2');
    t.ok(runs.ktls.some((l) => l.includes('HTTP 2, server saw 2.0')) && runs.ktls.some((l) => l.includes('HTTP 1.1, server saw 1.1')), 'both protocols served');
  });

  await t.test('fastify with http2: true (serverFactory) serves h2 and HTTP/1.1 as fastify on node:http2', async (t) => {
    const runs: Record<Kind, string[]> = { node: [], ktls: [] };
    for (const kind of KINDS) {
      const https2 = { key: CERTS.key, cert: CERTS.cert, allowHTTP1: true };
      const app =
        kind === 'node'
          ? Fastify({ http2: true, https: https2 })
          : Fastify({
              http2: true,
              https: https2,
              serverFactory: (handler) =>
                ktls.createSecureHttp2Server({ ...https2, ktls: kernel ? {} : { kernel: false } }, handler) as unknown as http2.Http2SecureServer,
            });
      app.get('/hello', async (req) => ({ version: req.raw.httpVersion, kernel: kernelOf(req.raw) }));
      await app.listen({ port: 0, host: '127.0.0.1' });
      const port = (app.server.address() as { port: number }).port;
      const session = connect(port);
      const h2 = JSON.parse((await get(session, { ':path': '/hello' })).body.toString()) as { version: string; kernel?: boolean };
      session.close();
      const h1 = await new Promise<string>((resolve, reject) =>
        https
          .get({ host: '127.0.0.1', servername: 'localhost', port, path: '/hello', ca: CERTS.ca, agent: false }, (res) => {
            let b = '';
            res.on('data', (d: Buffer) => (b += d.toString()));
            res.on('end', () => resolve(b));
          })
          .on('error', reject),
      );
      if (kind === 'ktls') t.equal(h2.kernel, kernel, `fastify's h2 connection is on ${kernel ? 'kernel' : 'userspace'} records`);
      runs[kind].push(`h2 ${h2.version}`, `h1 ${(JSON.parse(h1) as { version: string }).version}`);
      await app.close();
    }
    t.same(runs.ktls, runs.node, 'as on node:http2');
  });

  await t.test('without allowHTTP1: a client without ALPN gets unknownProtocol, an HTTP/1.1-only one fails its handshake', async (t) => {
    const runs: Record<Kind, string[]> = { node: [], ktls: [] };
    for (const kind of KINDS) {
      const server = makeServer(kind, kernel, {});
      server.on('unknownProtocol', (s: tls.TLSSocket) => (runs[kind].push(`unknownProtocol alpn ${String(s.alpnProtocol)}`), s.destroy()));
      const port = await listen(server);
      const plain = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: CERTS.ca });
      plain.resume();
      await once(plain, 'close');
      const h1only = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: CERTS.ca, ALPNProtocols: ['http/1.1'] });
      const [err] = (await once(h1only, 'error')) as [NodeJS.ErrnoException];
      runs[kind].push(`http/1.1-only client: ${String(err.code)}`);
      await closeServer(server);
    }
    t.same(runs.ktls, runs.node, 'as on node:http2');
    t.equal(runs.ktls.length, 2, 'both clients were answered');
  });

  await t.test('30 HTTP/2 sessions opened and closed: every fd released, every server socket and session collected', async (t) => {
    const collected = new Collected();
    const server = makeServer('ktls', kernel, {}, routes([]));
    server.on('session', (session: http2.ServerHttp2Session) => collected.track(session));
    (server as ktls.KtlsHttp2Server).tls.on('secureConnection', (s: ktls.KtlsSocket) => collected.track(s));
    const port = await listen(server);
    // One session first: what the server sets up once (the h2 server's state, the addon) is not growth.
    const warm = connect(port);
    await get(warm, { ':path': '/json/0' });
    warm.close();
    await once(warm, 'close');
    const fds = fdCount();
    for (let i = 0; i < 30; i++) {
      const session = connect(port);
      const got = await get(session, { ':path': `/json/${i}` });
      t.equal(got.status, 200);
      if (i % 2) session.destroy();
      else session.close();
      await once(session, 'close');
    }
    await closeServer(server);
    await collect(collected);
    t.equal(fdCount(), fds - 1, 'every fd of the 30 sessions released (and the listener closed)');
    t.ok(collected.finalized >= collected.tracked - 2, `server sockets and sessions collected (${collected.finalized} of ${collected.tracked})`);
  });
}
