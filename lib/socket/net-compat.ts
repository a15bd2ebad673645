/**
 * Edges of net.Socket's behaviour that a KtlsSocket copies, so code written
 * for net and tls sockets meets the same errors at the same moments.
 * @packageDocumentation
 */
import { Duplex } from 'node:stream';
import { invalidArgValue } from '../native/errors.js';

/** An error that says the peer has gone (our close_notify or a write met its FIN or reset). @internal */
export const peerGone = (err: Error): boolean => ['EPIPE', 'ECONNRESET'].includes(String((err as NodeJS.ErrnoException).code));

/**
 * @internal As net.Socket's `write` once the peer has ended a socket that is not half-open: an
 * ordinary write until our side has ended too, then `EPIPE` to the callback (no `'error'`).
 */
export function writeAfterFin(this: Duplex, chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
  if (!this.writableEnded) return (Duplex.prototype.write as (...a: unknown[]) => boolean).call(this, chunk, encoding, cb);
  const err = Object.assign(new Error('This socket has been ended by the other party'), { code: 'EPIPE' });
  const done = typeof encoding === 'function' ? encoding : cb;
  if (typeof done === 'function') process.nextTick(done, err);
  return false;
}

/** What `connect({ onread })` takes, as net.Socket's option. */
export interface OnRead {
  /** Where incoming data is copied: one buffer reused, or a function that returns the buffer for each piece. */
  buffer: Uint8Array | (() => Uint8Array);
  /** Called for each piece with the bytes written to `buf`; returning false pauses the socket. */
  callback(bytesWritten: number, buf: Uint8Array): boolean;
}

/**
 * @internal As net.Socket's `onread` option: incoming data is copied into the caller's buffer and
 * handed to `callback` instead of `'data'` events (a chunk larger than the buffer, in pieces);
 * `callback` returning false pauses the socket. The socket flows from the start, as net's handle reads.
 */
export function applyOnread(socket: Duplex, onread: OnRead): void {
  const emit = socket.emit.bind(socket);
  socket.emit = ((event: string | symbol, ...args: unknown[]): boolean => {
    // As node's: the read that finds the end is given a buffer too (and hands nothing to callback).
    if (event === 'end' && typeof onread.buffer === 'function') onread.buffer();
    if (event !== 'data') return emit(event, ...args);
    const chunk = args[0] as Buffer;
    for (let at = 0; at < chunk.length;) {
      const buf = typeof onread.buffer === 'function' ? onread.buffer() : onread.buffer;
      // An empty buffer cannot take anything: the rest of the chunk would never be placed.
      if (buf.length === 0) {
        socket.destroy(invalidArgValue('Expected a non-empty buffer for onread.buffer'));
        return false;
      }
      const n = chunk.copy(buf, 0, at, at + Math.min(buf.length, chunk.length - at));
      at += n;
      if (onread.callback(n, buf) === false) socket.pause();
    }
    return true;
  }) as typeof socket.emit;
  socket.resume();
}
