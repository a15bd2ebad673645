/**
 * `ktls.connect()`: `tls.connect()` through the wire tap (optionally with TCP
 * Fast Open), then the switch to the kernel.
 * @packageDocumentation
 */
import { once } from 'node:events';
import * as net from 'node:net';
import { addAbortSignal } from 'node:stream';
import * as tls from 'node:tls';
import { KtlsError } from '../native/errors.js';
import type { KtlsSocket } from '../socket/socket.js';
import { checkConnectOptions, normalizeConnectArgs, type KtlsConnectOptions, type SecureConnectListener } from './connect-args.js';
import { abortError, KtlsConnectRequest } from './connect-request.js';
import { fastOpenConnect } from './fast-open.js';
import { applyOnread } from '../socket/net-compat.js';
import { deadlineOf, handOver, withHalfOpen, untilSecure } from './switch.js';
import { WireTap } from './wire-tap.js';

export type { KtlsConnectOptions, SecureConnectListener } from './connect-args.js';
export { KtlsConnectRequest, type KtlsConnectRequestEvents } from './connect-request.js';

/** `timeout` before the socket exists: a plain timer until there is a connection, then the connection's own idle timer. */
class IdleTimer {
  #timer: NodeJS.Timeout | undefined;
  #raw: net.Socket | undefined;
  readonly #ms: number;
  readonly #fire: () => void;

  constructor(ms: number, fire: () => void) {
    this.#ms = ms;
    this.#fire = fire;
    if (ms > 0) this.#timer = setTimeout(fire, ms);
  }

  /** From now on, `raw`'s inactivity counts (node:net restarts its timer on every read and write). */
  watch(raw: net.Socket): void {
    if (!(this.#ms > 0) || !(raw instanceof net.Socket)) return;
    clearTimeout(this.#timer);
    this.#raw = raw;
    raw.setTimeout(this.#ms, this.#fire);
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#raw?.setTimeout(0, this.#fire);
    this.#raw = undefined;
  }
}

/** The connection, the handshake and the switch; `stop` aborting destroys whatever exists and rejects with its reason. */
async function establish(options: KtlsConnectOptions & { port?: number }, stop: AbortSignal, idle: IdleTimer): Promise<KtlsSocket> {
  // onread is the application's, for the socket it gets: node:tls would apply it to the TCP socket under the handshake.
  const { ktls, fastOpen, signal: _signal, timeout: _timeout, onread: _onread, ...tlsOptions } = options;
  // node:tls's own allowHalfOpen (a net option) holds for the KtlsSocket too, unless ktls.allowHalfOpen says otherwise.
  const opts = withHalfOpen(ktls, tlsOptions.allowHalfOpen);
  const live: { raw?: net.Socket; tls?: tls.TLSSocket } = {};
  const stopped = new Promise<never>((_resolve, reject) => {
    const onStop = (): void => {
      live.tls?.destroy();
      live.raw?.destroy();
      reject(stop.reason instanceof Error ? stop.reason : abortError(stop.reason));
    };
    if (stop.aborted) onStop();
    else stop.addEventListener('abort', onStop, { once: true });
  });
  stopped.catch(() => undefined);
  const race = <T>(p: Promise<T>): Promise<T> => Promise.race([p, stopped]);
  if (stop.aborted) return stopped;

  let raw = tlsOptions.socket as net.Socket | undefined;
  if (!raw && fastOpen) {
    const { host = 'localhost', port = 0, family, hints, lookup, localAddress, localPort, autoSelectFamily, autoSelectFamilyAttemptTimeout } = tlsOptions;
    const target = { host, port, family, hints, lookup, localAddress, localPort, autoSelectFamily, autoSelectFamilyAttemptTimeout };
    raw = await race(fastOpenConnect(target, stop));
  }
  if (!raw) {
    // Half-open: a peer's early FIN must not make node:net end or destroy the socket we are about to take.
    const r = net.connect({ ...(tlsOptions as net.NetConnectOpts), allowHalfOpen: true });
    live.raw = raw = r;
    idle.watch(r);
    await race(once(r, 'connect'));
  } else {
    live.raw = raw;
    idle.watch(raw);
  }
  // Any Duplex may carry TLS (node:tls takes one); only a TCP socket's records can move to the kernel.
  if (raw instanceof net.Socket) raw.setNoDelay(opts?.noDelay ?? true);
  const tap = new WireTap(raw, opts?.coalesce ?? true);
  const keylog: Buffer[] = [];
  const t = tls.connect({ ...tlsOptions, socket: tap });
  live.tls = t;
  t.once('secure', () => tap.markSecure());
  t.on('keylog', (line: Buffer) => keylog.push(line));
  const early: Buffer[] = [];
  t.on('session', (s: Buffer) => early.push(s));
  const deadline = deadlineOf(tap.since, opts?.handshakeTimeout);
  try {
    await race(untilSecure(t, 'secureConnect', deadline));
    const wait = opts?.waitForTicket ?? 0;
    if (wait > 0 && t.getProtocol() === 'TLSv1.3' && !t.isSessionReused()) {
      let timer: NodeJS.Timeout | undefined;
      await race(
        new Promise((resolve) => {
          t.once('session', resolve);
          timer = setTimeout(resolve, wait);
        }).finally(() => clearTimeout(timer)),
      );
    }
  } catch (err) {
    raw.destroy();
    throw err;
  }
  idle.stop(); // the switch has its own deadline; raw is about to be taken over
  const r = raw;
  const pending = handOver(t, { tap, raw, keylog, isServer: false, sessions: early, deadline, relayTickets: true }, opts);
  try {
    return await race(pending);
  } catch (err) {
    // After a failed (or abandoned) hand-over the TLS state is gone with node:tls: the connection cannot be used.
    pending.then(
      (s) => s.destroy(),
      () => undefined,
    );
    r.destroy();
    throw stop.aborted ? err : (r.errored ?? err);
  }
}

/** `timeout` and `signal` around {@link establish}; once the socket exists they become its own. */
async function run(options: KtlsConnectOptions & { port?: number }): Promise<KtlsSocket> {
  const { signal, timeout = 0 } = options;
  const ctl = new AbortController();
  const onAbort = (): void => ctl.abort(abortError(signal?.reason));
  const idle = new IdleTimer(timeout, () =>
    ctl.abort(new KtlsError('ERR_SOCKET_CONNECTION_TIMEOUT', `no activity for ${timeout} ms before the TLS handshake finished`)),
  );
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const sock = await establish(options, ctl.signal, idle);
    if (options.onread) applyOnread(sock, options.onread);
    if (timeout > 0) sock.setTimeout(timeout);
    if (signal) addAbortSignal(signal, sock);
    return sock;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    idle.stop();
  }
}

/**
 * Connects like `tls.connect()` and hands the connection to the kernel once
 * the handshake is done. Takes `tls.connect()`'s forms: `connect(options[, cb])`,
 * `connect(port[, host][, options][, cb])`. A Unix-domain `path`, a `socket`
 * that is not TCP (any Duplex, as node:tls takes) and `onread` work as on
 * node:tls; the records of a connection that is not over TCP stay on node:tls
 * (`kernel === false`, warning `KTLS_NODE_TLS`).
 *
 * Returns a {@link KtlsConnectRequest}: `await` it for the {@link KtlsSocket},
 * or listen for `'secureConnect'` (the callback is one such listener, called
 * with the socket as argument and `this`) and `'error'`. Argument errors
 * (`ERR_SOCKET_BAD_PORT`, `ERR_INVALID_ARG_TYPE`, ...) are thrown, as by `tls.connect()`.
 */
export function connect(options: KtlsConnectOptions, listener?: SecureConnectListener): KtlsConnectRequest;
export function connect(port: number | string, host?: string, options?: KtlsConnectOptions, listener?: SecureConnectListener): KtlsConnectRequest;
export function connect(port: number | string, options?: KtlsConnectOptions, listener?: SecureConnectListener): KtlsConnectRequest;
export function connect(port: number | string, host: string, listener: SecureConnectListener): KtlsConnectRequest;
export function connect(port: number | string, listener: SecureConnectListener): KtlsConnectRequest;
export function connect(...args: unknown[]): KtlsConnectRequest {
  const [given, listener] = normalizeConnectArgs(args);
  const request = new KtlsConnectRequest(run(checkConnectOptions(given)));
  if (listener) request.once('secureConnect', (socket) => listener.call(socket, socket));
  return request;
}
