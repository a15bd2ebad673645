/**
 * The wire tap under a node:tls handshake. node:tls talks to the network
 * through a {@link WireTap} that frames every record both ways, so at the
 * switch we know exactly which records node:tls consumed and produced (see
 * sequence.ts for what is made of them). Until the switch the tap owns the
 * connection: when node:tls gives up on it (a failed or abandoned handshake),
 * the tap flushes what node:tls wrote (its alert) and closes the socket.
 * @packageDocumentation
 */
import { Duplex } from 'node:stream';
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import { KtlsError, handshakeTimeout } from '../native/errors.js';
import { RecordTrack, type KeyUpdateClock, type Tracks } from './sequence.js';
import { tlsTransport } from '../native/net-handle.js';
import type { KeyingExporter } from '../record/exporter.js';

const HEADER = 5;
/** How long a closing connection may take to flush node:tls's last words (an alert) before it is destroyed. */
const FLUSH_LIMIT = 2000;

/** Splits complete TLS records off the front of `buf`. */
function frame(buf: Buffer): { records: Buffer[]; rest: Buffer } {
  const records: Buffer[] = [];
  let off = 0;
  while (buf.length - off >= HEADER) {
    const len = HEADER + buf.readUInt16BE(off + 3);
    if (buf.length - off < len) break;
    records.push(buf.subarray(off, off + len));
    off += len;
  }
  return { records, rest: buf.subarray(off) };
}

/** Could `buf` start a TLS record: a known content type, version 3.x, and a length TLS allows (RFC 8446 §5.2)? */
function plausibleHeader(buf: Buffer): boolean {
  if (buf[0] < 20 || buf[0] > 24) return false;
  if (buf.length >= 2 && buf[1] !== 3) return false;
  return buf.length < HEADER || buf.readUInt16BE(3) <= (1 << 14) + 2048;
}

/** Destroys `raw` once what was written to it has gone out (bounded: a peer that reads nothing cannot keep it). */
function closeAfterFlush(raw: net.Socket): void {
  if (raw.destroyed) return;
  if (raw.writableLength === 0) return void raw.destroy();
  const timer = setTimeout(() => raw.destroy(), FLUSH_LIMIT);
  timer.unref();
  raw.once('close', () => clearTimeout(timer));
  raw.end(() => raw.destroy());
}

/** An `ECONNRESET` error as node:tls makes one. */
export function connReset(message: string): Error {
  return Object.assign(new Error(message), { code: 'ECONNRESET' });
}

/** node:tls's client error for a peer's FIN before the handshake is done, naming where it connected. */
export function clientEarlyEnd(o: { path?: string; host?: string; port?: number; localAddress?: string }): () => Error {
  const { path, host, port, localAddress } = o;
  return () => Object.assign(connReset('Client network socket disconnected before secure TLS connection was established'), { path, host, port, localAddress });
}

/**
 * The stream node:tls reads and writes instead of the socket. Incoming bytes
 * are passed on whole records at a time, so node:tls never holds a partial
 * record; `hold()` stops passing them on.
 * @internal
 */
export class WireTap extends Duplex implements Tracks {
  readonly fed: RecordTrack;
  readonly sent: RecordTrack;
  exporter?: KeyingExporter;
  /** Set when node:tls wrote after the switch: the hand-over fails loudly with it. */
  lateWrite: KtlsError | null = null;
  /** Called with {@link lateWrite} as soon as it happens. */
  onLateWrite: ((err: KtlsError) => void) | null = null;
  /** When the connection was accepted or connected (the hand-over deadline counts from it). */
  readonly since = Date.now();
  #raw: net.Socket;
  #in: Buffer = Buffer.alloc(0);
  #out: Buffer = Buffer.alloc(0);
  #held = false;
  #secure = false;
  #switched = false;
  #coalesce: boolean;
  #earlyEnd: () => Error;
  #corked = false;
  #onData = (chunk: Buffer): void => {
    this.#in = this.#in.length ? Buffer.concat([this.#in, chunk]) : chunk;
    this.#feed();
  };
  #onEnd = (): void => {
    if (this.#held) return;
    // Before the handshake is done the peer's FIN ends it, as it does a node:tls server's
    // (whose sockets are not half-open); after it, node:tls sees the end of its stream.
    if (this.#secure) this.push(null);
    else this.destroy(this.#earlyEnd());
  };
  #onError = (err: Error): void => {
    if (!this.#held) this.destroy(err);
  };
  #onClose = (): void => {
    if (!this.#switched) this.destroy();
  };

  /**
   * `coalesce` (default): each flight node:tls writes in one turn goes out in one
   * write, as few segments as the MSS allows. false: one write per record with
   * Nagle off, a segment per record (a baseline for tests and benchmarks).
   * `earlyEnd` makes the error of a peer's FIN before the handshake is done
   * (node:tls's: "socket hang up" on a server, its own message on a client).
   */
  constructor(raw: net.Socket, coalesce = true, earlyEnd: () => Error = () => connReset('socket hang up')) {
    super({ allowHalfOpen: true });
    this.#raw = raw;
    this.#coalesce = coalesce;
    this.#earlyEnd = earlyEnd;
    const clock: KeyUpdateClock = { tick: 0 };
    this.fed = new RecordTrack(true, clock);
    this.sent = new RecordTrack(false, clock);
    // Registered before node:tls's own listener: a record is tracked when node:tls consumes it.
    this.on('data', (r: Buffer) => this.fed.add(r));
    raw.on('data', this.#onData).on('end', this.#onEnd).on('error', this.#onError).on('close', this.#onClose);
  }

  #feed(): void {
    const { records, rest } = frame(this.#in);
    let i = 0;
    // 'secure' can fire inside push(): from then on nothing more is passed on.
    for (; i < records.length && !this.#held; i++) this.push(records[i]);
    this.#in = Buffer.from(i < records.length ? Buffer.concat([...records.slice(i), rest]) : rest);
    // Bytes that cannot start a TLS record go to node:tls at once, so it answers them (with an alert) now.
    if (!this.#held && this.#in.length > 0 && !plausibleHeader(this.#in)) {
      const junk = this.#in;
      this.#in = Buffer.alloc(0);
      this.push(junk);
    }
  }

  /** node:tls has finished the handshake ('secure'). */
  markSecure(): void {
    this.#secure = true;
  }

  /** Stops passing bytes to node:tls and lets go of the socket's incoming events. */
  hold(): void {
    if (this.#held) return;
    this.#held = true;
    this.#raw.pause();
    // A reset from here on is the KtlsSocket's to report (its own syscalls see it); the socket must not throw it meanwhile.
    this.#raw
      .off('data', this.#onData)
      .off('end', this.#onEnd)
      .off('error', this.#onError)
      .on('error', () => undefined);
    // Whatever is buffered here now must never reach node:tls: it is ours.
    this.pause();
  }

  /**
   * After {@link hold}: the wire bytes node:tls has not consumed, records it
   * left in this stream's buffer (it applies backpressure) and any partial one.
   */
  unconsumed(): Buffer {
    const back: Buffer[] = [];
    for (let r: unknown; (r = this.read()) !== null;) back.push(r as Buffer);
    return Buffer.concat([...back, this.#in]);
  }

  /** node:tls has handed everything it wrote to the socket (no partial record waiting here). */
  get idle(): boolean {
    return this.writableLength === 0 && this.#out.length === 0;
  }

  #uncork(): void {
    if (!this.#corked) return;
    this.#corked = false;
    this.#raw.uncork();
  }

  /** After this the connection is no longer the tap's; anything node:tls writes is an error. */
  markSwitched(): void {
    this.#uncork();
    this.#switched = true;
    this.#raw.off('close', this.#onClose);
    this.fed.wipe();
    this.sent.wipe();
  }

  override _read(): void {
    // Bytes are pushed as they arrive; node:tls applies no backpressure during a handshake.
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.#switched) {
      this.lateWrite ??= new KtlsError('ERR_KTLS_HANDOVER', `node:tls wrote ${chunk.length} bytes after the switch to the kernel`);
      this.onLateWrite?.(this.lateWrite);
      cb();
      return;
    }
    this.#out = this.#out.length ? Buffer.concat([this.#out, chunk]) : chunk;
    const { records, rest } = frame(this.#out);
    this.#out = Buffer.from(rest);
    for (const r of records) this.sent.add(r);
    if (!this.#coalesce) {
      // One write per record, no Nagle: the record-per-segment baseline to measure against.
      // A Duplex that is not a net.Socket has no Nagle to turn off.
      if (typeof this.#raw.setNoDelay === 'function') this.#raw.setNoDelay(true);
      for (const r of records) this.#raw.write(r);
      cb();
      return;
    }
    // node:tls hands over a flight in one or several writes in one turn; corked,
    // node:net sends them as one writev, so the flight fills segments.
    if (!this.#corked) {
      this.#corked = true;
      this.#raw.cork();
      setImmediate(() => this.#uncork());
    }
    // Acknowledge at once: node:net queues it, and node:tls must never keep output back from us.
    this.#raw.write(chunk);
    cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    // node:tls ending the stream (after close_notify) ends the connection, unless it has moved on.
    if (!this.#switched) {
      this.#uncork();
      this.#raw.end();
    }
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // node:tls gave up (failed or abandoned handshake): its last words go out, then the socket closes.
    if (!this.#switched) {
      this.#uncork();
      closeAfterFlush(this.#raw);
      this.fed.wipe();
      this.sent.wipe();
    }
    cb(err);
  }
}

/**
 * Waits until node:tls has handed everything it will write to the wire: user
 * writes made before the switch, tickets and KeyUpdate replies. Rejects with
 * `ERR_TLS_HANDSHAKE_TIMEOUT` past `deadline`.
 * @internal
 */
export async function settled(t: tls.TLSSocket, tap: WireTap, deadline: number): Promise<void> {
  // node:tls writes through a JSStreamSocket over the tap; its write in flight is the one thing not otherwise visible.
  const js = tlsTransport(t).socket;
  const inFlight = js ? Object.getOwnPropertySymbols(js).find((s) => s.description === 'kCurrentWriteRequest') : undefined;
  const busy = (): boolean => t.writableLength > 0 || !tap.idle || (inFlight !== undefined && (js as Record<symbol, unknown>)[inFlight] !== null);
  // Idle on two turns in a row: TLSWrap writes what it owes when a previous write completes, a turn later.
  for (let quiet = 0; quiet < 2;) {
    await new Promise((resolve) => setImmediate(resolve));
    if (t.destroyed) throw new KtlsError('ERR_SOCKET_CLOSED', 'the connection closed during the switch to the kernel');
    quiet = busy() ? 0 : quiet + 1;
    if (quiet === 0 && Date.now() > deadline) throw handshakeTimeout();
  }
}
