/**
 * KtlsSocket: a `stream.Duplex` over a TCP fd whose records the kernel (or, in
 * fallback, the userspace record layer) seals and opens. The native handle does
 * one syscall per call; this file decides when to retry, wait, end or destroy.
 * @packageDocumentation
 */
import type { DuplexOptions } from 'node:stream';
import * as os from 'node:os';
import { POLL_READABLE, POLL_WRITABLE, type Binding, type NativeHandle, type NativeTcpInfo } from './binding.js';
import { cipherSpec, constants, type CipherName, type TlsVersion } from './constants.js';
import { ALERT, KtlsAlertError, KtlsError, KtlsSystemError, invalidArgType, invalidArgValue } from './errors.js';
import type { OpenedRecord, RecordOpener, RecordSealer } from './record.js';
import { KtlsSocketBase } from './socket-base.js';
import { KeySchedule, KeyUpdateOp, installKernelKeys, keyUpdatesIn, rekeyUserspace } from './keyupdate.js';
import { FdWatcher, SendFileOp, SpliceFromOp, consume, type FileSource, type TxContext, type WriteOp } from './zerocopy.js';

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
  /**
   * Largest plaintext per record sent (64..16384); see {@link KtlsSocket.maxRecordSize}.
   * Under kernel TX it needs `TLS_TX_MAX_PAYLOAD_LEN`: `ERR_KTLS_UNSUPPORTED` (and
   * the connection closed) on kernels without it.
   */
  maxRecordSize?: number;
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
  /** TLS 1.3 application traffic secrets, for following KeyUpdates (copied, then wiped by the caller). */
  trafficSecrets?: { tx?: Buffer | undefined; rx?: Buffer | undefined };
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
  op?: WriteOp;
  counted?: number;
  seal?: boolean; // userspace: plaintext still to be sealed
  cb: (err?: Error | null) => void;
}

/** State of a running {@link KtlsSocket.spliceTo} under kernel RX. */
interface SpliceReader {
  target: number;
  remaining: number;
  sent: number;
  held: Buffer[];
  pipe: [number, number] | null;
  inPipe: number;
  watcher: FdWatcher;
  waitSocket: boolean;
  resolve: (n: number) => void;
  reject: (e: Error) => void;
}

/** Smallest record size limit RFC 8449 allows. */
const MIN_RECORD_SIZE = 64;

/** `TCP_INFO` as {@link KtlsSocket.getTcpInfo} reports it. */
export interface TcpInfo extends NativeTcpInfo {
  /** The SYN carried data (TCP Fast Open), sent or received. */
  readonly synData: boolean;
}

/** Options of {@link KtlsSocket.sendFile}. */
export interface SendFileOptions {
  /** First byte of the file to send (default 0). */
  offset?: number;
  /** Bytes to send (default: to the end of the file). */
  length?: number;
}

/** Options of {@link KtlsSocket.spliceFrom} and {@link KtlsSocket.spliceTo}. */
export interface SpliceOptions {
  /** Stop after this many bytes (default: until end of input). */
  length?: number;
}

/** A zero-length chunk stands in for a WriteOp in the Writable queue, so ops keep their place among writes. */
const opMarkers = new WeakMap<Buffer, WriteOp>();

function checkLength(name: string, v: number | undefined): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalidArgValue(`Expected a non-negative integer for ${name} but received ${String(v)}`);
}

/**
 * A TLS connection whose record protection runs in the kernel. Obtain one from
 * `ktls.upgrade()`. Reads deliver application data; the peer's close_notify
 * ends the readable side; a fatal alert destroys the socket with
 * {@link KtlsAlertError}; handshake records are emitted as `'handshake'` events.
 */
export class KtlsSocket extends KtlsSocketBase {
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
  #reader: SpliceReader | null = null;
  #schedule: KeySchedule | null = null;
  #opResults = new Map<WriteOp, { resolve: (n: number) => void; reject: (e: Error) => void }>();
  #txCtx: TxContext | undefined;
  #opWaiting = false;
  #uncorkPending = false;
  #tcpCorked = false;
  #maxRecordSize: number | undefined;

  /** @internal Use `ktls.upgrade()`. */
  constructor(paths: RecordPaths, options: KtlsSocketOptions = {}) {
    const duplexOptions: DuplexOptions = { allowHalfOpen: options.allowHalfOpen ?? false, emitClose: true, autoDestroy: true };
    if (options.highWaterMark !== undefined) duplexOptions.highWaterMark = options.highWaterMark;
    super(duplexOptions);
    this.#p = paths;
    if (paths.version === 'TLSv1.3') this.#schedule = new KeySchedule(paths.cipher, paths.trafficSecrets ?? {});
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

  /**
   * Holds writes back, as `Writable#cork()`, and also sets `TCP_CORK` so that
   * what is written until the matching {@link KtlsSocket.uncork} (headers, a
   * {@link KtlsSocket.sendFile}) leaves as full segments, not one per write.
   */
  override cork(): void {
    super.cork();
    if (this.writableCorked === 1 && !this.#tcpCorked) this.#setTcpCork(true);
  }

  /** Releases {@link KtlsSocket.cork}; `TCP_CORK` is cleared once everything written under it has gone to the kernel. */
  override uncork(): void {
    super.uncork();
    if (this.writableCorked === 0 && this.#tcpCorked) {
      this.#uncorkPending = true;
      if (this.#queue.length === 0) this.#setTcpCork(false);
    }
  }

  #setTcpCork(on: boolean): void {
    this.#uncorkPending = false;
    if (this.destroyed || this.fd < 0) return;
    const k = constants();
    const rc = this.#p.binding.setsockoptInt(this.fd, k.SOL_TCP, k.TCP_CORK, on ? 1 : 0);
    if (rc < 0) return void this.destroy(new KtlsSystemError(rc, 'setsockopt(TCP_CORK)'));
    this.#tcpCorked = on;
  }

  /**
   * Largest plaintext per record this socket sends (RFC 8449's record size
   * limit; OpenSSL's `split_send_fragment`). Under kernel TX it is
   * `TLS_TX_MAX_PAYLOAD_LEN`, which older kernels lack: setting it there throws
   * `ERR_KTLS_UNSUPPORTED`. The userspace record layer always honours it.
   */
  get maxRecordSize(): number {
    if (this.#maxRecordSize !== undefined) return this.#maxRecordSize;
    return constants().MAX_PLAINTEXT;
  }

  set maxRecordSize(size: number) {
    this.setMaxRecordSize(size);
  }

  /** Sets {@link KtlsSocket.maxRecordSize}; returns this. */
  setMaxRecordSize(size: number): this {
    const max = constants().MAX_PLAINTEXT;
    if (typeof size !== 'number' || !Number.isInteger(size) || size < MIN_RECORD_SIZE || size > max)
      throw invalidArgValue(`Expected an integer from ${MIN_RECORD_SIZE} to ${max} for maxRecordSize but received ${String(size)}`);
    if (this.#p.tx === 'kernel') {
      const rc = this.#p.binding.setRecordSize(this.fd, size);
      if (rc === -E.ENOPROTOOPT) {
        throw Object.assign(new KtlsError('ERR_KTLS_UNSUPPORTED', 'this kernel has no TLS_TX_MAX_PAYLOAD_LEN (record size limit); it always sends records of up to 16384 bytes'), {
          errno: rc,
          syscall: 'setsockopt(TLS_TX_MAX_PAYLOAD_LEN)',
        });
      }
      if (rc < 0) throw new KtlsSystemError(rc, 'setsockopt(TLS_TX_MAX_PAYLOAD_LEN)');
    }
    this.#maxRecordSize = size;
    return this;
  }

  /** `TCP_INFO` of the connection: segment and byte counters, RTT, Fast Open flags (`synData`). */
  getTcpInfo(): TcpInfo {
    const info = this.#p.binding.tcpInfo(this.fd);
    if (typeof info === 'number') throw new KtlsSystemError(info, 'getsockopt(TCP_INFO)');
    return { ...info, synData: (info.options & constants().TCPI_OPT_SYN_DATA) !== 0 };
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
    if (this.#reader) return; // spliceTo() owns the socket's input until it settles
    const early = this.#p.early;
    while (early.length > 0) {
      if (!this.#deliver(early[0]!.type, early.shift()!.data)) return;
    }
    this.#readLoop();
  }

  #readLoop(): void {
    const rx = this.#p.rx;
    if (this.#reader) return this.#spliceStep();
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
        this.activity();
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
        if (this.version === 'TLSv1.3') for (const request of keyUpdatesIn(data)) if (!this.#peerKeyUpdate(request === 1)) return false;
        return true;
      default:
        return this.#fatal(ALERT.unexpected_message, new KtlsError('ERR_KTLS_UNEXPECTED_RECORD', `unexpected record of content type ${type}`));
    }
  }

  /** The peer moved to its next keys: follow on RX, and answer a request with our own KeyUpdate. */
  #peerKeyUpdate(requested: boolean): boolean {
    const rx = this.#p.rx;
    try {
      const keys = this.#schedule!.next('rx');
      if (rx === 'kernel') installKernelKeys(this.#p, this.fd, 'rx', this.cipher, keys);
      else if (rx !== null) rekeyUserspace(rx, keys);
    } catch (err) {
      // Reading on would stall (EKEYEXPIRED) or fail every record: end the connection, naming why.
      this.destroy(err as Error);
      return false;
    }
    this.emit('keyUpdate', { direction: 'rx', requested });
    if (requested && this.#p.tx !== null && !this.writableEnded) {
      this.#startOp(new KeyUpdateOp(this.#schedule!, this.cipher, false)).then(
        () => this.emit('keyUpdate', { direction: 'tx', requested: false }),
        (err: Error) => this.destroy(err),
      );
    }
    return true;
  }

  /**
   * Initiates a TLS 1.3 KeyUpdate: sends the message after everything written
   * so far, then seals with the next keys (kernel rekey needs Linux 6.14+;
   * `ERR_KTLS_REKEY_UNSUPPORTED` before). `requestPeer` asks the peer to update
   * its keys too. Resolves once the new TX keys are in place.
   */
  updateKeys(options: { requestPeer?: boolean } = {}): Promise<void> {
    if (this.version !== 'TLSv1.3') return Promise.reject(new KtlsError('ERR_KTLS_UNSUPPORTED', 'KeyUpdate exists in TLS 1.3 only'));
    return this.#startOp(new KeyUpdateOp(this.#schedule!, this.cipher, options.requestPeer === true)).then(() => {
      this.emit('keyUpdate', { direction: 'tx', requested: options.requestPeer === true });
    });
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
    const wantRead = this.#reader ? this.#reader.waitSocket : this.#wantRead;
    const events = (wantRead && !this.#readEnded ? POLL_READABLE : 0) | (this.#queue.length > 0 && !this.#opWaiting ? POLL_WRITABLE : 0);
    if (events === this.#pollEvents) return;
    const rc = this.#p.handle.poll(events);
    if (rc < 0) {
      this.destroy(new KtlsSystemError(rc, 'epoll_ctl'));
      return;
    }
    this.#pollEvents = events;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    const op = chunk.length === 0 ? opMarkers.get(chunk) : undefined;
    if (op) this.#enqueueOp(op, cb);
    else this.#enqueue([chunk], 0, cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    // Split the batch at op markers; the callback runs once the last part is done.
    let parts = 0;
    let failed = false;
    let all = false;
    const partDone = (err?: Error | null): void => {
      if (failed) return;
      if (err) {
        failed = true;
        return cb(err);
      }
      if (--parts === 0 && all) cb(null);
    };
    let run: Buffer[] = [];
    const flush = (): void => {
      if (run.length === 0) return;
      parts++;
      this.#enqueue(run, 0, partDone);
      run = [];
    };
    for (const { chunk } of chunks) {
      const op = chunk.length === 0 ? opMarkers.get(chunk) : undefined;
      if (!op) {
        run.push(chunk);
        continue;
      }
      flush();
      parts++;
      this.#enqueueOp(op, partDone);
    }
    flush();
    all = true;
    if (parts === 0) cb(null);
  }

  /**
   * Sends (part of) a file. Under kernel TX the bytes go file → socket with
   * sendfile(2) and never enter JavaScript; with the userspace record layer they
   * are read and sealed here. Ordered with `write()` calls before and after it.
   * Resolves with the bytes sent; rejects (with `bytesSent`) if the file cannot
   * be read or the socket is destroyed first. A file that cannot be opened
   * rejects before any byte is sent and leaves the connection usable.
   */
  sendFile(file: FileSource, options: SendFileOptions = {}): Promise<number> {
    if (typeof file !== 'string' && typeof file !== 'number' && (typeof file !== 'object' || file === null || typeof file.fd !== 'number'))
      throw invalidArgType(`Expected a path, an fd or a FileHandle for file but received ${typeof file}`);
    checkLength('options.offset', options.offset);
    checkLength('options.length', options.length);
    return this.#startOp(new SendFileOp(file, options.offset ?? 0, options.length));
  }

  /**
   * Moves bytes from a readable fd (a pipe directly; a socket through an
   * internal pipe) into this socket with splice(2) until EOF or `length`.
   * Ordered with `write()`s like {@link KtlsSocket.sendFile}. Does not close `fd`.
   */
  spliceFrom(fd: number, options: SpliceOptions = {}): Promise<number> {
    if (!Number.isInteger(fd) || fd < 0) throw invalidArgType(`Expected a file descriptor for fd but received ${String(fd)}`);
    checkLength('options.length', options.length);
    return this.#startOp(new SpliceFromOp(fd, options.length));
  }

  /**
   * Moves decrypted application data out of this socket into `fd` (a pipe
   * directly with splice(2); a file or socket through an internal pipe) until
   * `length` bytes, the peer's close_notify, or EOF. Data already buffered in
   * the stream goes first. The readable side stays paused afterwards. Control
   * records met on the way are handled as reads are: close_notify ends the
   * stream, alerts destroy it, handshake records become `'handshake'` events.
   * Does not close `fd`.
   */
  spliceTo(fd: number, options: SpliceOptions = {}): Promise<number> {
    if (!Number.isInteger(fd) || fd < 0) throw invalidArgType(`Expected a file descriptor for fd but received ${String(fd)}`);
    checkLength('options.length', options.length);
    if (this.#reader) throw new KtlsError('ERR_KTLS_BUSY', 'a spliceTo() is already running on this socket');
    const remaining = options.length ?? Number.POSITIVE_INFINITY;
    return new Promise((resolve, reject) => {
      if (this.destroyed) return reject(new KtlsError('ERR_STREAM_DESTROYED', 'the socket is destroyed'));
      const kind = this.#p.binding.fdKind(fd);
      if (kind < 0) return reject(new KtlsSystemError(kind, 'fstat'));
      this.pause();
      const early = this.#p.early.splice(0);
      for (const rec of early) this.#deliver(rec.type, rec.data);
      const reader: SpliceReader = { target: fd, remaining, sent: 0, held: [], pipe: null, inPipe: 0, watcher: new FdWatcher(this.#p.binding, fd), waitSocket: false, resolve, reject };
      this.#reader = reader;
      // What the stream already holds was read before this call: it goes first.
      while (this.readableLength > 0 && reader.remaining > 0) {
        const chunk = this.read() as Buffer | null;
        if (chunk === null) break;
        const take = Math.min(chunk.length, reader.remaining);
        if (take < chunk.length) this.unshift(chunk.subarray(take));
        reader.held.push(chunk.subarray(0, take));
        reader.remaining -= take;
      }
      if (this.#p.rx !== 'kernel' || kind !== 1 || reader.held.length > 0) {
        const p = this.#p.binding.pipe(1, 0);
        if (typeof p === 'number') return this.#settleReader(new KtlsSystemError(p, 'pipe2'));
        reader.pipe = p;
      }
      this.#spliceStep();
    });
  }

  #settleReader(err: Error | null): void {
    const r = this.#reader;
    if (!r) return;
    this.#reader = null;
    r.watcher.close();
    if (r.pipe) for (const fd of r.pipe) this.#p.binding.closeFd(fd);
    if (err) r.reject(Object.assign(err, { bytesSent: r.sent }));
    else r.resolve(r.sent);
    if (!this.destroyed) this.#setPoll();
  }

  /** One pass of spliceTo(): drains held data and the internal pipe into the target, then pulls from the socket. */
  #spliceStep(): void {
    const r = this.#reader;
    if (!r) return;
    const b = this.#p.binding;
    const k = constants();
    const flags = k.SPLICE_F_MOVE | k.SPLICE_F_NONBLOCK;
    const waitTarget = (): void => {
      r.waitSocket = false;
      this.#setPoll();
      r.watcher.once(POLL_WRITABLE, () => this.#spliceStep());
    };
    try {
      for (;;) {
        if (this.destroyed) return;
        if (r.pipe && r.inPipe > 0) {
          const n = b.splice(r.pipe[0], r.target, r.inPipe, flags);
          if (n === -E.EAGAIN || n === -E.EINTR) return waitTarget();
          if (n < 0) throw new KtlsSystemError(n, 'splice');
          r.inPipe -= n;
          r.sent += n;
          continue;
        }
        if (r.held.length > 0 && !r.pipe) {
          // Plaintext read by recvmsg (next to an empty or control record) must
          // queue behind what was spliced: from here on everything goes through our pipe.
          const p = b.pipe(1, 0);
          if (typeof p === 'number') throw new KtlsSystemError(p, 'pipe2');
          r.pipe = p;
        }
        if (r.pipe && r.held.length > 0) {
          // Held plaintext goes through our own non-blocking pipe: the target may be a blocking fd.
          const head = r.held[0]!;
          const n = b.writeFd(r.pipe[1], head, 0, head.length);
          if (n < 0 && n !== -E.EAGAIN && n !== -E.EINTR) throw new KtlsSystemError(n, 'write');
          if (n > 0) {
            r.inPipe += n;
            consume(r.held, n);
          }
          continue;
        }
        if (r.remaining === 0 || this.#readEnded) return this.#settleReader(null);
        const want = Math.min(r.remaining, 1 << 20);
        r.waitSocket = false;
        let n: number;
        if (this.#p.rx === 'kernel') {
          n = b.splice(this.fd, r.pipe ? r.pipe[1] : r.target, want, flags);
        } else {
          const pulled = this.#pullUserspace(r, want);
          if (pulled === 'again') continue;
          n = pulled;
        }
        if (n === -E.EAGAIN || n === -E.EINTR) {
          // Either the socket has no complete record or the target pipe is full.
          if (!r.pipe) {
            const t = b.ready(r.target, POLL_WRITABLE);
            if (t >= 0 && (t & POLL_WRITABLE) === 0) return waitTarget();
          }
          r.waitSocket = true;
          return this.#setPoll();
        }
        if (n === -E.EINVAL || n === -E.EIO || n === 0) {
          // splice(2) stops at a record that is not application data (and moves
          // nothing for an empty one): read that record the ordinary way.
          if (!this.#readOneRecord(r)) return;
          continue;
        }
        if (n < 0) return this.#readError(n);
        this.#bytesRead += n;
        r.remaining -= n;
        if (r.pipe) r.inPipe += n;
        else r.sent += n;
      }
    } catch (err) {
      this.#settleReader(err as Error);
    }
  }

  /** Userspace RX for spliceTo(): opens records into `held`. Returns what a splice would: bytes, 0 at a control record, or -errno. */
  #pullUserspace(r: SpliceReader, want: number): number | 'again' {
    const opener = this.#p.rx;
    if (opener === 'kernel' || opener === null) return 0;
    const rec = this.#openNext(opener);
    if (rec === undefined) return -E.EBADMSG;
    if (rec === null) {
      if (this.#slab.length - this.#slabOff < 32 * 1024) {
        this.#slab = Buffer.allocUnsafe(SLAB);
        this.#slabOff = 0;
      }
      const n = this.#p.handle.recv(this.#slab, this.#slabOff, this.#slab.length - this.#slabOff);
      if (n < 0) return n;
      if (n === 0) return 0;
      opener.push(this.#slab.subarray(this.#slabOff, this.#slabOff + n));
      this.#slabOff += n;
      return this.#pullUserspace(r, want);
    }
    if (rec.type !== constants().RECORD_APPLICATION_DATA || rec.data.length === 0) {
      this.#p.early.unshift(rec);
      return 0;
    }
    const take = Math.min(want, rec.data.length);
    if (take < rec.data.length) this.#p.early.unshift({ type: rec.type, data: rec.data.subarray(take) });
    r.held.push(rec.data.subarray(0, take));
    this.#bytesRead += take;
    r.remaining -= take;
    return 'again';
  }

  /** Reads one record with recvmsg (a control record, an empty record, or EOF) during spliceTo(). False: stop. */
  #readOneRecord(r: SpliceReader): boolean {
    const early = this.#p.early.shift();
    let type: number;
    let data: Buffer;
    if (early) {
      ({ type, data } = early);
    } else {
      if (this.#slab.length - this.#slabOff < 32 * 1024) {
        this.#slab = Buffer.allocUnsafe(SLAB);
        this.#slabOff = 0;
      }
      const n = this.#p.handle.recv(this.#slab, this.#slabOff, Math.min(this.#slab.length - this.#slabOff, r.remaining === Infinity ? SLAB : Math.max(r.remaining, 2)));
      if (n === -E.EAGAIN || n === -E.EINTR) return true;
      if (n < 0) {
        this.#readError(n);
        return false;
      }
      if (n === 0) {
        this.#eof();
        return !this.destroyed;
      }
      type = this.#p.rx === 'kernel' ? this.#p.out[0] || constants().RECORD_APPLICATION_DATA : constants().RECORD_APPLICATION_DATA;
      data = this.#slab.subarray(this.#slabOff, this.#slabOff + n);
      this.#slabOff += n;
    }
    if (type === constants().RECORD_APPLICATION_DATA) {
      this.#bytesRead += data.length;
      const take = Math.min(data.length, r.remaining);
      if (take < data.length) this.unshift(data.subarray(take));
      if (take > 0) r.held.push(data.subarray(0, take));
      r.remaining -= take;
      return true;
    }
    this.#deliver(type, data);
    return !this.destroyed;
  }

  #startOp(op: WriteOp): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.destroyed || this.writableEnded) {
        reject(new KtlsError(this.destroyed ? 'ERR_STREAM_DESTROYED' : 'ERR_STREAM_WRITE_AFTER_END', 'the socket is no longer writable'));
        return;
      }
      const marker = Buffer.alloc(0);
      opMarkers.set(marker, op);
      this.#opResults.set(op, { resolve, reject });
      this.write(marker);
    });
  }

  #enqueueOp(op: WriteOp, cb: (err?: Error | null) => void): void {
    if (this.#p.tx === null) {
      this.#settleOp(op, new KtlsError('ERR_KTLS_NO_TX_KEYS', 'this socket was upgraded without tx keys and cannot send'));
      cb(null);
      return;
    }
    this.#queue.push({ bufs: [], type: 0, op, cb });
    if (this.#queue.length === 1) this.#writeLoop();
  }

  /** Resolves or rejects an op's promise once; failures carry `bytesSent`. */
  #settleOp(op: WriteOp, err: Error | null): void {
    const r = this.#opResults.get(op);
    this.#opResults.delete(op);
    op.release();
    if (!r) return;
    if (err) {
      Object.assign(err, { bytesSent: op.sent });
      r.reject(err);
    } else {
      r.resolve(op.sent);
    }
  }

  #txContext(): TxContext {
    const tx = this.#p.tx;
    const size = (): number | undefined => this.#maxRecordSize;
    return (this.#txCtx ??= {
      binding: this.#p.binding,
      handle: this.#p.handle,
      sealer: tx !== 'kernel' && tx !== null ? tx : null,
      get maxRecordSize() {
        return size();
      },
      accepted: (n) => {
        this.#kernelPlainSent += n;
      },
      wake: () => {
        if (!this.destroyed) this.#writeLoop();
      },
    });
  }

  /** Adds what an op has sent since last counted (userspace ops make progress in I/O callbacks). */
  #countOp(entry: WriteEntry & { op: WriteOp }): void {
    if (entry.op.sent !== entry.counted) this.activity();
    this.#bytesWritten += entry.op.sent - (entry.counted ?? 0);
    entry.counted = entry.op.sent;
  }

  /** Runs the op at the head of the queue; returns false when the loop must stop. */
  #runOp(entry: WriteEntry & { op: WriteOp }): boolean {
    const op = entry.op;
    entry.started = true; // a userspace op may be mid-record from here on
    let state: 'done' | 'blocked' | 'pending';
    try {
      state = op.step(this.#txContext());
    } catch (err) {
      this.#queue.shift();
      this.#countOp(entry);
      this.#settleOp(op, err as Error);
      // Bytes already on the wire make the stream unusable; otherwise the connection goes on.
      if (op.sent > 0 || op.committed) this.destroy(err as Error);
      else entry.cb(null);
      return !this.destroyed;
    }
    this.#countOp(entry);
    if (state !== 'done') {
      this.#opWaiting = state === 'pending';
      return false;
    }
    this.#queue.shift();
    this.#settleOp(op, null);
    entry.cb(null);
    return true;
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
    this.#bytesWritten += type === 0 ? plain : 0;
    // Userspace records are sealed when they reach the head of the queue, so
    // sequence numbers follow wire order even when ops (sendFile) sit in between.
    // An empty write is no record at all (the kernel sends nothing for it either).
    this.#queue.push({ bufs, type, cb, seal: tx !== 'kernel' && (type !== 0 || plain > 0) });
    if (this.#queue.length === 1) this.#writeLoop();
  }

  /** Seals a userspace entry's plaintext in place; false (entry failed and removed) on error. */
  #sealHead(entry: WriteEntry, sealer: RecordSealer): boolean {
    const k = constants();
    try {
      entry.bufs = sealer.seal(entry.type === 0 ? k.RECORD_APPLICATION_DATA : entry.type, entry.bufs.length === 1 ? entry.bufs[0]! : Buffer.concat(entry.bufs), this.#maxRecordSize);
    } catch (err) {
      this.#queue.shift();
      entry.cb(err as Error); // e.g. ERR_KTLS_SEQ_EXHAUSTED
      return false;
    }
    entry.type = 0;
    entry.seal = false;
    return true;
  }

  #writeLoop(): void {
    this.#opWaiting = false;
    while (this.#queue.length > 0 && !this.destroyed) {
      const entry = this.#queue[0]!;
      if (entry.op) {
        if (this.#runOp(entry as WriteEntry & { op: WriteOp })) continue;
        break;
      }
      const tx = this.#p.tx;
      if (entry.seal && tx !== 'kernel' && tx !== null && !this.#sealHead(entry, tx)) continue;
      const batch = entry.bufs.length > MAX_IOV ? entry.bufs.slice(0, MAX_IOV) : entry.bufs;
      const n = this.#p.handle.send(batch, entry.type);
      if (n === -E.EAGAIN || n === -E.EINTR) break;
      if (n < 0) {
        this.#queue.shift();
        entry.cb(new KtlsSystemError(n, 'sendmsg'));
        continue;
      }
      if (this.#p.tx === 'kernel') this.#kernelPlainSent += n;
      if (n > 0) this.activity();
      entry.started = true;
      consume(entry.bufs, n);
      if (entry.bufs.length === 0) {
        this.#queue.shift();
        entry.cb(null);
      }
    }
    if (this.#queue.length === 0 && this.#uncorkPending) this.#setTcpCork(false);
    this.#setPoll();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // The reason the socket died (an alert, a bad record) is the reason spliceTo() failed.
    if (this.#reader) this.#settleReader(err ?? new KtlsError('ERR_STREAM_DESTROYED', 'socket destroyed before spliceTo() completed'));
    for (const entry of this.#queue.splice(0)) {
      const e = err ?? new KtlsError('ERR_STREAM_DESTROYED', 'socket destroyed before the write completed');
      if (entry.op) this.#settleOp(entry.op, new KtlsError('ERR_STREAM_DESTROYED', 'socket destroyed before the transfer completed', { cause: e }));
      entry.cb(e);
    }
    try {
      this.#finalSeq = this.getSequenceNumbers();
    } catch {
      // The kernel no longer answers (e.g. after EBADMSG); there is nothing to keep.
    }
    this.#schedule?.wipe();
    const rc = this.#p.handle.close();
    for (const side of [this.#p.tx, this.#p.rx]) if (side !== null && side !== 'kernel') side.wipe();
    cb(err ?? (rc < 0 ? new KtlsSystemError(rc, 'close') : null));
  }
}
