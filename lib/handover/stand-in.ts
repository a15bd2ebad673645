/**
 * The socket a server's `'connection'` gave the application stands for the
 * connection until it closes, as node:tls's does: servers keep it to destroy
 * at shutdown and forget it at its `'close'` (Node's own test-https-close).
 * The switch to the kernel takes its fd and destroys it, so from then on its
 * `destroy()` destroys the {@link KtlsSocket}, and its `'close'` is held until
 * just before the KtlsSocket's, where node:tls's raw socket emits it.
 * @packageDocumentation
 */
import type { Duplex } from 'node:stream';
import type { KtlsSocket } from '../socket/socket.js';

type Emit = Duplex['emit'];

/** Holds a raw socket's `'close'` while the switch runs, and from then until its connection's socket closes. */
export class RawStandIn {
  /** Weak once the switch is done, unless something listens for its `'close'`: a socket nobody can observe costs nothing. */
  #raw: { deref(): Duplex | undefined };
  readonly #emit: Emit;
  #holding = false;
  /** The arguments of a `'close'` held back. */
  #held: unknown[] | null = null;

  constructor(raw: Duplex) {
    this.#raw = { deref: () => raw };
    // Unbound (called with .call(raw)): a bound copy would keep the socket reachable from here.
    // eslint-disable-next-line @typescript-eslint/unbound-method -- always called with .call(raw)
    this.#emit = raw.emit;
    raw.emit = ((ev: string | symbol, ...args: unknown[]): boolean => {
      if (ev !== 'close' || !this.#holding) return this.#emit.call(raw, ev, ...args);
      this.#held = args;
      return raw.listenerCount('close') > 0;
    }) as Emit;
  }

  /** The switch has started: its outcome decides when `'close'` comes. */
  hold(): void {
    this.#holding = true;
  }

  /** The switch failed, or the connection's socket is closing: the raw socket's `'close'` comes now (or when it happens). */
  release(): void {
    this.#holding = false;
    const raw = this.#raw.deref();
    if (!raw) return;
    raw.emit = this.#emit;
    const held = this.#held;
    this.#held = null;
    if (held) this.#emit.call(raw, 'close', ...held);
  }

  /** The switch gave the connection `sock`. */
  standFor(sock: KtlsSocket): void {
    const raw = this.#raw.deref()!;
    // Where node:tls still carries the records over it (not TCP, a CBC suite), it is alive and destroys them itself.
    if (raw.destroyed) forwardDestroy(raw, sock);
    if (sock.closed) return this.release();
    if (raw.listenerCount('close') === 0) this.#raw = new WeakRef(raw);
    sock.prependOnceListener('close', this.#onClose());
  }

  // Made apart from standFor, whose scope holds `raw`: a closure there would keep it reachable from the socket.
  #onClose(): () => void {
    return () => this.release();
  }
}

function forwardDestroy(raw: Duplex, sock: KtlsSocket): void {
  raw.destroy = (err?: Error): Duplex => (sock.destroy(err), raw);
}
