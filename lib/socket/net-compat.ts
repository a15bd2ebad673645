/**
 * Edges of net.Socket's behaviour that a KtlsSocket copies, so code written
 * for net and tls sockets meets the same errors at the same moments.
 * @packageDocumentation
 */
import { Duplex } from 'node:stream';

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
