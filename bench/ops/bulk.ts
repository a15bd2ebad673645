// Bulk transfer ops: a receiver that counts a known number of bytes (kTLS,
// userspace TLS, node:tls, plain TCP, the addon on plain TCP, splice), and a
// sender that sends a file a number of times (sendFile() or a read stream).
import * as fs from 'node:fs';
import * as net from 'node:net';
import type { Readable, Writable } from 'node:stream';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { STAT, requireBinding } from '../../lib/native/binding.js';
import type { KtlsSocket } from '../../lib/socket/socket.js';
import { cpuNow, cpuSince, nowNs, type Cpu } from '../common.js';
import { plainKtlsSocket, plainSocketMode, zc } from '../features.js';
import { cSend, cSink } from './cbench.js';
import { connectNet, connectTls, countTo, listen, secrets, tlsServerOptions, type WireKeys } from './common.js';

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
  await flushed(dst).catch((err: NodeJS.ErrnoException) => {
    // As above: a receiver that has every byte may close first (EPIPE: a write after its end).
    if (!dst.destroyed && err.code !== 'EPIPE' && err.code !== 'ECONNRESET') throw err;
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

/** Page-caches a file before it is sent. */
export function warm(a: { file: string }): void {
  const fd = fs.openSync(a.file, 'r');
  const buf = Buffer.allocUnsafe(1024 * 1024);
  while (fs.readSync(fd, buf) > 0);
  fs.closeSync(fd);
}

// ---------------------------------------------------------------------------
// Receivers

export type RecvKind = 'ktls' | 'ktls-user' | 'tls' | 'net' | 'addon' | 'c' | 'ktls-spliceTo' | 'ktls-readwrite';
export interface RecvResult {
  t1: string;
  cpu: Cpu;
}
const receivers = new Map<number, Promise<RecvResult>>();
// Non-blocking: spliceTo() refuses a blocking device (ERR_KTLS_BLOCKING_FD), which could stall the loop.
const devNull = fs.openSync('/dev/null', fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);

/** Listens for one connection that will bring `total` bytes; `recvResult` then reports when the last came. */
export async function recvStart(a: { id: number; kind: RecvKind; total: number; keys?: WireKeys }): Promise<{ port: number }> {
  if (a.kind === 'c') {
    const { port, result } = await cSink(a.total);
    receivers.set(a.id, result);
    return { port };
  }
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

export async function recvResult(a: { id: number }): Promise<RecvResult> {
  const r = receivers.get(a.id);
  receivers.delete(a.id);
  if (!r) throw new Error(`no receiver ${a.id}`);
  return r;
}

// ---------------------------------------------------------------------------
// Senders

export type SendKind =
  | 'ktls-sendfile'
  | 'ktls-write'
  | 'ktls-user'
  | 'tls-pipe'
  | 'tls-pipe-1m'
  | 'net-pipe'
  | 'addon-write'
  | 'addon-sendfile'
  | 'c-ktls-sendfile'
  | 'c-sendfile'
  | 'c-write';
export interface SendResult {
  t0: string;
  cpu: Cpu;
  method: string;
}

/** Sends `file` `count` times to a receiver, then waits for it to close. */
export async function send(a: { kind: SendKind; port: number; file: string; count: number; keys?: WireKeys }): Promise<SendResult> {
  if (a.kind.startsWith('c-')) return cSend(a);
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
  const useSendFile =
    a.kind === 'ktls-sendfile' || a.kind === 'addon-sendfile' || (a.kind === 'ktls-user' && typeof zc(s as KtlsSocket).sendFile === 'function');
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

/**
 * Where a small file's sendFile() time goes: per call, the whole sendFile() on
 * a plain-TCP KtlsSocket; the same syscalls issued through the binding from a
 * plain loop (open, fstat, sendfile, close); and open + fstat + close alone.
 * The rest of the first figure is the op, promise and queue machinery.
 */
export async function sendFileCost(a: { file: string; n: number }): Promise<{ sendFile: number; syscalls: number; fileOnly: number }> {
  const size = fs.statSync(a.file).size;
  const warm = 1000;
  const sink = await cSink(size * (warm + 2 * a.n));
  const s = await plainKtlsSocket(await connectNet(sink.port));
  s.on('error', () => undefined);
  const b = requireBinding();
  const st = new Float64Array(STAT.LENGTH);
  const us = (t0: bigint, n: number): number => Number(nowNs() - t0) / n / 1000;
  for (let i = 0; i < warm; i++) await s.sendFile(a.file);
  let t0 = nowNs();
  for (let i = 0; i < a.n; i++) await s.sendFile(a.file);
  const sendFile = us(t0, a.n);
  t0 = nowNs();
  for (let i = 0; i < a.n; i++) {
    const fd = b.openFile(a.file);
    b.statFd(fd, st);
    for (let off = 0; off < size;) {
      const n = b.sendfile(s.fd, fd, off, size - off);
      if (n > 0) off += n;
      else if (n !== -11) throw new Error(`sendfile: ${n}`);
    }
    b.closeFd(fd);
  }
  const syscalls = us(t0, a.n);
  t0 = nowNs();
  for (let i = 0; i < a.n; i++) {
    const fd = b.openFile(a.file);
    b.statFd(fd, st);
    b.closeFd(fd);
  }
  const fileOnly = us(t0, a.n);
  await sink.result;
  s.destroy();
  return { sendFile, syscalls, fileOnly };
}
