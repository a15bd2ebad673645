// HTTPS fixtures for the sendFile/createHttpsServer tests: a directory of files
// of awkward sizes, a static server on it, and clients that check every byte.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import type { Test } from 'tap';
import * as ktls from '../../lib/index.js';
import { CERTS, FIXTURES, listening, portOf } from './tls.js';

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Sizes around the 16 KiB record boundary, empty and one byte, over a MiB, and a few random ones. */
export const SIZES = [0, 1, 16383, 16384, 16385, 65536 + 3, 1024 * 1024 + 7, ...Array.from({ length: 3 }, () => 1 + Math.floor(Math.random() * 300_000))];

export interface Fixture {
  name: string;
  size: number;
  data: Buffer;
}

/** A temp directory with one file per size (`f-<size>.bin`), a `hello.txt`, and a subdirectory. */
export function makeFiles(): { dir: string; files: Fixture[]; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-http-'));
  const files: Fixture[] = [];
  for (const size of new Set(SIZES)) {
    const data = randomBytes(size);
    const name = `f-${size}.bin`;
    fs.writeFileSync(path.join(dir, name), data);
    files.push({ name, size, data });
  }
  const hello = Buffer.from('hello over ktls\n');
  fs.writeFileSync(path.join(dir, 'hello.txt'), hello);
  files.push({ name: 'hello.txt', size: hello.length, data: hello });
  fs.mkdirSync(path.join(dir, 'sub'));
  // Files last changed an hour ago: their Last-Modified is a strong validator (If-Range honours it).
  const past = new Date(Date.now() - 3_600_000);
  for (const f of files) fs.utimesSync(path.join(dir, f.name), past, past);
  return { dir, files, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

export interface Served {
  server: ktls.KtlsHttpsServer;
  port: number;
  /** The directory served. */
  root: string;
  /** Every server-side socket a request arrived on, in order. */
  sockets: ktls.KtlsSocket[];
  /** What each sendFile() resolves with (or the error it rejects with), one promise per request. */
  results: Array<Promise<ktls.HttpSendFileResult | Error>>;
}

/** A KtlsHttpsServer serving `root` with ktls.sendFile on 127.0.0.1. */
export async function staticServer(root: string, options: ktls.HttpSendFileOptions = {}, serverOptions: ktls.KtlsHttpsServerOptions = {}): Promise<Served> {
  const sockets: ktls.KtlsSocket[] = [];
  const results: Served['results'] = [];
  const server = ktls.createHttpsServer({ key: CERTS.key, cert: CERTS.cert, ...serverOptions }, (req, res) => {
    sockets.push(req.socket as unknown as ktls.KtlsSocket);
    // Not through URL: it would resolve the '..' segments sendFile must refuse.
    const pathname = decodeURIComponent((req.url ?? '/').split('?')[0]);
    results.push(
      ktls.serveFile(res, pathname, { ...options, root }).catch((err: Error) => {
        if (!res.headersSent) res.writeHead(500).end();
        return err;
      }),
    );
  });
  server.listen(0, '127.0.0.1');
  await listening(server);
  return { server, port: portOf(server), root, sockets, results };
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One HTTPS request with node:https (through `agent` for keep-alive), with an optional body. */
export function request(
  port: number,
  urlPath: string,
  opts: { method?: string; body?: Buffer; headers?: http.OutgoingHttpHeaders; agent?: https.Agent } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        ca: CERTS.ca,
        path: urlPath,
        method: opts.method ?? 'GET',
        headers: opts.headers,
        agent: opts.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/**
 * Writes `text` (one or more requests) on one TLS connection and resolves with
 * every byte the server sent until it closed: a byte-exact view of the wire.
 */
export function rawExchange(port: number, text: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: CERTS.ca }, () => s.write(text));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
}

/**
 * Splits a byte stream into HTTP/1.1 responses framed by Content-Length (no
 * chunked bodies: sendFile never sends them). `headOnly[i]` marks responses to
 * HEAD. Throws on anything left over, so a stray byte after a body fails.
 */
export function parseResponses(wire: Buffer, headOnly: boolean[] = []): Array<{ status: number; headers: Record<string, string>; body: Buffer }> {
  const out: Array<{ status: number; headers: Record<string, string>; body: Buffer }> = [];
  let off = 0;
  while (off < wire.length) {
    const end = wire.indexOf('\r\n\r\n', off);
    if (end < 0) throw new Error(`incomplete response head at byte ${off}: ${JSON.stringify(wire.subarray(off, off + 80).toString('latin1'))}`);
    const lines = wire.subarray(off, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0] ?? '')?.[1]);
    if (!Number.isInteger(status)) throw new Error(`bad status line ${JSON.stringify(lines[0])} at byte ${off}`);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    if (headers['transfer-encoding']) throw new Error('unexpected Transfer-Encoding');
    const len = headOnly[out.length] ? 0 : Number(headers['content-length'] ?? 0);
    const body = wire.subarray(end + 4, end + 4 + len);
    if (body.length !== len) throw new Error(`body cut short: ${body.length} of ${len}`);
    out.push({ status, headers, body });
    off = end + 4 + len;
  }
  return out;
}

/** Response headers every file response carries. */
function checkFileHeaders(t: Test, r: Reply, f: Fixture, what: string): void {
  t.equal(r.headers['accept-ranges'], 'bytes', `${what}: Accept-Ranges`);
  t.equal(r.headers['content-type'], f.name.endsWith('.txt') ? 'text/plain; charset=utf-8' : 'application/octet-stream', `${what}: Content-Type`);
  t.ok(typeof r.headers['last-modified'] === 'string' && !Number.isNaN(Date.parse(r.headers['last-modified'])), `${what}: Last-Modified is a date`);
}

/**
 * The behaviours both suites check, host (whatever records) and kernel:
 * every file byte-exact, HEAD, ranges, 404/403, and keep-alive on one socket.
 * `method` is how sendFile() must have sent file bodies.
 */
export async function checkBasics(t: Test, served: Served, files: Fixture[], method: 'sendfile' | 'stream'): Promise<void> {
  const { port, results, sockets } = served;
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (const f of files) {
      const r = await request(port, `/${f.name}`, { agent });
      t.equal(r.status, 200, `GET ${f.name}: 200`);
      t.equal(r.headers['content-length'], String(f.size), `GET ${f.name}: Content-Length`);
      t.equal(r.body.length, f.size, `GET ${f.name}: body length`);
      t.equal(sha256(r.body), sha256(f.data), `GET ${f.name}: body SHA-256`);
      checkFileHeaders(t, r, f, `GET ${f.name}`);
      const res = await results.at(-1);
      t.match(res, { statusCode: 200, bytes: f.size, method: f.size === 0 ? 'none' : method }, `GET ${f.name}: sent with ${f.size === 0 ? 'no body' : method}`);
    }
    t.equal(new Set(sockets).size, 1, `keep-alive: all ${sockets.length} requests arrived on one server socket`);

    const big = files.find((f) => f.size > 1024 * 1024)!;
    const head = await request(port, `/${big.name}`, { method: 'HEAD', agent });
    t.equal(head.status, 200, 'HEAD: 200');
    t.equal(head.headers['content-length'], String(big.size), 'HEAD: Content-Length of the file');
    t.equal(head.body.length, 0, 'HEAD: no body');
    checkFileHeaders(t, head, big, 'HEAD');
    t.match(await results.at(-1), { statusCode: 200, bytes: 0, method: 'none' }, 'HEAD: no body sent');

    const ranges: Array<[string, number, number]> = [
      ['bytes=0-0', 0, 0],
      ['bytes=100-16484', 100, 16484],
      [`bytes=16380-`, 16380, big.size - 1],
      ['bytes=-500', big.size - 500, big.size - 1],
      [`bytes=5-${big.size + 100}`, 5, big.size - 1],
    ];
    for (const [range, start, end] of ranges) {
      const r = await request(port, `/${big.name}`, { headers: { Range: range }, agent });
      t.equal(r.status, 206, `${range}: 206`);
      t.equal(r.headers['content-range'], `bytes ${start}-${end}/${big.size}`, `${range}: Content-Range`);
      t.equal(r.headers['content-length'], String(end - start + 1), `${range}: Content-Length`);
      t.equal(sha256(r.body), sha256(big.data.subarray(start, end + 1)), `${range}: the slice, byte-exact`);
      t.match(await results.at(-1), { statusCode: 206, bytes: end - start + 1, method }, `${range}: sent with ${method}`);
    }
    for (const range of [`bytes=${big.size}-`, `bytes=${big.size + 10}-${big.size + 20}`, 'bytes=-0']) {
      const r = await request(port, `/${big.name}`, { headers: { Range: range }, agent });
      t.equal(r.status, 416, `${range}: 416`);
      t.equal(r.headers['content-range'], `bytes */${big.size}`, `${range}: Content-Range bytes */size`);
    }
    const empty = files.find((f) => f.size === 0)!;
    t.equal((await request(port, `/${empty.name}`, { headers: { Range: 'bytes=0-' }, agent })).status, 416, 'any range of an empty file: 416');
    for (const [headers, what] of [
      [{ Range: 'bytes=0-1,5-6' }, 'several ranges'],
      [{ Range: 'items=0-1' }, 'another unit'],
      [{ Range: 'bytes=9-3' }, 'a reversed range'],
      [{ Range: 'bytes=0-1', 'If-Range': 'Thu, 01 Jan 1970 00:00:00 GMT' }, 'a stale If-Range'],
    ] as const) {
      const r = await request(port, `/${big.name}`, { headers, agent });
      t.equal(r.status, 200, `${what}: the whole file (200)`);
      t.equal(sha256(r.body), sha256(big.data), `${what}: whole body byte-exact`);
    }
    const lm = head.headers['last-modified'] as string;
    const fresh = await request(port, `/${big.name}`, { headers: { Range: 'bytes=1-2', 'If-Range': lm }, agent });
    t.equal(fresh.status, 206, 'If-Range equal to Last-Modified: the range (206)');

    for (const p of ['/missing.bin', '/sub', '/sub/nothing', '/f-1.bin/x']) {
      const r = await request(port, p, { agent });
      t.equal(r.status, 404, `GET ${p}: 404`);
      t.match(await results.at(-1), { statusCode: 404, method: 'none' });
    }
    const up = await request(port, '/../etc/passwd', { agent });
    t.equal(up.status, 403, 'a .. segment: 403');
    t.equal(new Set(sockets).size, 1, `keep-alive through errors and ranges: still one server socket after ${sockets.length} requests`);
    t.equal(sockets[0].destroyed, false, 'the keep-alive socket is still open');
    t.equal((sockets[0] as ktls.KtlsSocket & { encrypted?: boolean }).encrypted, true, 'req.socket.encrypted (req.protocol https in express/fastify)');
  } finally {
    agent.destroy();
  }
  t.same(
    (await Promise.all(results)).filter((r) => r instanceof Error),
    [],
    'sendFile() never rejected',
  );
}

/**
 * Pipelined requests on one connection (GET, HEAD, GET, GET with
 * Connection: close): the wire must hold exactly those responses, each body
 * exactly Content-Length bytes, nothing before, between or after.
 */
export async function checkPipelined(t: Test, served: Served, files: Fixture[]): Promise<void> {
  const big = files.find((f) => f.size > 1024 * 1024)!;
  const small = files.find((f) => f.size === 16385)!;
  const empty = files.find((f) => f.size === 0)!;
  const req = (method: string, name: string, extra = ''): string => `${method} /${name} HTTP/1.1\r\nHost: localhost\r\n${extra}\r\n`;
  const wire = await rawExchange(
    served.port,
    req('GET', big.name) +
      req('HEAD', small.name) +
      req('GET', empty.name) +
      req('GET', small.name, 'Range: bytes=10-19\r\n') +
      req('GET', small.name, 'Connection: close\r\n'),
  );
  const responses = parseResponses(wire, [false, true, false, false, false]);
  t.same(
    responses.map((r) => r.status),
    [200, 200, 200, 206, 200],
    'five responses, in order, and no stray byte',
  );
  t.equal(sha256(responses[0].body), sha256(big.data), 'pipelined GET: big body byte-exact');
  t.equal(responses[1].headers['content-length'], String(small.size), 'pipelined HEAD: Content-Length');
  t.equal(responses[2].body.length, 0, 'pipelined GET of an empty file');
  t.equal(responses[3].body.toString('hex'), small.data.subarray(10, 20).toString('hex'), 'pipelined range');
  t.equal(sha256(responses[4].body), sha256(small.data), 'pipelined last GET byte-exact');
  t.equal(responses[4].headers.connection, 'close', 'the last response closes the connection');
}

/**
 * A client that goes away in the middle of a large body: sendFile() rejects
 * with a coded error (the connection cannot keep its Content-Length promise),
 * and the server goes on serving new connections.
 */
export async function checkAbort(t: Test, served: Served, files: Fixture[]): Promise<void> {
  const name = 'big-32MiB.bin';
  const dir = served.root;
  fs.writeFileSync(path.join(dir, name), Buffer.alloc(32 * 1024 * 1024, 0x5a));
  try {
    const before = served.results.length;
    await new Promise<void>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: served.port, servername: 'localhost', ca: CERTS.ca }, () =>
        s.write(`GET /${name} HTTP/1.1\r\nHost: localhost\r\n\r\n`),
      );
      s.once('data', () => {
        s.destroy();
        resolve();
      });
      s.on('error', reject);
    });
    const r = await served.results[before];
    t.ok(r instanceof Error, 'sendFile() rejected: the body could not be sent in full');
    t.type((r as Error & { code?: unknown }).code, 'string', `with a code (${(r as Error & { code?: string }).code})`);
    const small = files.find((f) => f.size === 16385)!;
    const again = await request(served.port, `/${small.name}`);
    t.equal(sha256(again.body), sha256(small.data), 'the server still serves new connections');
  } finally {
    fs.rmSync(path.join(dir, name), { force: true });
  }
}

/** Runs curl with the test CA; resolves with its stdout, stderr and exit status. */
export function curl(args: string[]): Promise<{ out: string; err: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['-sS', '--cacert', path.join(FIXTURES, 'ca.pem'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ out, err, code }));
  });
}
