/**
 * KtlsSocket: a `stream.Duplex` over a TCP fd whose records the kernel (or, in
 * fallback, the userspace record layer) seals and opens. The native handle does
 * one syscall per call; this file decides when to retry, wait, end or destroy.
 * @packageDocumentation
 */
import type { DuplexOptions } from 'node:stream';
import * as os from 'node:os';
import { POLL_READABLE, POLL_WRITABLE } from '../native/binding.js';
import { constants, type CipherName, type TlsVersion } from '../native/constants.js';
import { ALERT, KtlsError, KtlsSystemError } from '../native/errors.js';
import { KeySchedule } from '../record/key-schedule.js';
import { KtlsOpMembers } from './op-members.js';
import { KeyUpdateOp } from './ops/key-update.js';
import type { WriteOp } from './ops/op.js';
import { checkFd, checkLength, type KernelDirections, type KtlsSocketOptions, type SequenceNumbers, type SpliceOptions } from './options.js';
import { applyRecordSize, sequenceNumbers, type RecordPaths } from './paths.js';
import { SocketHost, type SocketInner } from './host.js';
import { TxFlush } from './tx-flush.js';
import { ReadPath } from './read-path.js';
import { SpliceOut, rxHostOf, spliceTarget, startSplice, takeBuffered } from './splice-to.js';
import { WriteQueue } from './write-queue.js';
import { peerGone, writeAfterFin } from './net-compat.js';
import type { PendingStart } from './pending.js';

const E = os.constants.errno;

/** The private parts every KtlsSocket's {@link SocketHost} reaches (one object, made in the class's static block). */
let inner: SocketInner<KtlsSocket>;

/**
 * A TLS connection whose record protection runs in the kernel. Obtain one from
 * `ktls.upgrade()`. Reads deliver application data; the peer's close_notify
 * ends the readable side; a fatal alert destroys the socket with
 * {@link KtlsAlertError}; handshake records are emitted as `'handshake'` events.
 */
export class KtlsSocket extends KtlsOpMembers {
  #version: TlsVersion | 'TLSv1' | 'TLSv1.1' | undefined;
  #cipher: CipherName | null = null;
  #p!: RecordPaths;
  #in!: ReadPath;
  #queue: WriteQueue;
  #pollEvents = 0;
  #finalSeq: SequenceNumbers | undefined;
  #reader: SpliceOut | null = null;
  #pollErrors = 0;
  #flush!: TxFlush;
  #schedule: KeySchedule | null = null;
  #finishing = false;
  readonly #options: KtlsSocketOptions;

  /**
   * @internal Use `ktls.upgrade()` or `ktls.connect()`. `paths` is the connection, or (a socket
   * `connect()` returns before it exists) what to hold until {@link KtlsSocket.attach} gives it one.
   */
  constructor(paths: RecordPaths | PendingStart, options: KtlsSocketOptions = {}) {
    const duplexOptions: DuplexOptions = { allowHalfOpen: options.allowHalfOpen ?? false, emitClose: false, autoDestroy: true };
    if (options.highWaterMark !== undefined) duplexOptions.highWaterMark = options.highWaterMark;
    super(duplexOptions, paths);
    this.#options = options;
    this.#queue = new WriteQueue(new SocketHost<KtlsSocket>(this, inner));
    if ('handle' in paths) {
      this.#attach(paths);
      // As net.Socket does: read ahead (up to highWaterMark) from the start, so a socket the
      // application is not reading still sees the peer's close_notify and FIN, and closes.
      process.nextTick(() => this.#readAhead(false));
    }
  }

  /** `asked`: the stream asked before the switch and waits for that read. */
  #readAhead(asked: boolean): void {
    if (this.destroyed || this.readableEnded) return;
    if (asked) this._read();
    else if (this.readableLength === 0) this.read(0);
  }

  /** Negotiated TLS version (`'TLSv1'`/`'TLSv1.1'` only where node:tls carries the records and was allowed them); undefined before the switch. */
  get version(): TlsVersion | 'TLSv1' | 'TLSv1.1' | undefined {
    return this.#version;
  }

  /** Negotiated AEAD cipher; null where node:tls carries the records (a suite kTLS lacks: see `getCipher()`), and before the switch. */
  get cipher(): CipherName | null {
    return this.#cipher;
  }

  /** @internal The connection a socket `connect()` returned was waiting for: what was done to it meanwhile applies now. */
  attach(paths: RecordPaths): this {
    const start = this.start;
    if (!start || this.destroyed) throw new KtlsError('ERR_KTLS_ATTACHED', 'this socket has a connection or is destroyed');
    this.#attach(paths);
    this.start = null;
    // Before anything is sent: the records have the size asked for, or the connection fails with why not.
    const failed = start.maxRecordSize === undefined ? null : this.recordSizeError(start.maxRecordSize);
    if (failed) return (start.fail(failed), this.destroy(failed));
    for (const w of start.writes.splice(0)) this.#queue.enqueueChunks(w.chunks, w.cb);
    if (start.final) this._final(start.final);
    start.settle(null);
    this.#setPoll();
    // A tick after the switch: the caller emits 'secureConnect' in the same run of promise jobs, so no data comes before it.
    process.nextTick(() => this.#readAhead(start.wantRead));
    return this;
  }

  #attach(paths: RecordPaths): void {
    this.attachBase(paths);
    this.#p = paths;
    if (paths.version === 'TLSv1.3') this.#schedule = new KeySchedule(paths.cipher, paths.trafficSecrets ?? {});
    paths.trafficSecrets = undefined; // copied: the caller wipes its own
    this.#version = (paths.nodeTls?.protocol as KtlsSocket['version'] | undefined) ?? paths.version;
    this.#cipher = paths.nodeTls ? null : paths.cipher;
    const host = new SocketHost<KtlsSocket>(this, inner);
    this.#in = new ReadPath(host, this.#options);
    this.#flush = new TxFlush(host);
  }

  /** The peer's close_notify has arrived (false after a bare FIN, which `allowTruncation`, the default, accepts as the end). */
  get closeNotifyReceived(): boolean {
    return this.start ? false : this.#in.closeNotifyReceived;
  }

  /** Streams emit `'close'` without arguments; net and tls sockets pass `hadError`, as this does. A read error held behind buffered bytes comes where `'end'` would. */
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'close' && args.length === 0) return super.emit('close', this.errored !== null);
    const held = event === 'end' && !this.start ? this.#in.takeHeld() : null;
    if (held) return (this.destroy(held), false);
    if (event === 'end' && !this.allowHalfOpen) this.write = writeAfterFin as this['write'];
    return super.emit(event, ...args);
  }

  static {
    inner = {
      paths: (s) => s.#p,
      queue: (s) => s.#queue,
      schedule: (s) => s.#schedule,
      maxRecordSize: (s) => s.recordLimit,
      activity: (s) => s.activity(),
      setPoll: (s) => s.#setPoll(),
      startOp: (s, op) => s.startOp(op),
      writesFlushed: (s) => s.writesFlushed(),
      txRekeying: (s) => s.#flush.rekeying(),
      takeSocketError: (s) => s.#in.takeSocketError(),
    };
  }

  protected get queuedWrites(): number {
    return this.#queue.length;
  }

  #onPoll(status: number, events: number): void {
    if (this.destroyed) return;
    if (status < 0) return this.#pollError(status);
    this.#pollErrors = 0;
    if (events & POLL_WRITABLE) this.#queue.run();
    if (events & POLL_READABLE && !this.destroyed) this.#readLoop(true);
  }

  /**
   * EPOLLERR: libuv has stopped the poll and says EBADF whatever happened. The
   * syscalls know the real errno: what arrived before the error is read first
   * (as net.Socket does) and the read, or a queued write, then fails with it.
   * Only if neither is pending does SO_ERROR say it.
   */
  #pollError(status: number): void {
    this.#pollEvents = 0;
    // 'finish' is due this turn: a reset comes after it, as on node:tls (where destroySoon() has destroyed by then).
    if (this.#finishing) return void setImmediate(() => !this.destroyed && this.#pollError(status));
    if (this.#reader) this.#reader.step();
    else if (this.#in.wantRead && !this.#in.readEnded) this.#readLoop(true);
    if (!this.destroyed && this.#queue.length > 0) this.#queue.run();
    if (this.destroyed) return;
    const so = this.#in.takeSocketError();
    if (so !== 0) return this.#queue.length > 0 && !this.#in.wantRead ? void this.destroy(new KtlsSystemError(-so, 'write')) : this.#in.readError(-so, true);
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
    if (this.start) return false;
    return this.#p.tx !== null && this.#p.tx !== 'kernel' ? false : this.#p.rx === null || this.#p.rx === 'kernel';
  }

  /** Which side of the record layer runs in the kernel, per direction. */
  get kernelDirections(): KernelDirections {
    return this.start ? { tx: false, rx: false } : { tx: this.#p.tx === 'kernel', rx: this.#p.rx === 'kernel' };
  }

  /** Application bytes received. */
  get bytesRead(): number {
    return this.start ? 0 : this.#in.bytesRead;
  }

  /** Application bytes the kernel (or the record layer) has accepted for sending. */
  get bytesWritten(): number {
    return this.#queue.bytesWritten;
  }

  /** @internal The TCP connection's fd, for TCP options (it differs from `fd` where node:tls carries the records). */
  get tcpFd(): number {
    if (this.start) return -1;
    return this.#p.tcpFd !== undefined && this.fd >= 0 ? this.#p.tcpFd : this.fd;
  }

  /**
   * The next record sequence numbers: read live from the kernel
   * (`getsockopt(SOL_TLS, TLS_TX/TLS_RX)`) for kernel directions. After the
   * socket is closed, the values it had when it closed.
   */
  getSequenceNumbers(): SequenceNumbers {
    if (this.#finalSeq) return { ...this.#finalSeq };
    return this.start ? { tx: null, rx: null } : sequenceNumbers(this.#p, this.fd);
  }

  protected applyMaxRecordSize(size: number): void {
    if (this.start) this.start.maxRecordSize = size;
    else applyRecordSize(this.#p, this.fd, size);
  }

  /** @internal */
  override _read(): void {
    if (this.start) return void (this.start.wantRead = true);
    this.#in.wantRead = true;
    if (this.#reader) return; // spliceTo() owns the socket's input until it settles
    this.#in.read();
  }

  #readLoop(readable: boolean): void {
    if (this.#reader) return this.#reader.step();
    this.#in.loop(readable);
  }

  /**
   * Initiates a TLS 1.3 KeyUpdate: sends the message after everything written
   * so far, then seals with the next keys (kernel rekey needs Linux 6.14+;
   * `ERR_KTLS_REKEY_UNSUPPORTED` before). `requestPeer` asks the peer to update
   * its keys too. Resolves once the new TX keys are in place.
   */
  updateKeys(options: { requestPeer?: boolean } = {}): Promise<void> {
    if (this.start) return this.start.attached().then(() => this.updateKeys(options));
    if (this.version !== 'TLSv1.3') return Promise.reject(new KtlsError('ERR_KTLS_UNSUPPORTED', 'KeyUpdate exists in TLS 1.3 only'));
    if (this.#p.nodeTls) return Promise.reject(new KtlsError('ERR_KTLS_UNSUPPORTED', "node:tls carries this connection's records and has no KeyUpdate API"));
    return this.startOp(new KeyUpdateOp(this.#schedule!, this.#p.cipher, options.requestPeer === true)).then(() => {
      this.emit('keyUpdate', { direction: 'tx', requested: options.requestPeer === true });
    });
  }

  #setPoll(): void {
    if (this.destroyed || this.start) return;
    const wantRead = this.#reader ? this.#reader.waitSocket : this.#in.wantRead;
    const events = (wantRead && !this.#in.readEnded ? POLL_READABLE : 0) | (this.#queue.length > 0 && !this.#queue.opWaiting ? POLL_WRITABLE : 0);
    if (events === this.#pollEvents) return;
    const rc = this.#p.handle.poll(events);
    if (rc < 0) {
      this.destroy(new KtlsSystemError(rc, 'epoll_ctl'));
      return;
    }
    this.#pollEvents = events;
  }

  /** @internal */
  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.start) return void this.start.writes.push({ chunks: [chunk], cb });
    if (chunk.length > 0) this.#queue.enqueue([chunk], 0, cb);
    else this.#queue.enqueueChunks([chunk], cb); // maybe an op marker
  }

  /** @internal */
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    const bufs = chunks.map((c) => c.chunk);
    if (this.start) this.start.writes.push({ chunks: bufs, cb });
    else this.#queue.enqueueChunks(bufs, cb);
  }

  /**
   * Moves decrypted application data out of this socket into `fd` (a pipe
   * directly with splice(2); a file or socket through an internal pipe) until
   * `length` bytes, the peer's close_notify, or EOF. Data already buffered in
   * the stream goes first. The readable side stays paused afterwards. Control
   * records met on the way are handled as reads are: close_notify ends the
   * stream, alerts destroy it, handshake records become `'handshake'` events. Does not close
   * `fd`; a blocking socket or device is refused (`ERR_KTLS_BLOCKING_FD`): full, it would block.
   */
  spliceTo(fd: number, options: SpliceOptions = {}): Promise<number> {
    checkFd('fd', fd);
    checkLength('options.length', options.length);
    if (this.#reader) throw new KtlsError('ERR_KTLS_BUSY', 'a spliceTo() is already running on this socket');
    // Decoded text cannot be turned back into the bytes it came from: refused before anything is taken.
    if (this.readableEncoding !== null)
      throw new KtlsError('ERR_KTLS_ENCODING', `spliceTo() moves bytes; the socket has setEncoding('${this.readableEncoding}')`);
    if (this.start) return this.start.attached().then(() => this.spliceTo(fd, options));
    let remaining = options.length ?? Number.POSITIVE_INFINITY;
    return new Promise((resolve, reject) => {
      if (this.destroyed) return reject(new KtlsError('ERR_STREAM_DESTROYED', 'the socket is destroyed'));
      const kind = spliceTarget(this.#p.binding, fd);
      if (typeof kind !== 'number') return reject(kind);
      this.pause();
      for (const rec of this.#p.early.splice(0)) this.#in.deliver(rec.type, rec.data, rec.keyUpdateFollowed);
      const done = (err: Error | null, sent: number): void => {
        this.#reader = null;
        if (err) reject(Object.assign(err, { bytesSent: sent }));
        else resolve(sent);
        if (!this.destroyed) this.#setPoll();
      };
      // What the stream already holds was read before this call: it goes first.
      const held = takeBuffered(this, remaining);
      remaining -= held.reduce((n, b) => n + b.length, 0);
      try {
        this.#reader = new SpliceOut(rxHostOf(this.#in), fd, remaining, held, kind === 1, done);
      } catch (err) {
        return reject(err instanceof Error ? err : new Error(String(err)));
      }
      startSplice(this.#reader, this.#p);
    });
  }

  protected startOp(op: WriteOp): Promise<number> {
    if (this.destroyed || this.writableEnded) {
      op.release();
      return Promise.reject(new KtlsError(this.destroyed ? 'ERR_STREAM_DESTROYED' : 'ERR_STREAM_WRITE_AFTER_END', 'the socket is no longer writable'));
    }
    // Before the switch an op goes through the stream as a marker, in order with the writes held there.
    return this.#queue.start(op, this, this.start !== null);
  }

  /** @internal */
  override _final(callback: (err?: Error | null) => void): void {
    if (this.start) return void (this.start.final = callback);
    const k = constants();
    // As net.Socket's shutdown request: it completes ('finish') on a later turn of the loop, not inside end().
    const cb = (err?: Error | null): void => void ((this.#finishing = true), setImmediate(() => ((this.#finishing = false), callback(err))));
    if (this.#p.tx === null || this.#p.tx === 'plain') {
      // Without tx keys there is no close_notify to send, only the FIN (node:tls, beyond a plain fd, sends its own).
      const rc = this.#p.handle.shutdown(k.SHUT_WR);
      cb(rc < 0 && rc !== -E.ENOTCONN ? new KtlsSystemError(rc, 'shutdown') : null);
      return;
    }
    // close_notify goes out as its own record after all queued data, then FIN.
    this.#queue.enqueue([Buffer.from([1, ALERT.close_notify])], k.RECORD_ALERT, (err) => {
      // A peer that has gone cannot take our close_notify; as on node:tls (and net's shutdown), that is
      // no error. Reading on finds its FIN or reset, so the socket closes even if nobody reads it.
      if (err) return peerGone(err) ? this.#goneAfterEnd(cb) : cb(err);
      this.#flush.whenFlushed((flushErr) => {
        if (flushErr) return peerGone(flushErr) ? this.#goneAfterEnd(cb) : cb(flushErr);
        if (this.destroyed) return cb(null);
        const rc = this.#p.handle.shutdown(k.SHUT_WR);
        cb(rc < 0 && rc !== -E.ENOTCONN ? new KtlsSystemError(rc, 'shutdown') : null);
      });
    });
  }

  /** Our close_notify met a peer that has gone: the end is done, and reading on finds its FIN or reset. */
  #goneAfterEnd(cb: (err?: Error | null) => void): void {
    cb(null);
    setImmediate(() => void (!this.destroyed && !this.readableEnded && this.read(0))); // after 'finish', as #pollError
  }

  /** @internal */
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.start) return this.#destroyPending(err, cb);
    // The reason the socket died (an alert, a bad record) is the reason spliceTo() failed.
    this.#reader?.settle(err ?? new KtlsError('ERR_STREAM_DESTROYED', 'socket destroyed before spliceTo() completed'));
    this.#queue.abandon(err);
    try {
      this.#finalSeq = this.getSequenceNumbers();
    } catch {
      // The kernel no longer answers (e.g. after EBADMSG); there is nothing to keep.
    }
    this.#schedule?.wipe();
    this.releaseBase();
    this.#in.discardUnread();
    const rc = this.#p.handle.close();
    for (const side of [this.#p.tx, this.#p.rx]) if (typeof side === 'object' && side !== null) side.wipe();
    const failure = err ?? (rc < 0 ? new KtlsSystemError(rc, 'close') : null);
    cb(failure);
    // As net.Socket: 'close' from the next turn of the loop (its handle's close callback), after 'error'
    // and after the callbacks of writes made once destroyed.
    setImmediate(() => this.emit('close', failure !== null));
  }

  /** Destroyed before the switch: the connection attempt stops, and what waited for it fails. */
  #destroyPending(err: Error | null, cb: (err?: Error | null) => void): void {
    const start = this.start!;
    this.releaseBase();
    this.#queue.abandon(err);
    start.connector.abort(err);
    cb(err);
    // As net.Socket's writes made while connecting: they fail at 'close', after 'error'.
    setImmediate(() => (start.fail(err), this.emit('close', err !== null)));
  }
}
