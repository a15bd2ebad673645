/**
 * A KtlsSocket's read path: one recvmsg at a time into a scratch buffer, each record's
 * plaintext handled by its type (application data pushed, close_notify ends,
 * alerts destroy, handshake messages checked and followed), and every way a
 * read can fail mapped to the alert OpenSSL would send and a typed error.
 * @packageDocumentation
 */
import * as os from 'node:os';
import { constants } from '../native/constants.js';
import { ALERT, KtlsAlertError, KtlsError, KtlsSystemError, alertName, type AlertErrorCode } from '../native/errors.js';
import { countAlert, countKeyUpdate } from './counters.js';
import type { KeySchedule } from '../record/key-schedule.js';
import type { OpenedRecord, RecordOpener } from '../record/layer.js';
import { HandshakeReader } from '../record/post-handshake.js';
import type { WriteOp } from './ops/op.js';
import { KeyUpdateOp, installKernelKeys, rekeyUserspace } from './ops/key-update.js';
import { PeerBudget, type PeerEvent, type PeerLimits } from './peer-limits.js';
import type { RecordPaths } from './paths.js';
import type { WriteQueue } from './write-queue.js';

const E = os.constants.errno;
const SCRATCH = 256 * 1024;

/**
 * Where every socket of this thread reads into, so an idle connection pins no
 * read buffer. It is never handed out: each read is copied into a Buffer of
 * its own (unpooled, exactly its size), and the scratch bytes are zeroed, so no
 * chunk's `.buffer` reaches another connection's plaintext or this one's past,
 * and transferring a chunk's ArrayBuffer detaches nothing anyone else uses.
 */
let scratch: Buffer | null = null;

/** What the read path needs from its socket. */
export interface ReadHost {
  readonly paths: RecordPaths;
  readonly queue: WriteQueue;
  readonly schedule: KeySchedule | null;
  readonly destroyed: boolean;
  readonly writableEnded: boolean;
  /** Bytes the stream holds that the application has not read. */
  readonly readableLength: number;
  /** `Readable#push`. */
  push(chunk: Buffer | null): boolean;
  /** `Readable#unshift`. */
  unshift(chunk: Buffer): void;
  destroy(err: Error): void;
  emit(event: string, ...args: unknown[]): boolean;
  /** Bytes moved: restarts the idle timer. */
  activity(): void;
  /** Re-evaluates what the socket polls for. */
  setPoll(): void;
  /** Queues an op after everything written so far. */
  startOp(op: WriteOp): Promise<number>;
}

/** The socket's read side. */
export class ReadPath {
  /** Application bytes received. */
  bytesRead = 0;
  /** The stream wants data (`_read` was called and no push said stop). */
  wantRead = false;
  /** close_notify (or an accepted EOF) ended the readable side. */
  readEnded = false;
  #host: ReadHost;
  #allowTruncation: boolean;
  #closeNotifyReceived = false;

  /** The socket this reads for. */
  get host(): ReadHost {
    return this.#host;
  }

  /** The peer's close_notify has arrived. */
  get closeNotifyReceived(): boolean {
    return this.#closeNotifyReceived;
  }
  #fatalSent = false;
  /** The error that ended reading, held while the stream still holds bytes that arrived before it. */
  #held: Error | null = null;
  #shortRead = false;
  /** The last read found the socket empty: only the poll can say there is more. */
  #drained = false;
  /**
   * A short read means the socket is empty on plain TCP (and for the userspace
   * record layer, which reads TCP), but not under kernel RX: kTLS returns what
   * it has opened so far, and its poll does not announce records it has not
   * parsed yet until a read asks (a short read there, then waiting for the
   * poll, can wait forever while the peer waits for window). Only EAGAIN says
   * drained there.
   */
  readonly #shortMeansDrained: boolean;
  #handshake: HandshakeReader;
  #budget: PeerBudget;
  /** Our reply to a peer's update_requested, queued and not yet sent: later requests share it (as OpenSSL's do). */
  #replyPending: KeyUpdateOp | null = null;

  constructor(host: ReadHost, options: { allowTruncation?: boolean; peerLimits?: PeerLimits } = {}) {
    this.#host = host;
    this.#allowTruncation = options.allowTruncation ?? true;
    this.#budget = new PeerBudget(options.peerLimits);
    this.#handshake = new HandshakeReader(host.paths.version, host.paths.role);
    this.#shortMeansDrained = host.paths.rx !== 'kernel' || host.paths.plainTcp === true;
  }

  /** `_read`: records opened before the switch first, then the socket. */
  read(): void {
    const early = this.#host.paths.early;
    while (early.length > 0) {
      const rec = early.shift()!;
      if (!this.deliver(rec.type, rec.data, rec.keyUpdateFollowed)) return;
    }
    this.loop();
  }

  /**
   * Reads and delivers until the stream is full, the socket is drained, or the
   * read side ends. `readable`: the poll just said the socket has something
   * (or an error); otherwise (the stream asking for more) a socket a short read
   * already drained is left to the poll, instead of paying a recvmsg for EAGAIN.
   */
  loop(readable = false): void {
    const host = this.#host;
    const rx = host.paths.rx;
    if (readable) this.#drained = false;
    while (this.wantRead && !host.destroyed && !this.readEnded) {
      if (rx !== 'kernel' && rx !== null) {
        const rec = this.openNext(rx);
        if (rec === undefined) return; // destroyed
        if (rec !== null) {
          this.deliver(rec.type, rec.data);
          continue;
        }
      }
      // The poll is level-triggered (as libuv's): armed for readable, it fires while data waits.
      if (this.#drained) break;
      const got = this.recvChunk(SCRATCH);
      this.#drained = this.#shortRead && this.#shortMeansDrained;
      if (got === 'pushed') continue;
      if (typeof got !== 'number') {
        this.deliver(got.type, got.data);
        continue;
      }
      if (got === -E.EAGAIN || got === -E.EINTR) {
        this.#drained = got === -E.EAGAIN;
        return host.setPoll();
      }
      if (got < 0) return this.readError(got);
      return this.eof();
    }
    host.setPoll();
  }

  /** Opens the next buffered userspace record: null when none is complete, undefined when it failed. */
  openNext(opener: RecordOpener): OpenedRecord | null | undefined {
    try {
      return opener.next();
    } catch (err) {
      const code = err instanceof KtlsAlertError ? err.alertCode : ALERT.internal_error;
      this.fatal(code, err as Error);
      return undefined;
    }
  }

  /** Handles one record's plaintext; returns false once reading should pause or stop. `followed`: a KeyUpdate whose RX keys are already in. */
  deliver(type: number, data: Buffer, followed = false): boolean {
    const k = constants();
    const host = this.#host;
    // RFC 8446 §5.1: handshake messages are never interleaved with other records.
    if (type !== k.RECORD_HANDSHAKE && this.#handshake.partial)
      return this.#protocolError(ALERT.unexpected_message, `a record of type ${type} arrived in the middle of a handshake message`);
    switch (type) {
      case k.RECORD_APPLICATION_DATA:
        this.bytesRead += data.length;
        host.activity();
        if (data.length === 0) return this.#spend('emptyRecords');
        if (!host.push(data)) this.wantRead = false;
        return this.wantRead;
      case k.RECORD_ALERT: {
        const [level, desc] = [data[0] ?? 0, data[1] ?? ALERT.decode_error];
        if (data.length !== 2) return this.#protocolError(ALERT.decode_error, `an alert record of ${data.length} bytes`);
        countAlert('received', alertName(desc));
        if (desc === ALERT.close_notify) {
          this.#closeNotifyReceived = true;
          this.#endReadable();
          return false;
        }
        // RFC 8446 §6.1: user_canceled is a closure alert (close_notify follows), not an error.
        if (desc === ALERT.user_canceled) return this.#spend('warningAlerts');
        // TLS 1.2 warnings carry no data; TLS 1.3 treats every other alert as fatal.
        if (level === 1 && host.paths.version === 'TLSv1.2') return this.#spend('warningAlerts');
        this.#fail(new KtlsAlertError(desc, false));
        return false;
      }
      case k.RECORD_HANDSHAKE:
        if (data.length === 0) return this.#protocolError(ALERT.unexpected_message, 'an empty handshake record');
        host.emit('handshake', data);
        for (const msg of this.#handshake.push(data)) {
          if (msg.kind === 'fatal') return this.#protocolError(msg.alert, msg.reason, msg.code);
          if (msg.kind === 'key-update' && !this.#peerKeyUpdate(msg.requested, followed)) return false;
          if (msg.kind === 'renegotiation') this.#warn(ALERT.no_renegotiation);
        }
        return true;
      default:
        return this.#protocolError(ALERT.unexpected_message, `a record of content type ${type} after the handshake`);
    }
  }

  /** Counts a record that carries no data; a peer over its limit gets `unexpected_message`. */
  #spend(event: PeerEvent): boolean {
    const over = this.#budget.spend(event);
    return over === null || this.#protocolError(ALERT.unexpected_message, over, 'ERR_KTLS_PEER_LIMIT');
  }

  /** The peer broke the protocol: fatal `alert`, destroyed with `ERR_KTLS_PROTOCOL`. Returns false. */
  #protocolError(alert: number, reason: string, code: AlertErrorCode = 'ERR_KTLS_PROTOCOL'): false {
    return this.fatal(alert, new KtlsAlertError(alert, true, `${reason}: fatal alert ${alertName(alert)}`, code));
  }

  /** Sends a warning alert after what is already queued (e.g. no_renegotiation). */
  #warn(alert: number): void {
    const host = this.#host;
    if (host.paths.tx === null || host.paths.tx === 'plain' || host.writableEnded || host.destroyed) return;
    host.queue.enqueue([Buffer.from([1, alert])], constants().RECORD_ALERT, () => undefined);
  }

  /** The peer moved to its next keys: follow on RX (unless the switch already did), and answer a request with our own KeyUpdate. */
  #peerKeyUpdate(requested: boolean, followed: boolean): boolean {
    const host = this.#host;
    const p = host.paths;
    countKeyUpdate('received');
    if (!this.#spend('keyUpdates')) return false;
    if (!followed) {
      try {
        const keys = host.schedule!.next('rx');
        if (p.rx === 'kernel') installKernelKeys(p, p.handle.fd, 'rx', p.cipher, keys);
        else if (p.rx !== null) rekeyUserspace(p.rx, keys);
      } catch (err) {
        // Reading on would stall (EKEYEXPIRED) or fail every record: end the connection, naming why.
        this.#fail(err as Error);
        return false;
      }
    }
    host.emit('keyUpdate', { direction: 'rx', requested });
    if (requested && p.tx !== null && !host.writableEnded && !(this.#replyPending && !this.#replyPending.committed)) {
      const op = (this.#replyPending = new KeyUpdateOp(host.schedule!, p.cipher, false));
      host.startOp(op).then(
        () => host.emit('keyUpdate', { direction: 'tx', requested: false }),
        (err: Error) => host.destroy(err),
      );
    }
    return true;
  }

  #endReadable(): void {
    this.readEnded = true;
    this.wantRead = false;
    this.#host.setPoll();
    this.#host.push(null);
  }

  /** The peer's FIN: the end of the stream after close_notify (or where truncation is allowed), else `ERR_KTLS_TRUNCATED`. */
  eof(): void {
    const opener = this.#host.paths.rx;
    const partial = opener !== 'kernel' && opener !== null && opener.buffered > 0;
    // Without rx keys the bytes are not TLS records, so there is no close_notify to expect.
    if (opener === null || this.#closeNotifyReceived || (this.#allowTruncation && !partial)) {
      this.#endReadable();
      return;
    }
    this.#fail(
      new KtlsError('ERR_KTLS_TRUNCATED', partial ? 'connection closed in the middle of a TLS record' : 'connection closed without close_notify (truncated)'),
    );
  }

  /**
   * A read failed. kTLS reports a record it cannot open as EBADMSG, and leaves
   * that error pending (SO_ERROR) when authentication failed, but consumes it
   * when it refused the record by its header: one too short to hold a tag,
   * which in TLS 1.3 can only be a ChangeCipherSpec, not allowed after the
   * handshake. `socketErrorTaken`: SO_ERROR was already read (it said `errno`).
   */
  readError(errno: number, socketErrorTaken = false): void {
    const p = this.#host.paths;
    const kernel = p.rx === 'kernel';
    if (errno === -E.EBADMSG) {
      const authFailure = socketErrorTaken || !kernel || this.takeSocketError() === E.EBADMSG;
      if (!authFailure && p.version === 'TLSv1.3')
        return void this.#protocolError(ALERT.unexpected_message, 'a record too short for its tag (a ChangeCipherSpec) after the handshake (EBADMSG)');
      this.fatal(ALERT.bad_record_mac, new KtlsAlertError(ALERT.bad_record_mac, true, 'a record failed authentication (EBADMSG): fatal alert bad_record_mac'));
    } else if (errno === -E.EMSGSIZE) {
      this.fatal(
        ALERT.record_overflow,
        new KtlsAlertError(ALERT.record_overflow, true, 'record too large or malformed header (EMSGSIZE): fatal alert record_overflow'),
      );
    } else if (errno === -E.EINVAL && kernel) {
      // kTLS refuses a record header with the wrong version; OpenSSL's alerts for that.
      const alert = p.version === 'TLSv1.3' ? ALERT.decode_error : ALERT.protocol_version;
      this.fatal(alert, new KtlsAlertError(alert, true, `a record with a wrong version (EINVAL): fatal alert ${alertName(alert)}`));
    } else {
      this.#fail(new KtlsSystemError(errno, 'read'));
    }
  }

  /** Reads (and so clears) the socket's pending error: a positive errno, or 0. */
  takeSocketError(): number {
    const p = this.#host.paths;
    const k = constants();
    const so = p.binding.getsockoptInt(p.handle.fd, k.SOL_SOCKET, k.SO_ERROR);
    return so > 0 ? so : 0;
  }

  /** Sends a fatal alert (best effort, once) and destroys with `err`. Returns false. */
  fatal(alert: number, err: Error): false {
    const host = this.#host;
    const p = host.paths;
    if (!this.#fatalSent && p.tx !== null && p.tx !== 'plain' && p.handle.fd >= 0) {
      this.#fatalSent = true;
      const body = Buffer.from([2, alert]);
      // Anything still queued is abandoned: a fatal alert ends the connection.
      // A userspace record half-sent at the head of the queue would swallow the alert's bytes.
      if (!host.queue.midRecord) {
        try {
          // kTLS refuses every send while the socket error an RX failure left (EBADMSG) is pending; reading SO_ERROR clears it.
          if (p.tx === 'kernel') this.takeSocketError();
          const wire = p.tx === 'kernel' ? [body] : p.tx.seal(constants().RECORD_ALERT, body);
          const rc = p.handle.send(wire, p.tx === 'kernel' ? constants().RECORD_ALERT : 0);
          const sent = rc === wire.reduce((n, b) => n + b.length, 0);
          if (err instanceof KtlsAlertError) err.alertSent = sent;
          if (sent) countAlert('sent', alertName(alert));
          // The peer reads the alert, then our FIN (close() alone may reset: the bad record is still unread).
          if (sent) p.handle.shutdown(constants().SHUT_WR);
        } catch {
          // sealing failed (keys wiped or sequence exhausted): no alert, still destroy
        }
      }
    }
    this.#fail(err);
    return false;
  }

  /**
   * Reading failed with `err`. Bytes that arrived before the failure are the
   * application's: while the stream still holds some, the error waits behind
   * them as EOF does (the stream is ended, and its `'end'` becomes this
   * error: {@link takeHeld}). Nothing is read or polled for meanwhile.
   */
  #fail(err: Error): void {
    const host = this.#host;
    if (host.destroyed || host.readableLength === 0) return host.destroy(err);
    this.#held = err;
    this.#endReadable();
  }

  /** The error held behind buffered bytes, once (the stream's `'end'` stands for it). */
  takeHeld(): Error | null {
    const err = this.#held;
    this.#held = null;
    return err;
  }

  /**
   * Reads and drops what the kernel still holds for us (at most four reads), so that closing
   * sends a FIN: unread bytes make close(2) send an RST, and the peer would see ECONNRESET (a TLS
   * 1.3 client that never read the server's tickets, say). node:tls has read such bytes into
   * OpenSSL by then, so its close is a FIN.
   */
  discardUnread(): void {
    const handle = this.#host.paths.handle;
    if (handle.fd < 0) return;
    scratch ??= Buffer.allocUnsafeSlow(SCRATCH);
    for (let i = 0; i < 4 && handle.recv(scratch, 0, SCRATCH) > 0; i++);
    scratch.fill(0);
  }

  /**
   * One recvmsg, its bytes copied out of the scratch: under kernel RX a record's plaintext with its
   * type; in userspace the raw bytes go to the opener (`'pushed'`); without RX
   * keys raw bytes as application data. 0 at EOF, -errno on failure.
   */
  recvChunk(max: number): OpenedRecord | 'pushed' | number {
    const p = this.#host.paths;
    scratch ??= Buffer.allocUnsafeSlow(SCRATCH);
    const want = Math.min(max, SCRATCH);
    const n = p.handle.recv(scratch, 0, want);
    this.#shortRead = n > 0 && n < want;
    const rx = p.rx;
    // An empty record (a TLS 1.3 alert with no body, say) comes with its type; EOF comes without one.
    if (n === 0 && rx === 'kernel' && p.out[0] !== 0) return { type: p.out[0], data: Buffer.alloc(0) };
    if (n <= 0) return n;
    const data = Buffer.allocUnsafeSlow(n);
    scratch.copy(data, 0, 0, n);
    scratch.fill(0, 0, n);
    const k = constants();
    if (rx === 'kernel') return { type: p.out[0] || k.RECORD_APPLICATION_DATA, data };
    if (rx === null) return { type: k.RECORD_APPLICATION_DATA, data };
    rx.push(data);
    return 'pushed';
  }
}
