/**
 * What `ktls.connect()` returns: a promise of the {@link KtlsSocket} that is
 * also an `EventEmitter`, so callers written for `tls.connect()` (a callback,
 * `'secureConnect'`, `'error'`) and callers that `await` both work.
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events';
import { KtlsError } from '../native/errors.js';
import type { KtlsSocket } from '../socket/socket.js';

/** Events of a {@link KtlsConnectRequest}. */
export interface KtlsConnectRequestEvents {
  /** The handshake is done and the keys are installed: the socket, ready for use. */
  secureConnect: [socket: KtlsSocket];
  /** The connection, the handshake or the switch failed (or was aborted); no socket exists. */
  error: [err: Error];
}

/**
 * The connection attempt `ktls.connect()` returns. It is a `Promise<KtlsSocket>`
 * (`await`, `then`, `catch`, `finally`) and an `EventEmitter` of
 * `'secureConnect'` (with the socket) and `'error'`.
 *
 * A failure is delivered the way the caller listens for it:
 * - with an `'error'` listener: as `'error'` (and to `await`/`then` callers too);
 * - else, when `then`/`await`/`catch` was called on it by then: as a rejection only;
 * - else (only a callback or `'secureConnect'` listener, or nothing at all): as
 *   an `'error'` event with no listener, which throws, as `tls.connect()`'s
 *   socket would; the promise then counts as handled, so nothing is reported twice.
 *
 * Unlike `tls.connect()`'s `TLSSocket`, there is no socket to write to before the
 * handshake: the {@link KtlsSocket} exists only once the keys are in the kernel.
 */
export class KtlsConnectRequest extends EventEmitter<KtlsConnectRequestEvents> implements Promise<KtlsSocket> {
  /** `'KtlsConnectRequest'`, for `Object.prototype.toString`. */
  readonly [Symbol.toStringTag] = 'KtlsConnectRequest';
  readonly #promise: Promise<KtlsSocket>;
  #observed = false;

  /** @internal Settles as `outcome` does, delivering it as described on the class. */
  constructor(outcome: Promise<KtlsSocket>) {
    super();
    this.#promise = outcome.then(
      (socket) => {
        try {
          this.emit('secureConnect', socket);
        } catch (err) {
          // A throwing listener is an uncaught exception, as with tls.connect(), not a rejection.
          process.nextTick(() => {
            throw err;
          });
        }
        return socket;
      },
      (err: unknown) => {
        this.#fail(err instanceof Error ? err : new KtlsError('ERR_KTLS_CONNECT', String(err)));
        throw err;
      },
    );
  }

  #fail(err: Error): void {
    if (this.#observed && this.listenerCount('error') === 0) return; // the awaiting caller gets it
    this.#promise.catch(() => undefined);
    // Outside the promise chain: with no listener, this throws as an uncaught exception.
    process.nextTick(() => this.emit('error', err));
  }

  /** As `Promise#then`. */
  then<R1 = KtlsSocket, R2 = never>(
    onfulfilled?: ((socket: KtlsSocket) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    this.#observed = true;
    return this.#promise.then(onfulfilled, onrejected);
  }

  /** As `Promise#catch`. */
  catch<R = never>(onrejected?: ((reason: unknown) => R | PromiseLike<R>) | null): Promise<KtlsSocket | R> {
    return this.then(undefined, onrejected);
  }

  /** As `Promise#finally`. */
  finally(onfinally?: (() => void) | null): Promise<KtlsSocket> {
    this.#observed = true;
    return this.#promise.finally(onfinally);
  }
}

/** Node's `AbortError` (`code: 'ABORT_ERR'`), with the signal's reason as `cause`. */
export function abortError(reason: unknown): KtlsError {
  const err = new KtlsError('ABORT_ERR', 'The operation was aborted', { cause: reason });
  err.name = 'AbortError';
  return err;
}
