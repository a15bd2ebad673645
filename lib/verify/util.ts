/**
 * Fixtures of the verify suite: loopback pairs (upgraded, or a raw kTLS fd
 * driven one syscall at a time through the native handle), random session
 * keys, and stream readers. Shipped with the package, so no test helpers here.
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import type * as net from 'node:net';
import * as os from 'node:os';
import type { Readable } from 'node:stream';
import { requireBinding, POLL_READABLE, POLL_WRITABLE, type Binding, type NativeHandle } from '../native/binding.js';
import { cipherSpec, versionNumber, type CipherName, type TlsVersion } from '../native/constants.js';
import { hashOf, hashSize, tls13Keys } from '../record/derive.js';
import { errnoName } from '../native/errors.js';
import { loopbackPair } from '../native/probe.js';
import { handleFd } from '../native/net-handle.js';
import { RecordOpener, RecordSealer, type DirectionKeys } from '../record/layer.js';
import type { TlsSecrets } from '../record/secrets.js';
import type { KtlsSocket } from '../socket/socket.js';
import { upgrade, type UpgradeOptions } from '../socket/upgrade.js';
import type { CheckContext } from './types.js';

/** Positive errno constants. */
export const E = os.constants.errno;

/** Random keys for one session: `a` sends with `ab` and receives with `ba`; `b` the reverse. */
export interface SessionKeys {
  a: TlsSecrets;
  b: TlsSecrets;
  ab: DirectionKeys;
  ba: DirectionKeys;
}

/** Random keys for both directions of a session. */
export function sessionKeys(version: TlsVersion, cipher: CipherName, seq: { ab?: bigint; ba?: bigint } = {}): SessionKeys {
  const spec = cipherSpec(cipher);
  const ab = { key: randomBytes(spec.keySize), iv: randomBytes(spec.nonceSize), seq: seq.ab ?? 0n };
  const ba = { key: randomBytes(spec.keySize), iv: randomBytes(spec.nonceSize), seq: seq.ba ?? 0n };
  const copy = (d: DirectionKeys): DirectionKeys => ({ key: Buffer.from(d.key), iv: Buffer.from(d.iv), seq: d.seq });
  return { a: { version, cipher, tx: copy(ab), rx: copy(ba) }, b: { version, cipher, tx: copy(ba), rx: copy(ab) }, ab: copy(ab), ba: copy(ba) };
}

/** The addon, or a failure that says why it is missing. */
export const binding: () => Binding = requireBinding;

/**
 * Sequence numbers a check makes up (to test where records start, or the
 * wrap) say nothing of how many records a key protected: key usage limits are
 * off for such sockets.
 */
function synthetic(seq: { ab?: bigint; ba?: bigint }, options: UpgradeOptions): UpgradeOptions {
  return (seq.ab ?? 0n) > 0n || (seq.ba ?? 0n) > 0n ? { keyUsageLimits: false, ...options } : options;
}

/** Two kernel-TLS sockets talking to each other over loopback; destroyed when the check ends. */
export async function kernelPair(
  ctx: CheckContext,
  options: UpgradeOptions = {},
  seq: { ab?: bigint; ba?: bigint } = {},
): Promise<{ a: KtlsSocket; b: KtlsSocket; keys: SessionKeys }> {
  const [c, s] = await loopbackPair();
  ctx.defer(() => (c.destroy(), s.destroy()));
  const keys = sessionKeys(ctx.version, ctx.cipher, seq);
  options = synthetic(seq, options);
  const [a, b] = await Promise.all([upgrade(c, keys.a, options), upgrade(s, keys.b, options)]);
  ctx.defer(() => (a.destroy(), b.destroy()));
  ctx.ok(a.kernel && b.kernel, 'both ends run kernel TLS');
  return { a, b, keys };
}

/**
 * A kernel-TLS socket facing a plain TCP socket, with the userspace record
 * layer for the plain side: `sealer` makes records the kernel opens, `opener`
 * opens what the kernel sends.
 */
export async function wirePair(
  ctx: CheckContext,
  options: UpgradeOptions = {},
  seq: { ab?: bigint; ba?: bigint } = {},
): Promise<{ sock: KtlsSocket; raw: net.Socket; sealer: RecordSealer; opener: RecordOpener; keys: SessionKeys }> {
  const [raw, peer] = await loopbackPair();
  ctx.defer(() => (raw.destroy(), peer.destroy()));
  const keys = sessionKeys(ctx.version, ctx.cipher, seq);
  const sock = await upgrade(peer, keys.b, synthetic(seq, options));
  ctx.defer(() => sock.destroy());
  ctx.ok(sock.kernel, 'the socket runs kernel TLS');
  return { sock, raw, keys, sealer: new RecordSealer(ctx.version, ctx.cipher, keys.ab), opener: new RecordOpener(ctx.version, ctx.cipher, keys.ba) };
}

/** Result of one `recvmsg` on a {@link RawEnd}: bytes (or -errno) and the TLS record type cmsg. */
export interface RawRecv {
  /** Byte count, or a negative errno. */
  n: number;
  /** The data received (empty on error). */
  data: Buffer;
  /** Record type from the TLS_GET_RECORD_TYPE cmsg (0 when none). */
  type: number;
  /** errno name when `n < 0`, else `'ok'`. */
  result: string;
}

/**
 * One TCP fd driven directly through the native handle: `setsockopt` and one
 * `recvmsg`/`sendmsg` per call, so record boundaries and errnos are visible.
 */
export class RawEnd {
  readonly b: Binding;
  readonly fd: number;
  readonly handle: NativeHandle;
  readonly #out = new Int32Array(1);
  #wake: (() => void) | undefined;

  constructor(b: Binding, fd: number) {
    this.b = b;
    this.fd = fd;
    this.handle = new b.Handle(fd, () => this.#wake?.(), this.#out);
  }

  /** `setsockopt(TCP_ULP, "tls")` → 0 or -errno. */
  setUlp(): number {
    return this.b.setUlp(this.fd);
  }

  /** Installs keys for one direction through the raw binding → 0 or -errno. */
  setKeys(dir: 'tx' | 'rx', version: TlsVersion, cipher: CipherName, keys: DirectionKeys): number {
    const k = this.b.constants;
    const seq = Buffer.alloc(8);
    seq.writeBigUInt64BE(keys.seq);
    return this.b.setKeys(
      this.fd,
      dir === 'tx' ? k.TLS_TX : k.TLS_RX,
      versionNumber(version),
      cipherSpec(cipher).id,
      Buffer.from(keys.key),
      Buffer.from(keys.iv),
      seq,
    );
  }

  /** `getsockopt(SOL_TLS, TLS_TX/TLS_RX)` sequence number, or an errno name. */
  seq(dir: 'tx' | 'rx'): bigint | string {
    const v = this.b.getSeq(this.fd, dir === 'tx' ? this.b.constants.TLS_TX : this.b.constants.TLS_RX);
    return typeof v === 'bigint' ? v : errnoOf(v);
  }

  /** One non-blocking `recvmsg` of at most `max` bytes. */
  recvNow(max: number): RawRecv {
    const buf = Buffer.alloc(max);
    const n = this.handle.recv(buf, 0, max);
    return { n, data: n > 0 ? buf.subarray(0, n) : Buffer.alloc(0), type: n >= 0 ? this.#out[0] : 0, result: rc(n) };
  }

  /** One `recvmsg` of at most `max` bytes, waiting (up to `timeoutMs`) while it would block. */
  async recv(max: number, timeoutMs = 5000): Promise<RawRecv> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = this.recvNow(max);
      if (r.n !== -E.EAGAIN && r.n !== -E.EINTR) return r;
      if (Date.now() > deadline) return r;
      await this.#waitFor(POLL_READABLE, deadline - Date.now());
    }
  }

  /** One non-blocking `sendmsg`; `type` 0 is application data, others become a record-type cmsg. */
  send(bufs: Buffer[], type = 0): number {
    return this.handle.send(bufs, type);
  }

  /** Sends everything, waiting for writability on EAGAIN; returns bytes sent or the first other -errno. */
  async sendAll(data: Buffer, type = 0, timeoutMs = 10_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let off = 0;
    while (off < data.length || (data.length === 0 && off === 0)) {
      const n = this.send([data.subarray(off)], type);
      if (n === -E.EAGAIN || n === -E.EINTR) {
        if (Date.now() > deadline) return n;
        await this.#waitFor(POLL_WRITABLE, deadline - Date.now());
        continue;
      }
      if (n < 0) return n;
      off += n;
      if (data.length === 0) break;
    }
    return off;
  }

  /** Waits until the fd reports `events` (or the time is up). */
  #waitFor(events: number, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, Math.max(1, ms));
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = () => {
        this.#wake = undefined;
        this.handle.poll(0);
        done();
      };
      if (this.handle.poll(events) < 0) this.#wake();
    });
  }

  /** Closes the fd (idempotent). */
  close(): void {
    this.#wake = undefined;
    this.handle.close();
  }
}

/**
 * Takes over one end of a fresh loopback pair as a {@link RawEnd} (its
 * `net.Socket` lets go of the fd), and keeps the other end as a plain socket.
 */
export async function rawPair(ctx: CheckContext): Promise<{ end: RawEnd; peer: net.Socket }> {
  const b = binding();
  const [c, s] = await loopbackPair();
  ctx.defer(() => (c.destroy(), s.destroy()));
  const fd = b.adopt(handleFd(s));
  ctx.ok(fd >= 0, `fcntl(F_DUPFD_CLOEXEC): ${rc(fd)}`);
  s.destroy(); // libuv must not read from our fd; the dup keeps the connection
  const end = new RawEnd(b, fd);
  ctx.defer(() => end.close());
  return { end, peer: c };
}

// Linux errnos kTLS returns that node:os does not list (asm-generic/errno.h).
const LINUX_ERRNOS: Readonly<Record<string, number>> = { EOPNOTSUPP: 95, ENOKEY: 126, EKEYEXPIRED: 127, EKEYREVOKED: 128, EKEYREJECTED: 129 };
const ERRNO_NAMES = new Map<number, string>();
for (const [name, num] of Object.entries({ ...LINUX_ERRNOS, ...os.constants.errno })) if (!ERRNO_NAMES.has(num)) ERRNO_NAMES.set(num, name); // EAGAIN before EWOULDBLOCK

/**
 * The name of a negative errno, e.g. -74 -> `EBADMSG` (libuv's own table,
 * behind `util.getSystemErrorName`, lacks several that kTLS returns).
 */
export function errnoOf(n: number): string {
  return ERRNO_NAMES.get(-n) ?? errnoName(n);
}

/** An errno result as a name: 'ok' for 0 or more, else `EINVAL`, … */
export function rc(n: number): string {
  return n >= 0 ? 'ok' : errnoOf(n);
}

/** Everything a stream yields until it ends (does not destroy it). */
export function readAll(stream: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream
      .on('data', (c: Buffer) => chunks.push(c))
      .once('end', () => resolve(Buffer.concat(chunks)))
      .once('error', reject);
  });
}

/** The first `n` bytes a stream yields; pauses it and unshifts any excess. */
export function readBytes(stream: Readable, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (c: Buffer): void => {
      chunks.push(c);
      got += c.length;
      if (got >= n) {
        stream.off('data', onData);
        stream.pause();
        const all = Buffer.concat(chunks);
        if (all.length > n) stream.unshift(all.subarray(n));
        resolve(all.subarray(0, n));
      }
    };
    stream
      .on('data', onData)
      .once('error', reject)
      .once('end', () => got < n && reject(new Error(`stream ended after ${got} of ${n} bytes`)));
    stream.resume();
  });
}

/** The error a stream is destroyed with. */
export function errorOf(stream: Readable): Promise<Error & { code?: string; alert?: string; errno?: number; syscall?: string; alertSent?: boolean }> {
  return new Promise((resolve) => stream.once('error', resolve));
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Deterministic pseudo-random bytes (so a failing byte offset can be reproduced). */
export function pattern(size: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(size);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = s & 0xff;
  }
  return out;
}

/** Opens every complete record `opener` holds; returns them in order. */
export function openAll(opener: RecordOpener): Array<{ type: number; data: Buffer }> {
  const out: Array<{ type: number; data: Buffer }> = [];
  for (let r = opener.next(); r !== null; r = opener.next()) out.push(r);
  return out;
}

/** Reads records off `raw` and opens them until `total` plaintext bytes have come; returns every record. */
export async function readRecords(raw: Readable, opener: RecordOpener, total: number): Promise<Array<{ type: number; data: Buffer }>> {
  const records: Array<{ type: number; data: Buffer }> = [];
  for (let got = 0; got < total;) {
    opener.push(await readBytes(raw, Math.max(opener.needed(), 5)));
    for (const r of openAll(opener)) {
      records.push(r);
      got += r.data.length;
    }
  }
  return records;
}

/**
 * A {@link RawEnd} with the ULP and both directions' keys installed, facing a
 * plain peer: `sealer` makes records for it, `opener` opens what it sends.
 */
export async function rawKtls(
  ctx: CheckContext,
  seq: { ab?: bigint; ba?: bigint } = {},
): Promise<{ end: RawEnd; peer: net.Socket; keys: SessionKeys; sealer: RecordSealer; opener: RecordOpener }> {
  const { end, peer } = await rawPair(ctx);
  const keys = sessionKeys(ctx.version, ctx.cipher, seq);
  ctx.equal(rc(end.setUlp()), 'ok', 'setsockopt(TCP_ULP)');
  ctx.equal(rc(end.setKeys('rx', ctx.version, ctx.cipher, keys.ab)), 'ok', 'setsockopt(TLS_RX)');
  ctx.equal(rc(end.setKeys('tx', ctx.version, ctx.cipher, keys.ba)), 'ok', 'setsockopt(TLS_TX)');
  return { end, peer, keys, sealer: new RecordSealer(ctx.version, ctx.cipher, keys.ab), opener: new RecordOpener(ctx.version, ctx.cipher, keys.ba) };
}

/**
 * Two TLS 1.3 KtlsSockets over loopback upgraded with traffic secrets, so
 * both ends can initiate and follow KeyUpdates.
 */
export async function rekeyablePair(cipher: CipherName, options: UpgradeOptions = {}): Promise<[KtlsSocket, KtlsSocket]> {
  const hash = hashOf(cipher);
  const size = hashSize(hash);
  const ab = randomBytes(size);
  const ba = randomBytes(size);
  const side = (tx: Buffer, rx: Buffer): TlsSecrets => ({
    version: 'TLSv1.3',
    cipher,
    tx: { ...tls13Keys(cipher, hash, tx), seq: 0n },
    rx: { ...tls13Keys(cipher, hash, rx), seq: 0n },
  });
  const [c, s] = await loopbackPair();
  return Promise.all([
    upgrade(c, side(ab, ba), { ...options, trafficSecrets: { tx: Buffer.from(ab), rx: Buffer.from(ba) } }),
    upgrade(s, side(ba, ab), { ...options, trafficSecrets: { tx: Buffer.from(ba), rx: Buffer.from(ab) } }),
  ]);
}

/** A post-handshake message a peer may send: a NewSessionTicket (TLS 1.3), a HelloRequest (TLS 1.2, refused with a warning). */
export function allowedHandshake(version: TlsVersion): Buffer {
  return version === 'TLSv1.3' ? Buffer.from([4, 0, 0, 3, 1, 2, 3]) : Buffer.from([0, 0, 0, 0]);
}
