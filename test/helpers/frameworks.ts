// express and fastify on ktls.createHttpsServer, end to end: the routes each
// framework test mounts (static files through ktls.serveFile, a JSON API, a
// streamed upload, a slow response) and the checks both run with curl, undici
// and node:https as clients.
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import type * as http from 'node:http';

import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Test } from 'tap';
import * as undici from 'undici';
import * as ktls from '../../lib/index.js';
import { curl, request, sha256 } from './http.js';
import { CERTS } from './tls.js';
import { parity } from './parity-log.js';

/** Size of the upload each framework streams to disk. */
export const UPLOAD_SIZE = 100 * 1024 * 1024;
/** The slow route's body: half, a pause, then the other half. */
export const SLOW_HALF = 256 * 1024;
const SLOW_PAUSE_MS = 800;

/** Files for the static route, an upload directory, and the 100 MiB upload source with its SHA-256. */
export interface Fixtures {
  dir: string;
  staticDir: string;
  uploadDir: string;
  files: Array<{ name: string; data: Buffer }>;
  upload: { path: string; sha256: string };
  cleanup(): void;
}

export function makeFixtures(): Fixtures {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-fw-'));
  const staticDir = path.join(dir, 'static');
  const uploadDir = path.join(dir, 'uploads');
  fs.mkdirSync(staticDir);
  fs.mkdirSync(uploadDir);
  const files = [1, 16385, 1024 * 1024 + 7].map((size) => ({ name: `f-${size}.bin`, data: randomBytes(size) }));
  for (const f of files) fs.writeFileSync(path.join(staticDir, f.name), f.data);
  // 100 MiB: one random MiB, each copy stamped with its index so no two MiB are alike.
  const block = randomBytes(1024 * 1024);
  const hash = createHash('sha256');
  const uploadPath = path.join(dir, 'upload.bin');
  const fd = fs.openSync(uploadPath, 'w');
  for (let i = 0; i < UPLOAD_SIZE / block.length; i++) {
    block.writeUInt32BE(i, 0);
    hash.update(block);
    fs.writeSync(fd, block);
  }
  fs.closeSync(fd);
  return {
    dir,
    staticDir,
    uploadDir,
    files,
    upload: { path: uploadPath, sha256: hash.digest('hex') },
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** What the server side saw: every request's socket, serveFile's results, the slow route's start. */
export class ServerLog {
  sockets: ktls.KtlsSocket[] = [];
  served: ktls.ServeFileResult[] = [];
  /** The slow route's response has finished (its last byte handed to the socket). */
  slowFinished = false;
  #slow: Array<() => void> = [];

  /** Records a request's socket. */
  saw(req: http.IncomingMessage): void {
    this.sockets.push(req.socket as unknown as ktls.KtlsSocket);
  }

  /** Resolves when the slow route has sent its first half. */
  slowStarted(): Promise<void> {
    return new Promise((resolve) => this.#slow.push(resolve));
  }

  /** The slow route: half the body, a pause, the rest. */
  slow(res: http.ServerResponse): void {
    this.slowFinished = false;
    res.once('finish', () => (this.slowFinished = true));
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': 2 * SLOW_HALF });
    res.write(Buffer.alloc(SLOW_HALF, 1));
    for (const f of this.#slow.splice(0)) f();
    setTimeout(() => res.end(Buffer.alloc(SLOW_HALF, 2)), SLOW_PAUSE_MS);
  }

  /** Streams a request body to a new file under `dir`; resolves with its size and the SHA-256 of the file on disk. */
  async upload(req: http.IncomingMessage, dir: string): Promise<{ bytes: number; sha256: string; path: string }> {
    const file = path.join(dir, `upload-${this.sockets.length}.bin`);
    await pipeline(req, fs.createWriteStream(file));
    const hash = createHash('sha256');
    await pipeline(fs.createReadStream(file), hash);
    return { bytes: fs.statSync(file).size, sha256: hash.digest('hex'), path: file };
  }

  /** The JSON route's answer. */
  static json(body: unknown, socket: ktls.KtlsSocket): { sum: number; count: number; kernel: boolean } {
    const n = (body as { n?: unknown }).n;
    const list = Array.isArray(n) ? n.map(Number) : [];
    return { sum: list.reduce((a, b) => a + b, 0), count: list.length, kernel: socket.kernel };
  }
}

/** An undici Agent that trusts the test CA and names `localhost` (the certificate's name) while dialling 127.0.0.1. */
export function undiciAgent(options: undici.Agent.Options = {}): undici.Agent {
  return new undici.Agent({ ...options, connect: { ca: CERTS.ca, servername: 'localhost' } });
}

/** The running app under test: its port, the KtlsHttpsServer under it, how the framework closes it. */
export interface App {
  port: number;
  server: ktls.KtlsHttpsServer;
  log: ServerLog;
  close(): Promise<void>;
}

/** Static files through ktls.serveFile with curl (several URLs, one connection), undici and node:https. */
export async function checkStatic(t: Test, app: App, fx: Fixtures, tmp: string): Promise<void> {
  const base = `https://localhost:${app.port}`;
  const args = ['--resolve', `localhost:${app.port}:127.0.0.1`, '-w', '%{http_code} %{size_download} %{num_connects}\\n'];
  for (const f of fx.files) args.push('-o', path.join(tmp, `curl-${f.name}`), `${base}/static/${f.name}`);
  const before = app.log.sockets.length;
  const r = await curl(args);
  t.equal(r.code, 0, `curl exit status 0 ${r.err}`);
  const lines = r.out.trim().split('\n');
  fx.files.forEach((f, i) => {
    t.equal(lines[i], `200 ${f.data.length} ${i === 0 ? 1 : 0}`, `curl ${f.name}: 200, ${f.data.length} bytes, ${i === 0 ? 'new' : 'reused'} connection`);
    t.equal(sha256(fs.readFileSync(path.join(tmp, `curl-${f.name}`))), sha256(f.data), `curl ${f.name}: byte-exact`);
  });
  t.equal(new Set(app.log.sockets.slice(before)).size, 1, "curl's requests all arrived on one server socket");

  const agent = undiciAgent();
  try {
    for (const f of fx.files) {
      const res = await undici.request(`https://127.0.0.1:${app.port}/static/${f.name}`, { dispatcher: agent });
      const body = Buffer.from(await res.body.arrayBuffer());
      t.equal(res.statusCode, 200);
      t.equal(sha256(body), sha256(f.data), `undici ${f.name}: byte-exact`);
    }
  } finally {
    await agent.close();
  }
  const big = fx.files[fx.files.length - 1];
  const viaHttps = await request(app.port, `/static/${big.name}`);
  t.equal(sha256(viaHttps.body), sha256(big.data), 'node:https: byte-exact');
  const missing = await request(app.port, '/static/nope.bin');
  t.equal(missing.status, 404, 'a missing file: 404');

  const sent = app.log.served.filter((s) => s.statusCode === 200);
  t.equal(sent.length, fx.files.length * 2 + 1, 'every 200 came from ktls.serveFile');
  t.ok(
    sent.every((s) => s.method === 'sendfile'),
    'every body went out with KtlsSocket#sendFile (sendfile(2) into kTLS)',
  );
  t.ok(
    app.log.sockets.every((s) => s.kernel === true),
    'every server-side socket seals and opens records in the kernel',
  );
  parity(t, 'https.createServer', { kernel: app.log.sockets.length > 0 && app.log.sockets.every((s) => s.kernel) });
}

/** POST JSON, get JSON back: undici.fetch and node:https. */
export async function checkJson(t: Test, app: App): Promise<void> {
  const agent = undiciAgent();
  try {
    const res = await undici.fetch(`https://127.0.0.1:${app.port}/api/sum`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ n: [1, 2, 3, 4.5] }),
      dispatcher: agent,
    });
    t.equal(res.status, 200);
    t.match(res.headers.get('content-type'), /^application\/json/);
    t.same(await res.json(), { sum: 10.5, count: 4, kernel: true }, 'undici.fetch: the JSON answer');
  } finally {
    await agent.close();
  }
  const body = Buffer.from(JSON.stringify({ n: Array.from({ length: 5000 }, (_, i) => i) }));
  const r = await request(app.port, '/api/sum', { method: 'POST', body, headers: { 'content-type': 'application/json', 'content-length': body.length } });
  t.equal(r.status, 200);
  t.same(JSON.parse(r.body.toString()), { sum: (4999 * 5000) / 2, count: 5000, kernel: true }, 'node:https: a 24 KB JSON body, answered');
}

/** Several requests through one keep-alive connection land on one server socket. */
export async function checkKeepAlive(t: Test, app: App, fx: Fixtures): Promise<void> {
  const agent = undiciAgent({ connections: 1 });
  const before = app.log.sockets.length;
  try {
    for (let i = 0; i < 6; i++) {
      const res = await (i % 2 === 0
        ? undici.request(`https://127.0.0.1:${app.port}/static/${fx.files[0].name}`, { dispatcher: agent })
        : undici.request(`https://127.0.0.1:${app.port}/api/sum`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ n: [i] }),
            dispatcher: agent,
          }));
      await res.body.arrayBuffer();
      t.equal(res.statusCode, 200, `request ${i + 1}: 200`);
    }
  } finally {
    await agent.close();
  }
  const used = app.log.sockets.slice(before);
  t.equal(used.length, 6);
  t.equal(new Set(used).size, 1, 'six requests, one server socket');
  t.equal(used[0].kernel, true, 'in the kernel');
}

/** A 100 MiB upload streamed to disk: the file on disk has the SHA-256 of what was sent. */
export async function checkUpload(t: Test, app: App, fx: Fixtures, client: 'curl' | 'undici'): Promise<void> {
  let reply: { bytes: number; sha256: string; path: string };
  const started = Date.now();
  if (client === 'curl') {
    const r = await curl([
      '--resolve',
      `localhost:${app.port}:127.0.0.1`,
      '-T',
      fx.upload.path,
      '-H',
      'content-type: application/octet-stream',
      `https://localhost:${app.port}/upload`,
    ]);
    t.equal(r.code, 0, `curl -T exit status 0 ${r.err}`);
    reply = JSON.parse(r.out) as typeof reply;
  } else {
    const agent = undiciAgent();
    try {
      const res = await undici.request(`https://127.0.0.1:${app.port}/upload`, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(UPLOAD_SIZE) },
        body: fs.createReadStream(fx.upload.path),
        dispatcher: agent,
      });
      t.equal(res.statusCode, 200);
      reply = (await res.body.json()) as typeof reply;
    } finally {
      await agent.close();
    }
  }
  t.comment(`${client}: 100 MiB upload in ${Date.now() - started} ms`);
  t.equal(reply.bytes, UPLOAD_SIZE, 'the file on disk has every byte');
  t.equal(reply.sha256, fx.upload.sha256, 'SHA-256 of the file on disk equals the body sent');
  const onDisk = createHash('sha256');
  await pipeline(fs.createReadStream(reply.path), onDisk);
  t.equal(onDisk.digest('hex'), fx.upload.sha256, 'and read back here');
  fs.rmSync(reply.path);
  t.equal(app.log.sockets[app.log.sockets.length - 1].kernel, true, 'received through kernel RX');
}

/**
 * Graceful shutdown: close while a slow response is in flight. The response
 * finishes with its whole body, new connections are refused, and the close
 * callback fires.
 */
export async function checkGracefulClose(t: Test, app: App): Promise<void> {
  const started = app.log.slowStarted();
  const slow = request(app.port, '/slow');
  await started;
  let closedEarly = false;
  const closed = app.close().then(() => void (closedEarly = !app.log.slowFinished));
  // The listening socket goes at once; the busy connection stays until its response ends.
  const refused = await new Promise<string>((resolve) => {
    const c = net.connect(app.port, '127.0.0.1');
    c.once('connect', () => (c.destroy(), resolve('connected')));
    c.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
  t.equal(refused, 'ECONNREFUSED', 'a new connection is refused once close() is called');
  const r = await slow;
  t.equal(r.status, 200, 'the request in flight got its answer');
  t.equal(r.body.length, 2 * SLOW_HALF, 'with its full body');
  t.ok(r.body.subarray(0, SLOW_HALF).every((b) => b === 1) && r.body.subarray(SLOW_HALF).every((b) => b === 2), 'byte-exact');
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    closed.then(() => 'closed'),
    new Promise<string>((resolve) => (timer = setTimeout(() => resolve('close callback not called within 10 s'), 10_000))),
  ]);
  clearTimeout(timer);
  t.equal(outcome, 'closed', 'the close callback fired');
  t.equal(closedEarly, false, 'not before the server had finished the response in flight (https.Server: once every connection has closed)');
  t.equal(app.server.listening, false, 'not listening');
}
