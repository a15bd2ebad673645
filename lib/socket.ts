/**
 * KtlsSocket: a `stream.Duplex` over a TCP fd whose records the kernel (or, in
 * fallback, the userspace record layer) seals and opens. The native handle does
 * one syscall per call; this file decides when to retry, wait, end or destroy.
 * @packageDocumentation
 */
import { Duplex, type DuplexOptions } from 'node:stream';
import * as os from 'node:os';
import { POLL_READABLE, POLL_WRITABLE, type Binding, type NativeHandle } from './binding.js';
import { cipherSpec, constants, type CipherName, type TlsVersion } from './constants.js';
import { ALERT, KtlsAlertError, KtlsError, KtlsSystemError } from './errors.js';
import type { OpenedRecord, RecordOpener, RecordSealer } from './record.js';
import type * as tls from 'node:tls';
import type { TlsInfo } from './handshake.js';

const E = os.constants.errno;
const SLAB = 256 * 1024;
const MAX_IOV = 1024;

/** Options of a {@link KtlsSocket}. */
export interface KtlsSocketOptions {
  /** Keep the writable side open after the peer's close_notify (default false, like `net.Socket`). */
  allowHalfOpen?: boolean;
  /**
   * Accept a TCP FIN without a preceding close_notify as a normal end of stream.
   * Default false: such an EOF destroys the socket with `ERR_KTLS_TRUNCATED`,
   * because an attacker can cut a connection short.
   */
  allowTruncation?: boolean;
  /** Readable/writable high-water mark in bytes. */
  highWaterMark?: number;
}

/** Sequence numbers of the next record in each direction (`null` where no keys are installed). */
export interface SequenceNumbers {
  /** Next record we send. */
  tx: bigint | null;
  /** Next record we expect. */
  rx: bigint | null;
}

/** How each direction's records are protected; built by `upgrade()`. */
export interface RecordPaths {
  binding: Binding;
  handle: NativeHandle;
  out: Int32Array;
  version: TlsVersion;
  cipher: CipherName;
  /** Kernel sends (TLS_TX installed), userspace sealer, or neither. */
  tx: 'kernel' | RecordSealer | null;
  /** Kernel receives (TLS_RX installed), userspace opener, or neither. */
  rx: 'kernel' | RecordOpener | null;
  /** Records taken off the wire before the switch, already opened, delivered first. */
  early: OpenedRecord[];
  /** For kernel TX: bytes that had entered TCP, and the TX seq, when the keys were installed. */
  txStart?: { entered: number; seq: bigint };
  remote: { address?: string; port?: number; family?: string };
  local: { address?: string; port?: number };
}

/** Wire bytes a record adds to its plaintext: header, tag, TLS 1.2's explicit nonce, TLS 1.3's inner type. */
function recordOverhead(version: TlsVersion, cipher: CipherName): number {
  const spec = cipherSpec(cipher);
  return 5 + spec.tagSize + (version === 'TLSv1.3' ? 1 : spec.saltSize > 0 ? spec.ivSize : 0);
}

interface WriteEntry {
  bufs: Buffer[];
  started?: boolean;
  type: number; // 0: application data
  cb: (err?: Error | null) => void;
}

/**
 * A TLS connection whose record protection runs in the kernel. Obtain one from
 * `ktls.upgrade()`. Reads deliver application data; the peer's close_notify
 * ends the readable side; a fatal alert destroys the socket with
 * {@link KtlsAlertError}; handshake records are emitted as `'handshake'` events.
 */
export class KtlsSocket extends Duplex {
  /** Negotiated TLS version. */
  readonly version: TlsVersion;
  /** Negotiated cipher. */
  readonly cipher: CipherName;
  /** Peer address as the original `net.Socket` saw it. */
  readonly remoteAddress: string | undefined;
  /** Peer port. */
  readonly remotePort: number | undefined;
  /** `'IPv4'` or `'IPv6'`. */
  readonly remoteFamily: string | undefined;
  /** Local address. */
  readonly localAddress: string | undefined;
  /** Local port. */
  readonly localPort: number | undefined;

  #p: RecordPaths;
  #allowTruncation: boolean;
  #bytesRead = 0;
  #bytesWritten = 0;
  #slab = Buffer.allocUnsafe(SLAB);
  #slabOff = 0;
  #wantRead = false;
  #queue: WriteEntry[] = [];
  #pollEvents = 0;
  #closeNotifyReceived = false;
  #readEnded = false;
  #fatalSent = false;
  #kernelPlainSent = 0;
  #finalSeq: SequenceNumbers | undefined;
  #tls: TlsInfo | undefined;

  /** @internal Use `ktls.upgrade()`. */
  constructor(paths: RecordPaths, options: KtlsSocketOptions = {}) {
    const duplexOptions: DuplexOptions = { allowHalfOpen: options.allowHalfOpen ?? false, emitClose: true, autoDestroy: true };
    if (options.highWaterMark !== undefined) duplexOptions.highWaterMark = options.highWaterMark;
    super(duplexOptions);
    this.#p = paths;
    this.#allowTruncation = options.allowTruncation ?? false;
    this.version = paths.version;
    this.cipher = paths.cipher;
    this.remoteAddress = paths.remote.address;
    this.remotePort = paths.remote.port;
    this.remoteFamily = paths.remote.family;
    this.localAddress = paths.local.address;
    this.localPort = paths.local.port;
  }

  #onPoll(status: number, events: number): void {
    if (this.destroyed) return;
    if (status < 0) {
      this.destroy(new KtlsSystemError(status, 'epoll_wait'));
      return;
    }
    if (events & POLL_WRITABLE) this.#writeLoop();
    if (events & POLL_READABLE && !this.destroyed) this.#readLoop();
  }

  /** @internal The handle's poll callback, for `upgrade()` to pass to the native constructor. */
  static pollCallback(socket: { value?: KtlsSocket }): (status: number, events: number) => void {
    return (status, events) => {
      const s = socket.value;
      if (s) s.#onPoll(status, events);
    };
  }

  /** @internal Called by the handshake hand-over with what node:tls knew. */
  attachTlsInfo(info: TlsInfo): void {
    this.#tls = info;
  }

  /** ALPN protocol negotiated by the node:tls handshake (false if none; undefined after a bare `upgrade()`). */
  get alpnProtocol(): string | false | null | undefined {
    return this.#tls?.alpnProtocol;
  }

  /** SNI server name of the handshake, as `tls.TLSSocket#servername`. */
  get servername(): string | false | null | undefined {
    return this.#tls?.servername;
  }

  /** Whether the peer's certificate was verified during the handshake. */
  get authorized(): boolean {
    return this.#tls?.authorized ?? false;
  }

  /** Why the peer's certificate was not verified, if it was not. */
  get authorizationError(): Error | null {
    return this.#tls?.authorizationError ?? null;
  }

  /** The peer certificate (with its chain) as `tls.TLSSocket#getPeerCertificate(true)` returned it at the switch. */
  getPeerCertificate(): tls.DetailedPeerCertificate | Record<string, never> {
    return this.#tls?.peerCertificate ?? {};
  }

  /** The TLS session (for `tls.connect({ session })`), or undefined. Updated by later `'session'` events. */
  getSession(): Buffer | undefined {
    return this.#tls?.session;
  }

  /** Whether the handshake resumed a session. */
  isSessionReused(): boolean {
    return this.#tls?.sessionReused ?? false;
  }

  /** The negotiated protocol, as `tls.TLSSocket#getProtocol()`. */
  getProtocol(): string | null {
    return this.#tls?.protocol ?? this.version;
  }

  /** The negotiated cipher suite, as `tls.TLSSocket#getCipher()`. */
  getCipher(): tls.CipherNameAndProtocol | undefined {
    return this.#tls?.cipher;
  }

  /** True when the kernel seals and opens every record; false when any direction uses the userspace fallback. */
  get kernel(): boolean {
    return this.#p.tx !== null && this.#p.tx !== 'kernel' ? false : this.#p.rx === null || this.#p.rx === 'kernel';
  }

  /** Which side of the record layer runs in the kernel, per direction. */
  get kernelDirections(): { tx: boolean; rx: boolean } {
    return { tx: this.#p.tx === 'kernel', rx: this.#p.rx === 'kernel' };
  }

  /** Application bytes received. */
  get bytesRead(): number {
    return this.#bytesRead;
  }

  /** Application bytes the kernel (or the record layer) has accepted for sending. */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  /** The underlying fd (owned by this socket; -1 once closed). */
  get fd(): number {
    return this.#p.handle.fd;
  }

  /**
   * The next record sequence numbers: read live from the kernel
   * (`getsockopt(SOL_TLS, TLS_TX/TLS_RX)`) for kernel directions. After the
   * socket is closed, the values it had when it closed.
   */
  getSequenceNumbers(): SequenceNumbers {
    if (this.#finalSeq) return { ...this.#finalSeq };
    const k = constants();
    const read = (path: 'kernel' | RecordSealer | RecordOpener | null, dir: number, name: string): bigint | null => {
      if (path === null) return null;
      if (path !== 'kernel') return path.seq;
      const v = this.#p.binding.getSeq(this.fd, dir);
      if (typeof v === 'number') throw new KtlsSystemError(v, `getsockopt(${name})`);
      return v;
    };
    return { tx: read(this.#p.tx, k.TLS_TX, 'TLS_TX'), rx: read(this.#p.rx, k.TLS_RX, 'TLS_RX') };
  }

  /** Enables or disables Nagle's algorithm (TCP_NODELAY), like `net.Socket#setNoDelay`. */
  setNoDelay(noDelay = true): this {
    const k = constants();
    const rc = this.#p.binding.setsockoptInt(this.fd, k.SOL_TCP, k.TCP_NODELAY, noDelay ? 1 : 0);
    if (rc < 0 && !this.destroyed) throw new KtlsSystemError(rc, 'setsockopt(TCP_NODELAY)');
    return this;
  }

  /** Lets the process exit while this socket is open. */
  unref(): this {
    this.#p.handle.unref();
    return this;
  }

  /** Undoes {@link KtlsSocket.unref}. */
  ref(): this {
    this.#p.handle.ref();
    return this;
  }

  override _read(): void {
    this.#wantRead = true;
    const early = this.#p.early;
    while (early.length > 0) {
      if (!this.#deliver(early[0]!.type, early.shift()!.data)) return;
    }
    this.#readLoop();
  }

  #readLoop(): void {
    const rx = this.#p.rx;
    while (this.#wantRead && !this.destroyed && !this.#readEnded) {
      if (rx !== 'kernel' && rx !== null) {
        const rec = this.#openNext(rx);
        if (rec === undefined) return; // destroyed
        if (rec !== null) {
          this.#deliver(rec.type, rec.data);
          continue;
        }
      }
      if (this.#slab.length - this.#slabOff < 32 * 1024) {
        this.#slab = Buffer.allocUnsafe(SLAB);
        this.#slabOff = 0;
      }
      const n = this.#p.handle.recv(this.#slab, this.#slabOff, this.#slab.length - this.#slabOff);
      if (n === -E.EAGAIN || n === -E.EINTR) {
        this.#setPoll();
        return;
      }
      if (n < 0) {
        this.#readError(n);
        return;
      }
      if (n === 0) {
        this.#eof();
        return;
      }
      const data = this.#slab.subarray(this.#slabOff, this.#slabOff + n);
      this.#slabOff += n;
      if (rx === 'kernel') this.#deliver(this.#p.out[0] || constants().RECORD_APPLICATION_DATA, data);
      else if (rx === null) this.#deliver(constants().RECORD_APPLICATION_DATA, data);
      else rx.push(data);
    }
    this.#setPoll();
  }

  /** Opens the next buffered userspace record: null when none is complete, undefined when it failed. */
  #openNext(opener: RecordOpener): OpenedRecord | null | undefined {
    try {
      return opener.next();
    } catch (err) {
      const code = err instanceof KtlsAlertError ? err.alertCode : ALERT.internal_error;
      this.#fatal(code, err as Error);
      return undefined;
    }
  }

  /** Handles one record's plaintext; returns false once reading should pause or stop. */
  #deliver(type: number, data: Buffer): boolean {
    const k = constants();
    switch (type) {
      case k.RECORD_APPLICATION_DATA:
        this.#bytesRead += data.length;
        if (data.length === 0) return true;
        if (!this.push(data)) this.#wantRead = false;
        return this.#wantRead;
      case k.RECORD_ALERT: {
        const [level, desc] = [data[0] ?? 0, data[1] ?? ALERT.decode_error];
        if (data.length !== 2) return this.#fatal(ALERT.decode_error, new KtlsError('ERR_KTLS_BAD_ALERT', `malformed alert record of ${data.length} bytes`));
        if (desc === ALERT.close_notify) {
          this.#closeNotifyReceived = true;
          this.#endReadable();
          return false;
        }
        // user_canceled and other warnings carry no data; TLS 1.3 treats every other alert as fatal.
        if (level === 1 && this.version === 'TLSv1.2') return true;
        this.destroy(new KtlsAlertError(desc, false));
        return false;
      }
      case k.RECORD_HANDSHAKE:
        this.emit('handshake', data);
        return true;
      default:
        return this.#fatal(ALERT.unexpected_message, new KtlsError('ERR_KTLS_UNEXPECTED_RECORD', `unexpected record of content type ${type}`));
    }
  }

  #endReadable(): void {
    this.#readEnded = true;
    this.#wantRead = false;
    this.#setPoll();
    this.push(null);
  }

  #eof(): void {
    const opener = this.#p.rx;
    const partial = opener !== 'kernel' && opener !== null && opener.buffered > 0;
    // Without rx keys the bytes are not TLS records, so there is no close_notify to expect.
    if (opener === null || this.#closeNotifyReceived || (this.#allowTruncation && !partial)) {
      this.#endReadable();
      return;
    }
    this.destroy(new KtlsError('ERR_KTLS_TRUNCATED', partial ? 'connection closed in the middle of a TLS record' : 'connection closed without close_notify (truncated)'));
  }

  #readError(errno: number): void {
    if (errno === -E.EBADMSG) {
      this.#fatal(ALERT.bad_record_mac, new KtlsAlertError(ALERT.bad_record_mac, true, 'a record failed authentication (EBADMSG): fatal alert bad_record_mac'));
    } else if (errno === -E.EMSGSIZE) {
      this.#fatal(ALERT.record_overflow, new KtlsAlertError(ALERT.record_overflow, true, 'record too large or malformed header (EMSGSIZE): fatal alert record_overflow'));
    } else {
      this.destroy(new KtlsSystemError(errno, 'recvmsg'));
    }
  }

  /** Sends a fatal alert (best effort, once) and destroys with `err`. Returns false. */
  #fatal(alert: number, err: Error): false {
    if (!this.#fatalSent && this.#p.tx !== null && this.fd >= 0) {
      this.#fatalSent = true;
      const body = Buffer.from([2, alert]);
      // Anything still queued is abandoned: a fatal alert ends the connection.
      const head = this.#queue[0];
      // A userspace record half-sent at the head of the queue would swallow the alert's bytes.
      const midRecord = this.#p.tx !== 'kernel' && head !== undefined && head.started;
      if (!midRecord) {
        try {
          const wire = this.#p.tx === 'kernel' ? [body] : this.#p.tx.seal(constants().RECORD_ALERT, body);
          const rc = this.#p.handle.send(wire, this.#p.tx === 'kernel' ? constants().RECORD_ALERT : 0);
          if (err instanceof KtlsAlertError) err.alertSent = rc === wire.reduce((n, b) => n + b.length, 0);
        } catch {
          // sealing failed (keys wiped or sequence exhausted): no alert, still destroy
        }
      }
    }
    this.destroy(err);
    return false;
  }

  #setPoll(): void {
    if (this.destroyed) return;
    const events = (this.#wantRead && !this.#readEnded ? POLL_READABLE : 0) | (this.#queue.length > 0 ? POLL_WRITABLE : 0);
    if (events === this.#pollEvents) return;
    const rc = this.#p.handle.poll(events);
    if (rc < 0) {
      this.destroy(new KtlsSystemError(rc, 'epoll_ctl'));
      return;
    }
    this.#pollEvents = events;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#enqueue([chunk], 0, cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.#enqueue(
      chunks.map((c) => c.chunk),
      0,
      cb,
    );
  }

  override _final(cb: (err?: Error | null) => void): void {
    const k = constants();
    if (this.#p.tx === null) {
      // Without tx keys there is no close_notify to send, only the FIN.
      const rc = this.#p.handle.shutdown(k.SHUT_WR);
      cb(rc < 0 && rc !== -E.ENOTCONN ? new KtlsSystemError(rc, 'shutdown') : null);
      return;
    }
    // close_notify goes out as its own record after all queued data, then FIN.
    this.#enqueue([Buffer.from([1, ALERT.close_notify])], k.RECORD_ALERT, (err) => {
      if (err) return cb(err);
      this.#whenFlushed(() => {
        if (this.destroyed) return cb(null);
        const rc = this.#p.handle.shutdown(k.SHUT_WR);
        cb(rc < 0 && rc !== -E.ENOTCONN ? new KtlsSystemError(rc, 'shutdown') : null);
      });
    });
  }

  /**
   * Calls `done` once every record kernel TX has sealed has entered TCP. A
   * non-blocking sendmsg can return while kTLS still holds sealed records in its
   * own list, and shutdown()/close() would put the FIN ahead of them (or drop them).
   */
  #whenFlushed(done: () => void, delay = 1, waited = 0): void {
    const start = this.#p.txStart;
    if (this.#p.tx !== 'kernel' || !start || this.destroyed) return done();
    const k = constants();
    // A reset connection never drains: stop waiting once the socket has an error, or after 30 s.
    if (waited > 30_000 || this.#p.binding.getsockoptInt(this.fd, k.SOL_SOCKET, k.SO_ERROR) !== 0) return done();
    const entered = this.#p.binding.tcpEntered(this.fd);
    const seq = this.#p.binding.getSeq(this.fd, constants().TLS_TX);
    if (entered < 0 || typeof seq !== 'bigint') return done(); // cannot tell on this kernel: best effort
    const expected = start.entered + this.#kernelPlainSent + Number(seq - start.seq) * recordOverhead(this.version, this.cipher);
    if (entered >= expected) return done();
    setTimeout(() => this.#whenFlushed(done, Math.min(delay * 2, 50), waited + delay), delay);
  }

  #enqueue(bufs: Buffer[], type: number, cb: (err?: Error | null) => void): void {
    const tx = this.#p.tx;
    if (tx === null) {
      cb(new KtlsError('ERR_KTLS_NO_TX_KEYS', 'this socket was upgraded without tx keys and cannot send'));
      return;
    }
    const plain = bufs.reduce((n, b) => n + b.length, 0);
    if (tx !== 'kernel') {
      const k = constants();
      try {
        bufs = tx.seal(type === 0 ? k.RECORD_APPLICATION_DATA : type, bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs));
      } catch (err) {
        cb(err as Error); // e.g. ERR_KTLS_SEQ_EXHAUSTED
        return;
      }
      if (type === 0) this.#bytesWritten += plain;
      type = 0;
    } else if (type === 0) {
      this.#bytesWritten += plain;
    }
    this.#queue.push({ bufs, type, cb });
    if (this.#queue.length === 1) this.#writeLoop();
  }

  #writeLoop(): void {
    while (this.#queue.length > 0 && !this.destroyed) {
      const entry = this.#queue[0]!;
      const batch = entry.bufs.length > MAX_IOV ? entry.bufs.slice(0, MAX_IOV) : entry.bufs;
      const n = this.#p.handle.send(batch, entry.type);
      if (n === -E.EAGAIN || n === -E.EINTR) break;
      if (n < 0) {
        this.#queue.shift();
        entry.cb(new KtlsSystemError(n, 'sendmsg'));
        continue;
      }
      if (this.#p.tx === 'kernel') this.#kernelPlainSent += n;
      entry.started = true;
      let left = n;
      while (left > 0 && entry.bufs.length > 0) {
        const head = entry.bufs[0]!;
        if (head.length <= left) {
          left -= head.length;
          entry.bufs.shift();
        } else {
          entry.bufs[0] = head.subarray(left);
          left = 0;
        }
      }
      while (entry.bufs.length > 0 && entry.bufs[0]!.length === 0) entry.bufs.shift();
      if (entry.bufs.length === 0) {
        this.#queue.shift();
        entry.cb(null);
      }
    }
    this.#setPoll();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    for (const entry of this.#queue.splice(0)) entry.cb(err ?? new KtlsError('ERR_STREAM_DESTROYED', 'socket destroyed before the write completed'));
    try {
      this.#finalSeq = this.getSequenceNumbers();
    } catch {
      // The kernel no longer answers (e.g. after EBADMSG); there is nothing to keep.
    }
    const rc = this.#p.handle.close();
    for (const side of [this.#p.tx, this.#p.rx]) if (side !== null && side !== 'kernel') side.wipe();
    cb(err ?? (rc < 0 ? new KtlsSystemError(rc, 'close') : null));
  }
}
