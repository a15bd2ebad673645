/**
 * A KtlsSocket before its connection exists. `ktls.connect()` returns the
 * socket at once, as `tls.connect()` does; what the application does to it
 * until the records move to the kernel (writes, `end()`, reads, TCP options,
 * `ref()`/`unref()`, the record size) is held here and applied at the switch.
 * @packageDocumentation
 */
import { KtlsError } from '../native/errors.js';

type Callback = (err?: Error | null) => void;

/** What makes the connection a pending socket waits for (the client's connect, handshake and switch). */
export interface Connector {
  /** The socket was destroyed before the switch: stop, and destroy whatever exists. */
  abort(err: Error | null): void;
  /** `ref()`/`unref()` before the switch: they apply to the connection being made. */
  ref(on: boolean): void;
}

/** What was asked of a socket before it had a connection. @internal */
export class PendingStart {
  readonly connector: Connector;
  /** Chunks from `_write`/`_writev` (op markers included), in order, each batch with its callback. */
  readonly writes: Array<{ chunks: Buffer[]; cb: Callback }> = [];
  /** `_final`'s callback, when `end()` came before the switch. */
  final: Callback | null = null;
  wantRead = false;
  refed = true;
  keepAlive: [enable: boolean, initialDelay: number] | undefined;
  noDelay: boolean | undefined;
  maxRecordSize: number | undefined;
  /** TCP has connected ('connect' was emitted); the handshake may still be running. */
  tcpConnected = false;
  remote: { address?: string; port?: number; family?: string } = {};
  local: { address?: string; port?: number } = {};
  readonly #waiters: Array<(err: Error | null) => void> = [];

  constructor(connector: Connector) {
    this.connector = connector;
  }

  /** Resolves once the socket has its connection; rejects with the error that destroyed it first. */
  attached(): Promise<void> {
    return new Promise((resolve, reject) => this.#waiters.push((err) => (err ? reject(err) : resolve())));
  }

  /** The switch is done (`err` null) or will never be: what waited runs now. */
  settle(err: Error | null): void {
    for (const w of this.#waiters.splice(0)) w(err);
  }

  /**
   * The socket was destroyed first: writes and `end()` made before the connection fail as
   * net.Socket's do (`ERR_SOCKET_CLOSED_BEFORE_CONNECTION`).
   */
  fail(cause: Error | null): void {
    const err = new KtlsError('ERR_SOCKET_CLOSED_BEFORE_CONNECTION', 'Socket closed before the connection was established');
    for (const w of this.writes.splice(0)) w.cb(err);
    const final = this.final;
    this.final = null;
    final?.(err);
    this.settle(cause ?? new KtlsError('ERR_STREAM_DESTROYED', 'the socket was destroyed before it connected'));
  }
}
