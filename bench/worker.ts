// A benchmark worker process. The bench forks two of them, a sender/client and
// a receiver/server, and drives them over IPC so that every contender runs in
// the same pair of processes, one at a time, with CPU counted per side.
import { EventEmitter } from 'node:events';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as readline from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import * as tls from 'node:tls';
import * as ktls from '../lib/index.js';
import type { KtlsSocket } from '../lib/socket.js';
import { CACHE, FIXTURES, cpuNow, cpuSince, nowNs, percentile, procCpu, type Cpu } from './common.js';
import { plainKtlsSocket, plainSocketMode, segments, synData, zc, zmod, type TcpInfoLike } from './features.js';

const CERTS = {
  ca: fs.readFileSync(path.join(FIXTURES, 'ca.pem')),
  key: fs.readFileSync(path.join(FIXTURES, 'server.key')),
  cert: fs.readFileSync(path.join(FIXTURES, 'server.pem')),
};
export const CBENCH = path.join(CACHE, 'cbench');

/** Hex keys of both directions: ab = sender→receiver (client→server). */
export interface WireKeys {
  ab: { key: string; iv: string };
  ba: { key: string; iv: string };
}

function secrets(keys: WireKeys, side: 'a' | 'b'): ktls.TlsSecrets {
  const d = (k: { key: string; iv: string }): ktls.DirectionSecrets => ({ key: Buffer.from(k.key, 'hex'), iv: Buffer.from(k.iv, 'hex'), seq: 0n });
  return side === 'a' ? { version: 'TLSv1.3', cipher: 'aes-128-gcm', tx: d(keys.ab), rx: d(keys.ba) } : { version: 'TLSv1.3', cipher: 'aes-128-gcm', tx: d(keys.ba), rx: d(keys.ab) };
}

interface Listener {
  once(ev: 'error', cb: (err: Error) => void): unknown;
  listen(...args: never[]): unknown;
  address(): ReturnType<net.Server['address']>;
}

function listen(server: Listener): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    (server.listen as (p: number, h: string, cb: () => void) => unknown).call(server, 0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

function connectNet(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => resolve(s)).once('error', reject);
  });
}

function connectTls(port: number, extra: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const t = tls.connect({ port, host: '127.0.0.1', ca: CERTS.ca, servername: 'localhost', minVersion: 'TLSv1.3', ciphers: 'TLS_AES_128_GCM_SHA256', ...extra });
    t.once('secureConnect', () => resolve(t)).once('error', reject);
  });
}

const tlsServerOptions = (): tls.TlsOptions => ({ key: CERTS.key, cert: CERTS.cert, minVersion: 'TLSv1.3', ciphers: 'TLS_AES_128_GCM_SHA256' });

/** Pipes `file` into `dst` `count` times (never ending dst), then waits until dst has taken every byte. */
async function pipeFiles(file: string, count: number, dst: Writable, highWaterMark?: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    await new Promise<void>((resolve, reject) => {
      const rs = fs.createReadStream(file, highWaterMark ? { highWaterMark } : {});
      // The receiver closes the connection once it has counted every byte, which can come before
      // the read stream's 'end'; a closed destination unpipes the file, which then never ends.
      // Stop here either way: the receiver decides whether the transfer was complete.
      const gone = (): void => {
        rs.destroy();
        resolve();
      };
      dst.once('close', gone);
      rs.once('end', () => {
        dst.off('close', gone);
        resolve();
      });
      rs.once('error', reject);
      rs.pipe(dst, { end: false });
    });
    if (dst.destroyed) return;
  }
  await flushed(dst).catch((err: Error) => {
    if (!dst.destroyed) throw err;
  });
}

/** Resolves when every earlier write has completed (write callbacks run in order). */
function flushed(dst: Writable): Promise<void> {
  return new Promise((resolve, reject) => dst.write(Buffer.alloc(0), (err) => (err ? reject(err) : resolve())));
}

/** Resolves when the peer has closed (or reset) the connection; then destroys the stream. */
function peerClosed(s: Readable & { destroy(): void }, limitMs = 10_000): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve();
    };
    if (s.destroyed) return resolve(); // already closed (its 'close' has fired)
    const timer = setTimeout(done, limitMs);
    s.on('error', () => undefined);
    s.once('end', done).once('close', done).once('error', done);
    s.resume();
  });
}

/** Counts bytes until `total`, then reports the time and destroys the stream. */
function countTo(s: Readable & { destroy(): void }, total: number): Promise<bigint> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const onData = (d: Buffer): void => {
      got += d.length;
      if (got >= total) {
        const t1 = nowNs();
        s.off('data', onData);
        s.destroy();
        resolve(t1);
      }
    };
    s.on('data', onData);
    s.once('error', (err) => reject(err));
    s.once('close', () => got < total && reject(new Error(`connection closed after ${got} of ${total} bytes`)));
  });
}

// ---------------------------------------------------------------------------
// Bulk transfer: receivers

export type RecvKind = 'ktls' | 'ktls-user' | 'tls' | 'net' | 'addon' | 'c' | 'ktls-spliceTo' | 'ktls-readwrite';
export interface RecvResult {
  t1: string;
  cpu: Cpu;
}
const receivers = new Map<number, Promise<RecvResult>>();
const devNull = fs.openSync('/dev/null', 'w');

async function recvStart(a: { id: number; kind: RecvKind; total: number; keys?: WireKeys }): Promise<{ port: number }> {
  if (a.kind === 'c') return recvC(a.id, a.total);
  let resolvePort!: (p: number) => void;
  const portP = new Promise<number>((r) => (resolvePort = r));
  const result = new Promise<RecvResult>((resolve, reject) => {
    const onStream = async (raw: net.Socket | tls.TLSSocket): Promise<void> => {
      server.close();
      let s: Readable & { destroy(): void };
      if (a.kind === 'ktls' || a.kind === 'ktls-user' || a.kind === 'ktls-spliceTo' || a.kind === 'ktls-readwrite') {
        s = await ktls.upgrade(raw, secrets(a.keys!, 'b'), { allowTruncation: true, ...(a.kind === 'ktls-user' ? { kernel: false } : {}) });
      } else if (a.kind === 'addon') {
        s = await plainKtlsSocket(raw);
      } else {
        s = raw;
      }
      s.on('error', () => undefined);
      const cpu0 = cpuNow();
      let t1: bigint;
      if (a.kind === 'ktls-spliceTo') {
        const k = s as KtlsSocket;
        await zc(k).spliceTo!(devNull, { length: a.total });
        t1 = nowNs();
        k.destroy();
      } else {
        if (a.kind === 'ktls-readwrite') s.on('data', (d: Buffer) => fs.writeSync(devNull, d));
        t1 = await countTo(s, a.total);
      }
      resolve({ t1: String(t1), cpu: cpuSince(cpu0) });
    };
    const handler = (raw: net.Socket | tls.TLSSocket): void => void onStream(raw).catch(reject);
    const server = a.kind === 'tls' ? tls.createServer(tlsServerOptions(), handler) : net.createServer({ pauseOnConnect: a.kind === 'addon' }, handler);
    listen(server).then(resolvePort, reject);
  });
  result.catch(() => undefined);
  receivers.set(a.id, result);
  return { port: await Promise.race([portP, result.then(() => -1)]) };
}

async function recvC(id: number, total: number): Promise<{ port: number }> {
  const child = spawn(CBENCH, ['sink', String(total)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout });
  const it = lines[Symbol.asyncIterator]();
  const first = await it.next();
  const port = Number(/^port (\d+)/.exec(String(first.value))?.[1]);
  if (!port) throw new Error(`cbench sink said ${String(first.value)}`);
  const result = (async (): Promise<RecvResult> => {
    const line = await it.next();
    const m = /^done (\d+)/.exec(String(line.value));
    if (!m) throw new Error(`cbench sink said ${String(line.value)}`);
    const cpu = procCpu(child.pid!);
    child.stdin.end('\n');
    await new Promise((r) => child.once('close', r));
    return { t1: m[1]!, cpu };
  })();
  result.catch(() => undefined);
  receivers.set(id, result);
  return { port };
}

async function recvResult(a: { id: number }): Promise<RecvResult> {
  const r = receivers.get(a.id);
  receivers.delete(a.id);
  if (!r) throw new Error(`no receiver ${a.id}`);
  return r;
}

// ---------------------------------------------------------------------------
// Bulk transfer: senders

export type SendKind =
  | 'ktls-sendfile' | 'ktls-write' | 'ktls-user' | 'tls-pipe' | 'tls-pipe-1m' | 'net-pipe'
  | 'addon-write' | 'addon-sendfile' | 'c-ktls-sendfile' | 'c-sendfile' | 'c-write';
export interface SendResult {
  t0: string;
  cpu: Cpu;
  method: string;
}

async function send(a: { kind: SendKind; port: number; file: string; count: number; keys?: WireKeys }): Promise<SendResult> {
  if (a.kind.startsWith('c-')) return sendC(a);
  let s: Writable & Readable & { destroy(): void };
  let method = '';
  if (a.kind === 'tls-pipe' || a.kind === 'tls-pipe-1m') {
    s = await connectTls(a.port);
  } else {
    const raw = await connectNet(a.port);
    if (a.kind === 'net-pipe') s = raw;
    else if (a.kind === 'addon-write' || a.kind === 'addon-sendfile') {
      s = await plainKtlsSocket(raw);
      method = plainSocketMode();
    } else s = await ktls.upgrade(raw, secrets(a.keys!, 'a'), a.kind === 'ktls-user' ? { kernel: false } : {});
  }
  s.on('error', () => undefined);
  const t0 = nowNs();
  const cpu0 = cpuNow();
  const useSendFile = a.kind === 'ktls-sendfile' || a.kind === 'addon-sendfile' || (a.kind === 'ktls-user' && typeof zc(s as KtlsSocket).sendFile === 'function');
  if (useSendFile) {
    const z = zc(s as KtlsSocket);
    try {
      for (let i = 0; i < a.count && !s.destroyed; i++) await z.sendFile!(a.file);
    } catch (err) {
      if (!s.destroyed) throw err; // the receiver, having counted every byte, closed first
    }
    method ||= 'sendFile()';
  } else {
    await pipeFiles(a.file, a.count, s, a.kind === 'tls-pipe-1m' ? 1024 * 1024 : undefined);
    method ||= a.kind === 'tls-pipe-1m' ? 'fs.createReadStream({ highWaterMark: 1 MiB }).pipe()' : 'fs.createReadStream().pipe()';
  }
  const cpu = cpuSince(cpu0);
  await peerClosed(s);
  return { t0: String(t0), cpu, method };
}

async function sendC(a: { kind: SendKind; port: number; file: string; count: number; keys?: WireKeys }): Promise<SendResult> {
  const args = ['send', String(a.port), a.file, String(a.count), a.kind === 'c-write' ? 'write' : 'sendfile'];
  if (a.kind === 'c-ktls-sendfile') {
    const iv = Buffer.from(a.keys!.ab.iv, 'hex');
    args.push(a.keys!.ab.key, iv.subarray(0, 4).toString('hex'), iv.subarray(4).toString('hex'));
  }
  const child: ChildProcessWithoutNullStreams = spawn(CBENCH, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const fail = (what: unknown): Error => new Error(`cbench send: expected ${String(what)}; ${stderr.trim()}`);
  const l1 = await lines.next();
  const m = /^t0 (\d+)/.exec(String(l1.value));
  if (!m) throw fail(l1.value);
  const l2 = await lines.next();
  if (String(l2.value) !== 'sent') throw fail(l2.value);
  const cpu = procCpu(child.pid!);
  child.stdin.end('\n');
  await new Promise((r) => child.once('close', r));
  return { t0: m[1]!, cpu, method: a.kind === 'c-write' ? 'C pread()+write() loop' : 'C sendfile() loop' };
}

// ---------------------------------------------------------------------------
// Request/response echo (small messages) and bulk echo (splice)

export type EchoKind = 'ktls' | 'tls' | 'net' | 'addon' | 'splice-echo' | 'js-echo';
interface EchoServer {
  close(): void;
  sockets: Set<{ destroy(): void }>;
  cpu0?: Cpu;
}
const echoServers = new Map<number, EchoServer>();

async function echoServe(a: { id: number; kind: EchoKind; keys?: WireKeys }): Promise<{ port: number }> {
  const sockets = new Set<{ destroy(): void }>();
  const track = (s: Readable & Writable & { destroy(): void }): void => {
    sockets.add(s);
    s.on('error', () => undefined).once('close', () => sockets.delete(s));
  };
  const echo = (s: Readable & Writable & { destroy(): void }): void => {
    track(s);
    // Both sides without Nagle, as the clients: otherwise delayed ACKs decide the tail latency.
    if ('setNoDelay' in s && typeof s.setNoDelay === 'function') (s as net.Socket).setNoDelay(true);
    s.on('data', (d: Buffer) => s.write(d));
  };
  let server: net.Server | tls.Server | ktls.KtlsServer;
  if (a.kind === 'ktls') {
    server = ktls.createServer({ ...tlsServerOptions(), ktls: { allowTruncation: true } }, echo);
    server.on('tlsClientError', () => undefined);
  } else if (a.kind === 'tls') {
    server = tls.createServer(tlsServerOptions(), echo);
  } else {
    server = net.createServer({ pauseOnConnect: a.kind === 'addon' }, (raw) => {
      const go = async (): Promise<void> => {
        if (a.kind === 'net') return echo(raw);
        if (a.kind === 'addon') return echo(await plainKtlsSocket(raw));
        const k = await ktls.upgrade(raw, secrets(a.keys!, 'b'), { allowTruncation: true });
        if (a.kind === 'js-echo') return echo(k);
        track(k);
        zmod.spliceEcho!(k).catch(() => undefined);
      };
      go().catch(() => raw.destroy());
    });
  }
  const port = await listen(server);
  echoServers.set(a.id, { close: () => server.close(), sockets });
  return { port };
}

function echoMark(a: { id: number }): void {
  echoServers.get(a.id)!.cpu0 = cpuNow();
}

function echoStop(a: { id: number }): { cpu: Cpu } {
  const s = echoServers.get(a.id)!;
  echoServers.delete(a.id);
  const cpu = cpuSince(s.cpu0 ?? cpuNow());
  s.close();
  for (const k of s.sockets) k.destroy();
  return { cpu };
}

type Duplexish = Readable & Writable & { destroy(): void };
let clients: Duplexish[] = [];

async function openClient(kind: EchoKind, port: number, keys?: WireKeys): Promise<Duplexish> {
  if (kind === 'ktls') return ktls.connect({ port, host: '127.0.0.1', ca: CERTS.ca, servername: 'localhost', minVersion: 'TLSv1.3', ciphers: 'TLS_AES_128_GCM_SHA256', ktls: { allowTruncation: true } });
  if (kind === 'tls') return connectTls(port);
  const raw = await connectNet(port);
  if (kind === 'net') return raw;
  if (kind === 'addon') return plainKtlsSocket(raw);
  return ktls.upgrade(raw, secrets(keys!, 'a'), { allowTruncation: true });
}

async function echoConnect(a: { kind: EchoKind; port: number; conns: number; keys?: WireKeys }): Promise<void> {
  clients = [];
  for (let i = 0; i < a.conns; i++) {
    const c = await openClient(a.kind, a.port, a.keys);
    c.on('error', () => undefined);
    if ('setNoDelay' in c && typeof c.setNoDelay === 'function') (c as net.Socket).setNoDelay(true);
    clients.push(c);
  }
}

/** Every connection sends `size` bytes and waits for them to come back, for `ms` milliseconds. */
async function echoRun(a: { size: number; ms: number }): Promise<{ requests: number; seconds: number; p50: number; p99: number; cpu: Cpu }> {
  const msg = Buffer.alloc(a.size, 0x61);
  const lat: number[] = [];
  const cpu0 = cpuNow();
  const t0 = nowNs();
  const end = t0 + BigInt(a.ms) * 1_000_000n;
  await Promise.all(
    clients.map(
      (c) =>
        new Promise<void>((resolve, reject) => {
          let got = 0;
          let sentAt = 0n;
          const fire = (): void => {
            sentAt = nowNs();
            c.write(msg);
          };
          const onData = (d: Buffer): void => {
            got += d.length;
            while (got >= a.size) {
              got -= a.size;
              const now = nowNs();
              lat.push(Number(now - sentAt) / 1e6);
              if (now >= end) {
                c.off('data', onData);
                resolve();
                return;
              }
              fire();
            }
          };
          c.on('data', onData);
          c.once('close', () => reject(new Error('echo connection closed')));
          fire();
        }),
    ),
  );
  const seconds = Number(nowNs() - t0) / 1e9;
  const cpu = cpuSince(cpu0);
  for (const c of clients) c.destroy();
  clients = [];
  return { requests: lat.length, seconds, p50: percentile(lat, 50), p99: percentile(lat, 99), cpu };
}

/** Bulk echo: sends `total` bytes and reads them back; for splice-echo vs JS echo. */
async function bulkEcho(a: { kind: EchoKind; port: number; total: number; keys?: WireKeys }): Promise<{ seconds: number; cpu: Cpu }> {
  const c = await openClient(a.kind, a.port, a.keys);
  c.on('error', () => undefined);
  const chunk = Buffer.alloc(256 * 1024, 0x62);
  const cpu0 = cpuNow();
  const t0 = nowNs();
  const back = countTo(c, a.total);
  for (let sent = 0; sent < a.total; sent += chunk.length) {
    if (!c.write(sent + chunk.length > a.total ? chunk.subarray(0, a.total - sent) : chunk)) await new Promise((r) => c.once('drain', r));
  }
  const t1 = await back;
  return { seconds: Number(t1 - t0) / 1e9, cpu: cpuSince(cpu0) };
}

// ---------------------------------------------------------------------------
// Handshakes

export type HsKind = 'ktls' | 'tls';
let hsServer: net.Server | tls.Server | ktls.KtlsServer | undefined;

async function hsServe(a: { kind: HsKind; version: 'TLSv1.2' | 'TLSv1.3'; fastOpen: boolean; coalesce: boolean }): Promise<{ port: number }> {
  const opts: tls.TlsOptions = { key: CERTS.key, cert: CERTS.cert, minVersion: a.version, maxVersion: a.version };
  const respond = (s: Readable & Writable): void => {
    s.on('error', () => undefined);
    s.once('data', () => s.end('r'));
  };
  hsServer = a.kind === 'ktls' ? ktls.createServer({ ...opts, ...(a.fastOpen ? { fastOpen: 64 } : {}), ktls: { allowTruncation: true, coalesce: a.coalesce } } as ktls.KtlsServerOptions, respond) : tls.createServer(opts, respond);
  (hsServer as EventEmitter).on('tlsClientError', () => undefined);
  return { port: await listen(hsServer) };
}

function hsStop(): void {
  hsServer?.close();
  hsServer = undefined;
}

interface HsSample {
  ms: number;
  segments: number | null;
  synData: boolean | null;
  resumed: boolean;
}

function tcpInfoOf(s: unknown): TcpInfoLike | undefined {
  try {
    return zmod.tcpInfo ? zmod.tcpInfo(s) : undefined;
  } catch {
    return undefined;
  }
}

/** One handshake: connect, send a 1-byte request, time to the first response byte. */
async function hsOnce(a: { kind: HsKind; port: number; version: 'TLSv1.2' | 'TLSv1.3'; fastOpen: boolean; coalesce: boolean; session?: Buffer; prime?: boolean }): Promise<HsSample & { session?: Buffer }> {
  const base: tls.ConnectionOptions = { port: a.port, host: '127.0.0.1', ca: CERTS.ca, servername: 'localhost', minVersion: a.version, maxVersion: a.version, ...(a.session ? { session: a.session } : {}) };
  const t0 = nowNs();
  if (a.kind === 'ktls') {
    const s = await ktls.connect({ ...base, ...(a.fastOpen ? { fastOpen: true } : {}), ktls: { allowTruncation: true, coalesce: a.coalesce, ...(a.prime && a.version === 'TLSv1.3' ? { waitForTicket: 2000 } : {}) } } as ktls.KtlsConnectOptions);
    s.on('error', () => undefined);
    // TCP_INFO is read in the 'data' handler: the server's end() follows its byte, and the socket closes soon after.
    let info: TcpInfoLike | undefined;
    let t1 = 0n;
    const first = new Promise<void>((r) => s.once('data', () => ((t1 = nowNs()), (info = tcpInfoOf(s)), r())));
    s.write('q');
    await first;
    const ms = Number(t1 - t0) / 1e6;
    const out = { ms, segments: segments(info), synData: synData(info), resumed: s.isSessionReused(), session: s.getSession() };
    s.destroy();
    return out;
  }
  const raw = net.connect(a.port, '127.0.0.1');
  let session: Buffer | undefined;
  const t = tls.connect({ ...base, socket: raw });
  t.on('session', (sess: Buffer) => (session = sess));
  t.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => t.once('secureConnect', resolve).once('error', reject));
  let info: TcpInfoLike | undefined;
  let t1 = 0n;
  const first = new Promise<void>((r) => t.once('data', () => ((t1 = nowNs()), (info = tcpInfoOf(raw)), r())));
  t.write('q');
  await first;
  const ms = Number(t1 - t0) / 1e6;
  const out = { ms, segments: segments(info), synData: synData(info), resumed: t.isSessionReused(), session: session ?? t.getSession() };
  t.destroy();
  return out;
}

async function hsClient(a: { kind: HsKind; port: number; version: 'TLSv1.2' | 'TLSv1.3'; fastOpen: boolean; coalesce: boolean; resumed: boolean; n: number }): Promise<HsSample[]> {
  let session: Buffer | undefined;
  // An untimed first connection: primes the session (resumed runs) and the TFO cookie.
  const prime = await hsOnce({ ...a, prime: true });
  if (a.resumed) session = prime.session;
  const samples: HsSample[] = [];
  for (let i = 0; i < a.n; i++) {
    const r = await hsOnce({ ...a, ...(session ? { session } : {}) });
    samples.push({ ms: r.ms, segments: r.segments, synData: r.synData, resumed: r.resumed });
  }
  return samples;
}

// ---------------------------------------------------------------------------

const OPS: Record<string, (a: never) => unknown> = {
  recvStart, recvResult, send, echoServe, echoMark, echoStop, echoConnect, echoRun, bulkEcho, hsServe, hsStop, hsClient,
  warm: (a: { file: string }) => {
    // Page-cache the file.
    const fd = fs.openSync(a.file, 'r');
    const buf = Buffer.allocUnsafe(1024 * 1024);
    while (fs.readSync(fd, buf) > 0);
    fs.closeSync(fd);
  },
  exit: () => setImmediate(() => process.exit(0)),
};

if (require.main === module) {
  process.on('message', (m: { id: number; op: string; args: unknown }) => {
    const op = OPS[m.op];
    Promise.resolve()
      .then(() => {
        if (!op) throw new Error(`unknown op ${m.op}`);
        return op(m.args as never);
      })
      .then(
        (result) => process.send!({ id: m.id, ok: true, result }),
        (err: Error) => process.send!({ id: m.id, ok: false, error: err?.stack ?? String(err) }),
      );
  });
  process.on('disconnect', () => process.exit(0));
}
