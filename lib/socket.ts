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
import { ALERT, KtlsAlertError, KtlsError, KtlsSystemError, alertName, invalidArgType, invalidArgValue } from './errors.js';
import type { OpenedRecord, RecordOpener, RecordSealer } from './record.js';
import { KtlsSocketBase } from './socket-base.js';
import { KeySchedule, KeyUpdateOp, installKernelKeys, rekeyUserspace } from './keyupdate.js';
import { HandshakeReader } from './post-handshake.js';
import { SpliceOut, type RxHost } from './splice-read.js';
import { WriteQueue } from './write-queue.js';
import { SendFileOp, SpliceFromOp, type FileSource, type WriteOp } from './zerocopy.js';

const E = os.constants.errno;
const SLAB = 256 * 1024;

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

/** A record opened before the switch; a KeyUpdate among them whose new RX keys `upgrade()` already installed is marked. */
export type EarlyRecord = OpenedRecord & { keyUpdateFollowed?: boolean };

/** How each direction's records are protected; built by `upgrade()`. */
export interface RecordPaths {
  binding: Binding;
  handle: NativeHandle;
  out: Int32Array;
  version: TlsVersion;
  cipher: CipherName;
  /** Kernel sends (TLS_TX installed), userspace sealer, plain bytes to a record layer beyond the fd (node:tls), or no TX keys. */
  tx: 'kernel' | 'plain' | RecordSealer | null;
  /** Kernel receives (TLS_RX installed), userspace opener, or neither. */
  rx: 'kernel' | RecordOpener | null;
  /** Our side of the handshake, when known (it decides which post-handshake messages the peer may send). */
  role?: 'client' | 'server';
  /** Records taken off the wire before the switch, already opened, delivered first. */
  early: EarlyRecord[];
  /** TLS 1.3 application traffic secrets, for following KeyUpdates (copied, then wiped by the caller). */
  trafficSecrets?: { tx?: Buffer | undefined; rx?: Buffer | undefined };
  /** For kernel TX: bytes that had entered TCP, and the TX seq, when the keys were installed. */
  txStart?: { entered: number; seq: bigint };
  remote: { address?: string; port?: number; family?: string };
  local: { address?: string; port?: number };
  /** The TCP connection's fd when it is not `handle.fd` (records carried by node:tls over a socketpair). */
  tcpFd?: number;
  /** Set when node:tls carries the records (a suite neither kTLS nor the userspace layer has): its protocol name. */
  nodeTls?: { protocol: string };
}

/** Wire bytes a record adds to its plaintext: header, tag, TLS 1.2's explicit nonce, TLS 1.3's inner type. */
function recordOverhead(version: TlsVersion, cipher: CipherName): number {
  const spec = cipherSpec(cipher);
  return 5 + spec.tagSize + (version === 'TLSv1.3' ? 1 : spec.saltSize > 0 ? spec.ivSize : 0);
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
  /** Negotiated TLS version (`'TLSv1'`/`'TLSv1.1'` only where node:tls carries the records and was allowed them). */
  readonly version: TlsVersion | 'TLSv1' | 'TLSv1.1';
  /** Negotiated AEAD cipher; null where node:tls carries the records (a suite kTLS lacks: see `getCipher()`). */
  readonly cipher: CipherName | null;
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
  #slab = Buffer.allocUnsafe(SLAB);
  #slabOff = 0;
  #wantRead = false;
  #queue: WriteQueue;
  #pollEvents = 0;
  #closeNotifyReceived = false;
  #readEnded = false;
  #fatalSent = false;
  #finalSeq: SequenceNumbers | undefined;
  #reader: SpliceOut | null = null;
  #shortRead = false;
  #pollErrors = 0;
  /** Kernel TX records sealed under earlier keys (null: unknown, after a failed read). */
  #txRecords: number | null = 0;
  /** The TX sequence number the current kernel keys started at. */
  #txEpochSeq = 0n;
  #handshake: HandshakeReader;
  #schedule: KeySchedule | null = null;
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
    this.#handshake = new HandshakeReader(paths.version, paths.role);
    this.#txEpochSeq = paths.txStart?.seq ?? 0n;
    this.version = (paths.nodeTls?.protocol as KtlsSocket['version'] | undefined) ?? paths.version;
    this.cipher = paths.nodeTls ? null : paths.cipher;
    this.remoteAddress = paths.remote.address;
    this.remotePort = paths.remote.port;
    this.remoteFamily = paths.remote.family;
    this.localAddress = paths.local.address;
    this.localPort = paths.local.port;
    const self = this;
    this.#queue = new WriteQueue({
      binding: paths.binding,
      handle: paths.handle,
      tx: paths.tx,
      get destroyed() {
        return self.destroyed;
      },
      get maxRecordSize() {
        return self.#maxRecordSize;
      },
      destroy: (err) => void this.destroy(err),
      activity: () => this.activity(),
      txRekeying: () => this.#txRekeying(),
      passDone: () => {
        if (this.#queue.length === 0 && this.#uncorkPending) this.#setTcpCork(false);
        this.#setPoll();
      },
    });
  }

  #onPoll(status: number, events: number): void {
    if (this.destroyed) return;
    if (status < 0) return this.#pollError(status);
    this.#pollErrors = 0;
    if (events & POLL_WRITABLE) this.#queue.run();
    if (events & POLL_READABLE && !this.destroyed) this.#readLoop();
  }

  /**
   * EPOLLERR: libuv has stopped the poll and says EBADF whatever happened. The
   * syscalls know the real errno: what arrived before the error is read first
   * (as net.Socket does) and the read, or a queued write, then fails with it.
   * Only if neither is pending does SO_ERROR say it.
   */
  #pollError(status: number): void {
    this.#pollEvents = 0;
    if (this.#reader) this.#reader.step();
    else if (this.#wantRead && !this.#readEnded) this.#readLoop();
    if (!this.destroyed && this.#queue.length > 0) this.#queue.run();
    if (this.destroyed) return;
    const so = this.#takeSocketError();
    if (so !== 0) return this.#queue.length > 0 && !this.#wantRead ? void this.destroy(new KtlsSystemError(-so, 'write')) : this.#readError(-so, true);
    // The error was consumed on the way (or is gone): poll again, but never spin on a poll that keeps failing.
    if (++this.#pollErrors > 8) return void this.destroy(new KtlsSystemError(status, 'epoll_wait'));
    this.#setPoll();
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
    return this.#queue.bytesWritten;
  }

  /** The underlying fd (owned by this socket; -1 once closed). */
  get fd(): number {
    return this.#p.handle.fd;
  }

  /** @internal The TCP connection's fd, for TCP options (it differs from `fd` where node:tls carries the records). */
  get tcpFd(): number {
    return this.#p.tcpFd !== undefined && this.fd >= 0 ? this.#p.tcpFd : this.fd;
  }

  /**
   * The next record sequence numbers: read live from the kernel
   * (`getsockopt(SOL_TLS, TLS_TX/TLS_RX)`) for kernel directions. After the
   * socket is closed, the values it had when it closed.
   */
  getSequenceNumbers(): SequenceNumbers {
    if (this.#finalSeq) return { ...this.#finalSeq };
    const k = constants();
    const read = (path: RecordPaths['tx'] | RecordPaths['rx'], dir: number, name: string): bigint | null => {
      if (path === null || path === 'plain') return null;
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
    const rc = this.#p.binding.setsockoptInt(this.tcpFd, k.SOL_TCP, k.TCP_NODELAY, noDelay ? 1 : 0);
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
    const rc = this.#p.binding.setsockoptInt(this.tcpFd, k.SOL_TCP, k.TCP_CORK, on ? 1 : 0);
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
    if (this.#p.tx === 'plain') throw new KtlsError('ERR_KTLS_UNSUPPORTED', 'node:tls carries this connection\'s records and has no record size limit setting');
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
    const info = this.#p.binding.tcpInfo(this.tcpFd);
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
      const rec = early.shift()!;
      if (!this.#deliver(rec.type, rec.data, rec.keyUpdateFollowed)) return;
    }
    this.#readLoop();
  }

  #readLoop(): void {
    const rx = this.#p.rx;
    if (this.#reader) return this.#reader.step();
    let drained = false;
    while (this.#wantRead && !this.destroyed && !this.#readEnded) {
      if (rx !== 'kernel' && rx !== null) {
        const rec = this.#openNext(rx);
        if (rec === undefined) return; // destroyed
        if (rec !== null) {
          this.#deliver(rec.type, rec.data);
          continue;
        }
      }
      // A short read drained the socket: wait for the next readiness instead of
      // paying a recvmsg for EAGAIN (the poll is level-triggered, as libuv does it).
      if (drained) break;
      const got = this.#recvChunk(SLAB);
      drained = this.#shortRead;
      if (got === 'pushed') continue;
      if (typeof got !== 'number') {
        this.#deliver(got.type, got.data);
        continue;
      }
      if (got === -E.EAGAIN || got === -E.EINTR) return this.#setPoll();
      if (got < 0) return this.#readError(got);
      return this.#eof();
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

  /** Handles one record's plaintext; returns false once reading should pause or stop. `followed`: a KeyUpdate whose RX keys are already in. */
  #deliver(type: number, data: Buffer, followed = false): boolean {
    const k = constants();
    // RFC 8446 §5.1: handshake messages are never interleaved with other records.
    if (type !== k.RECORD_HANDSHAKE && this.#handshake.partial) return this.#protocolError(ALERT.unexpected_message, `a record of type ${type} arrived in the middle of a handshake message`);
    switch (type) {
      case k.RECORD_APPLICATION_DATA:
        this.#bytesRead += data.length;
        this.activity();
        if (data.length === 0) return true;
        if (!this.push(data)) this.#wantRead = false;
        return this.#wantRead;
      case k.RECORD_ALERT: {
        const [level, desc] = [data[0] ?? 0, data[1] ?? ALERT.decode_error];
        if (data.length !== 2) return this.#protocolError(ALERT.decode_error, `an alert record of ${data.length} bytes`);
        if (desc === ALERT.close_notify) {
          this.#closeNotifyReceived = true;
          this.#endReadable();
          return false;
        }
        // RFC 8446 §6.1: user_canceled is a closure alert (close_notify follows), not an error.
        if (desc === ALERT.user_canceled) return true;
        // TLS 1.2 warnings carry no data; TLS 1.3 treats every other alert as fatal.
        if (level === 1 && this.#p.version === 'TLSv1.2') return true;
        this.destroy(new KtlsAlertError(desc, false));
        return false;
      }
      case k.RECORD_HANDSHAKE:
        if (data.length === 0) return this.#protocolError(ALERT.unexpected_message, 'an empty handshake record');
        this.emit('handshake', data);
        for (const msg of this.#handshake.push(data)) {
          if (msg.kind === 'fatal') return this.#protocolError(msg.alert, msg.reason);
          if (msg.kind === 'key-update' && !this.#peerKeyUpdate(msg.requested, followed)) return false;
          if (msg.kind === 'renegotiation') this.#warn(ALERT.no_renegotiation);
        }
        return true;
      default:
        return this.#protocolError(ALERT.unexpected_message, `a record of content type ${type} after the handshake`);
    }
  }

  /** The peer broke the protocol: fatal `alert`, destroyed with `ERR_KTLS_PROTOCOL`. Returns false. */
  #protocolError(alert: number, reason: string): false {
    return this.#fatal(alert, new KtlsAlertError(alert, true, `${reason}: fatal alert ${alertName(alert)}`, 'ERR_KTLS_PROTOCOL'));
  }

  /** Sends a warning alert after what is already queued (e.g. no_renegotiation). */
  #warn(alert: number): void {
    if (this.#p.tx === null || this.#p.tx === 'plain' || this.writableEnded || this.destroyed) return;
    this.#queue.enqueue([Buffer.from([1, alert])], constants().RECORD_ALERT, () => undefined);
  }

  /** The peer moved to its next keys: follow on RX (unless the switch already did), and answer a request with our own KeyUpdate. */
  #peerKeyUpdate(requested: boolean, followed: boolean): boolean {
    const rx = this.#p.rx;
    if (!followed) {
      try {
        const keys = this.#schedule!.next('rx');
        if (rx === 'kernel') installKernelKeys(this.#p, this.fd, 'rx', this.#p.cipher, keys);
        else if (rx !== null) rekeyUserspace(rx, keys);
      } catch (err) {
        // Reading on would stall (EKEYEXPIRED) or fail every record: end the connection, naming why.
        this.destroy(err as Error);
        return false;
      }
    }
    this.emit('keyUpdate', { direction: 'rx', requested });
    if (requested && this.#p.tx !== null && !this.writableEnded) {
      this.#startOp(new KeyUpdateOp(this.#schedule!, this.#p.cipher, false)).then(
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
    if (this.#p.nodeTls) return Promise.reject(new KtlsError('ERR_KTLS_UNSUPPORTED', 'node:tls carries this connection\'s records and has no KeyUpdate API'));
    return this.#startOp(new KeyUpdateOp(this.#schedule!, this.#p.cipher, options.requestPeer === true)).then(() => {
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

  /**
   * A read failed. kTLS reports a record it cannot open as EBADMSG, and leaves
   * that error pending (SO_ERROR) when authentication failed, but consumes it
   * when it refused the record by its header: one too short to hold a tag,
   * which in TLS 1.3 can only be a ChangeCipherSpec, not allowed after the
   * handshake. `socketErrorTaken`: SO_ERROR was already read (it said `errno`).
   */
  #readError(errno: number, socketErrorTaken = false): void {
    const kernel = this.#p.rx === 'kernel';
    if (errno === -E.EBADMSG) {
      const authFailure = socketErrorTaken || !kernel || this.#takeSocketError() === E.EBADMSG;
      if (!authFailure && this.#p.version === 'TLSv1.3') return void this.#protocolError(ALERT.unexpected_message, 'a record too short for its tag (a ChangeCipherSpec) after the handshake (EBADMSG)');
      this.#fatal(ALERT.bad_record_mac, new KtlsAlertError(ALERT.bad_record_mac, true, 'a record failed authentication (EBADMSG): fatal alert bad_record_mac'));
    } else if (errno === -E.EMSGSIZE) {
      this.#fatal(ALERT.record_overflow, new KtlsAlertError(ALERT.record_overflow, true, 'record too large or malformed header (EMSGSIZE): fatal alert record_overflow'));
    } else if (errno === -E.EINVAL && kernel) {
      // kTLS refuses a record header with the wrong version; OpenSSL's alerts for that.
      const alert = this.#p.version === 'TLSv1.3' ? ALERT.decode_error : ALERT.protocol_version;
      this.#fatal(alert, new KtlsAlertError(alert, true, `a record with a wrong version (EINVAL): fatal alert ${alertName(alert)}`));
    } else {
      this.destroy(new KtlsSystemError(errno, 'read'));
    }
  }

  /** Reads (and so clears) the socket's pending error: a positive errno, or 0. */
  #takeSocketError(): number {
    const k = constants();
    const so = this.#p.binding.getsockoptInt(this.fd, k.SOL_SOCKET, k.SO_ERROR);
    return so > 0 ? so : 0;
  }

  /** Sends a fatal alert (best effort, once) and destroys with `err`. Returns false. */
  #fatal(alert: number, err: Error): false {
    if (!this.#fatalSent && this.#p.tx !== null && this.#p.tx !== 'plain' && this.fd >= 0) {
      this.#fatalSent = true;
      const body = Buffer.from([2, alert]);
      // Anything still queued is abandoned: a fatal alert ends the connection.
      // A userspace record half-sent at the head of the queue would swallow the alert's bytes.
      if (!this.#queue.midRecord) {
        try {
          // kTLS refuses every send while the socket error an RX failure left (EBADMSG) is pending; reading SO_ERROR clears it.
          if (this.#p.tx === 'kernel') this.#takeSocketError();
          const wire = this.#p.tx === 'kernel' ? [body] : this.#p.tx.seal(constants().RECORD_ALERT, body);
          const rc = this.#p.handle.send(wire, this.#p.tx === 'kernel' ? constants().RECORD_ALERT : 0);
          const sent = rc === wire.reduce((n, b) => n + b.length, 0);
          if (err instanceof KtlsAlertError) err.alertSent = sent;
          // The peer reads the alert, then our FIN (close() alone may reset: the bad record is still unread).
          if (sent) this.#p.handle.shutdown(constants().SHUT_WR);
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
    const events = (wantRead && !this.#readEnded ? POLL_READABLE : 0) | (this.#queue.length > 0 && !this.#queue.opWaiting ? POLL_WRITABLE : 0);
    if (events === this.#pollEvents) return;
    const rc = this.#p.handle.poll(events);
    if (rc < 0) {
      this.destroy(new KtlsSystemError(rc, 'epoll_ctl'));
      return;
    }
    this.#pollEvents = events;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (chunk.length > 0) this.#queue.enqueue([chunk], 0, cb);
    else this.#queue.enqueueChunks([chunk], cb); // maybe an op marker
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.#queue.enqueueChunks(
      chunks.map((c) => c.chunk),
      cb,
    );
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
    let remaining = options.length ?? Number.POSITIVE_INFINITY;
    return new Promise((resolve, reject) => {
      if (this.destroyed) return reject(new KtlsError('ERR_STREAM_DESTROYED', 'the socket is destroyed'));
      const kind = this.#p.binding.fdKind(fd);
      if (kind < 0) return reject(new KtlsSystemError(kind, 'fstat'));
      this.pause();
      for (const rec of this.#p.early.splice(0)) this.#deliver(rec.type, rec.data, rec.keyUpdateFollowed);
      const done = (err: Error | null, sent: number): void => {
        this.#reader = null;
        if (err) reject(Object.assign(err, { bytesSent: sent }));
        else resolve(sent);
        if (!this.destroyed) this.#setPoll();
      };
      // What the stream already holds was read before this call: it goes first.
      const held: Buffer[] = [];
      while (this.readableLength > 0 && remaining > 0) {
        const chunk = this.read() as Buffer | null;
        if (chunk === null) break;
        const take = Math.min(chunk.length, remaining);
        if (take < chunk.length) this.unshift(chunk.subarray(take));
        held.push(chunk.subarray(0, take));
        remaining -= take;
      }
      try {
        this.#reader = new SpliceOut(this.#rxHost(), fd, remaining, held, kind === 1, done);
      } catch (err) {
        return reject(err as Error);
      }
      this.#reader.step();
    });
  }

  /** The socket as spliceTo() sees it. */
  #rxHost(): RxHost {
    const self = this;
    return {
      binding: this.#p.binding,
      kernelRx: this.#p.rx === 'kernel',
      get fd() {
        return self.fd;
      },
      get destroyed() {
        return self.destroyed;
      },
      get readEnded() {
        return self.#readEnded;
      },
      nextRecord: () => {
        const early = this.#p.early.shift();
        if (early) return early;
        const rx = this.#p.rx;
        return rx === 'kernel' || rx === null ? null : this.#openNext(rx);
      },
      recvOnce: (max) => this.#recvChunk(max),
      deliver: (type, data, followed) => void this.#deliver(type, data, followed),
      unshift: (data) => void this.unshift(data),
      readError: (errno) => this.#readError(errno),
      eof: () => this.#eof(),
      countRead: (n) => {
        this.#bytesRead += n;
        this.activity();
      },
      updatePoll: () => this.#setPoll(),
    };
  }

  /**
   * One recvmsg into the slab: under kernel RX a record's plaintext with its
   * type; in userspace the raw bytes go to the opener (`'pushed'`); without RX
   * keys raw bytes as application data. 0 at EOF, -errno on failure.
   */
  #recvChunk(max: number): OpenedRecord | 'pushed' | number {
    if (this.#slab.length - this.#slabOff < 32 * 1024) {
      this.#slab = Buffer.allocUnsafe(SLAB);
      this.#slabOff = 0;
    }
    const want = Math.min(max, this.#slab.length - this.#slabOff);
    const n = this.#p.handle.recv(this.#slab, this.#slabOff, want);
    this.#shortRead = n > 0 && n < want;
    const rx = this.#p.rx;
    // An empty record (a TLS 1.3 alert with no body, say) comes with its type; EOF comes without one.
    if (n === 0 && rx === 'kernel' && this.#p.out[0] !== 0) return { type: this.#p.out[0]!, data: Buffer.alloc(0) };
    if (n <= 0) return n;
    const data = this.#slab.subarray(this.#slabOff, this.#slabOff + n);
    this.#slabOff += n;
    const k = constants();
    if (rx === 'kernel') return { type: this.#p.out[0] || k.RECORD_APPLICATION_DATA, data };
    if (rx === null) return { type: k.RECORD_APPLICATION_DATA, data };
    rx.push(data);
    return 'pushed';
  }

  #startOp(op: WriteOp): Promise<number> {
    if (this.destroyed || this.writableEnded) {
      op.release();
      return Promise.reject(new KtlsError(this.destroyed ? 'ERR_STREAM_DESTROYED' : 'ERR_STREAM_WRITE_AFTER_END', 'the socket is no longer writable'));
    }
    const { marker, result } = this.#queue.track(op);
    this.write(marker);
    return result;
  }

  override _final(cb: (err?: Error | null) => void): void {
    const k = constants();
    if (this.#p.tx === null || this.#p.tx === 'plain') {
      // Without tx keys there is no close_notify to send, only the FIN (node:tls, beyond a plain fd, sends its own).
      const rc = this.#p.handle.shutdown(k.SHUT_WR);
      cb(rc < 0 && rc !== -E.ENOTCONN ? new KtlsSystemError(rc, 'shutdown') : null);
      return;
    }
    // close_notify goes out as its own record after all queued data, then FIN.
    this.#queue.enqueue([Buffer.from([1, ALERT.close_notify])], k.RECORD_ALERT, (err) => {
      if (err) return cb(err);
      this.#whenFlushed((flushErr) => {
        if (flushErr) return cb(flushErr);
        if (this.destroyed) return cb(null);
        const rc = this.#p.handle.shutdown(k.SHUT_WR);
        cb(rc < 0 && rc !== -E.ENOTCONN ? new KtlsSystemError(rc, 'shutdown') : null);
      });
    });
  }

  /**
   * Calls `done` once every record kernel TX has sealed has entered TCP. A
   * non-blocking sendmsg can return while kTLS still holds sealed records in its
   * own list, and shutdown()/close() would put the FIN ahead of them (or drop
   * them). TCP must have taken every plaintext byte kTLS accepted plus each
   * record's overhead; the record count is read once here, when nothing more
   * will be sealed (records under earlier keys were counted at each rekey),
   * and only TCP's counters are polled after that. A reset while waiting is
   * the error `end()` reports.
   */
  #whenFlushed(done: (err: Error | null) => void): void {
    const start = this.#p.txStart;
    if (this.#p.tx !== 'kernel' || !start || this.destroyed || this.#txRecords === null) return done(null);
    const seq = this.#p.binding.getSeq(this.fd, constants().TLS_TX);
    if (typeof seq !== 'bigint') return done(null); // cannot tell on this kernel: best effort
    const records = this.#txRecords + Number(seq - this.#txEpochSeq);
    const expected = start.entered + this.#queue.kernelPlainSent + records * recordOverhead(this.#p.version, this.#p.cipher);
    const poll = (delay: number, waited: number): void => {
      if (this.destroyed) return done(null);
      // poll() reports a pending error without consuming it; SO_ERROR then names it.
      const ready = this.#p.binding.ready(this.fd, 0);
      if (ready > 0 && (ready & 4) !== 0) {
        const so = this.#takeSocketError();
        return done(so !== 0 ? new KtlsSystemError(-so, 'write') : null);
      }
      const entered = this.#p.binding.tcpEntered(this.fd);
      // A peer that reads nothing for 30 s does not keep the connection open forever.
      if (entered < 0 || entered >= expected || waited > 30_000) return done(null);
      setTimeout(() => poll(Math.min(delay * 2, 50), waited + delay), delay);
    };
    poll(1, 0);
  }

  /** New kernel TX keys are about to go in: the records under the current ones are counted now (their sequence restarts at 0). */
  #txRekeying(): void {
    if (this.#txRecords === null) return;
    const seq = this.#p.binding.getSeq(this.fd, constants().TLS_TX);
    if (typeof seq !== 'bigint') {
      this.#txRecords = null; // the flush point can no longer be known: end() falls back to best effort
      return;
    }
    this.#txRecords += Number(seq - this.#txEpochSeq);
    this.#txEpochSeq = 0n;
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // The reason the socket died (an alert, a bad record) is the reason spliceTo() failed.
    this.#reader?.settle(err ?? new KtlsError('ERR_STREAM_DESTROYED', 'socket destroyed before spliceTo() completed'));
    this.#queue.abandon(err);
    try {
      this.#finalSeq = this.getSequenceNumbers();
    } catch {
      // The kernel no longer answers (e.g. after EBADMSG); there is nothing to keep.
    }
    this.#schedule?.wipe();
    const rc = this.#p.handle.close();
    for (const side of [this.#p.tx, this.#p.rx]) if (typeof side === 'object' && side !== null) side.wipe();
    cb(err ?? (rc < 0 ? new KtlsSystemError(rc, 'close') : null));
  }
}
