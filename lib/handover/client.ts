/**
 * `ktls.connect()`: `tls.connect()` through the wire tap (optionally with TCP
 * Fast Open), then the switch to the kernel.
 * @packageDocumentation
 */
import { once } from 'node:events';
import * as net from 'node:net';
import { addAbortSignal } from 'node:stream';
import * as tls from 'node:tls';
import { KtlsError, invalidArgType } from '../native/errors.js';
import type { KtlsSocket } from '../socket/socket.js';
import { checkConnectOptions, normalizeConnectArgs, type KtlsConnectOptions, type SecureConnectListener } from './connect-args.js';
import { fastOpenConnect } from './fast-open.js';
import { applyOnread } from '../socket/net-compat.js';
import { PendingStart } from '../socket/pending.js';
import { KtlsSocket as Socket } from '../socket/socket.js';
import { deadlineOf, handOver, withHalfOpen, untilSecure, type KtlsHandoverOptions } from './switch.js';
import { WireTap, clientEarlyEnd } from './wire-tap.js';

export type { KtlsConnectOptions, SecureConnectListener } from './connect-args.js';

/** What exists of a connection being made, for an abort to destroy. */
interface Live {
  raw?: net.Socket;
  tls?: tls.TLSSocket;
  refed: boolean;
}

/** The TCP connection is made: the socket learns its addresses (and emits 'connect' where net.Socket would). */
function connected(into: KtlsSocket, raw: net.Socket, live: Live, emit: boolean): void {
  live.raw = raw;
  if (!live.refed && raw instanceof net.Socket) raw.unref();
  const remote = { address: raw.remoteAddress, port: raw.remotePort, family: raw.remoteFamily };
  into.tcpConnected(remote, { address: raw.localAddress, port: raw.localPort }, emit);
}

/** The connection, the handshake and the switch; `stop` aborting destroys whatever exists and rejects with its reason. */
async function establish(
  options: KtlsConnectOptions & { port?: number },
  opts: KtlsHandoverOptions | undefined,
  stop: AbortSignal,
  live: Live,
  into: KtlsSocket,
): Promise<KtlsSocket> {
  // onread, timeout and signal are the socket's (connect() applied them); node:tls would put onread on the TCP socket under the handshake.
  const { ktls: _ktls, fastOpen, signal: _signal, timeout: _timeout, onread: _onread, ...tlsOptions } = options;
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
    if (raw) connected(into, raw, live, true);
  }
  if (!raw) {
    // Half-open: a peer's early FIN must not make node:net end or destroy the socket we are about to take.
    const r = net.connect({ ...(tlsOptions as net.NetConnectOpts), allowHalfOpen: true });
    live.raw = raw = r;
    if (!live.refed) r.unref();
    await race(once(r, 'connect'));
    connected(into, r, live, true);
  } else if (!live.raw) {
    // The caller's own socket: connected already, as node:tls assumes of one (no 'connect' then).
    connected(into, raw, live, false);
  }
  // Any Duplex may carry TLS (node:tls takes one); only a TCP socket's records can move to the kernel.
  if (raw instanceof net.Socket) raw.setNoDelay(opts?.noDelay ?? true);
  const tap = new WireTap(raw, opts?.coalesce ?? true, clientEarlyEnd(tlsOptions));
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
  const r = raw;
  const pending = handOver(t, { tap, raw, keylog, isServer: false, sessions: early, deadline, relayTickets: true, into }, opts);
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

/** Node's `AbortError` (`code: 'ABORT_ERR'`), with the signal's reason as `cause`. */
function abortError(reason: unknown): KtlsError {
  const err = new KtlsError('ABORT_ERR', 'The operation was aborted', { cause: reason });
  err.name = 'AbortError';
  return err;
}

/**
 * Connects like `tls.connect()` and hands the connection to the kernel once
 * the handshake is done. Takes `tls.connect()`'s forms: `connect(options[, cb])`,
 * `connect(port[, host][, options][, cb])`, `connect(path[, options][, cb])`.
 *
 * Returns the {@link KtlsSocket} at once, as `tls.connect()` returns its
 * socket: `'connect'` when TCP is connected, `'secureConnect'` once the
 * handshake is done and the records have moved to the kernel (the callback is
 * one such listener), `'error'` and `'close'` if the connection, the handshake
 * or the switch fails. Writes, `end()`, `setEncoding()`, `setTimeout()`,
 * `setNoDelay()`, `setKeepAlive()`, `ref()`/`unref()` and listeners made
 * before then take effect; `destroy()` stops the attempt. For a promise, see
 * {@link connectAsync}.
 *
 * A Unix-domain `path`, a `socket` that is not TCP (any Duplex, as node:tls
 * takes) and `onread` work as on node:tls; the records of a connection that is
 * not over TCP stay on node:tls (`kernel === false`, warning `KTLS_NODE_TLS`).
 * Argument errors (`ERR_SOCKET_BAD_PORT`, `ERR_INVALID_ARG_TYPE`, ...) are
 * thrown, as by `tls.connect()`.
 */
export function connect(options: KtlsConnectOptions, listener?: SecureConnectListener): KtlsSocket;
export function connect(port: number | string, host?: string, options?: KtlsConnectOptions, listener?: SecureConnectListener): KtlsSocket;
export function connect(port: number | string, options?: KtlsConnectOptions, listener?: SecureConnectListener): KtlsSocket;
export function connect(port: number | string, host: string, listener: SecureConnectListener): KtlsSocket;
export function connect(port: number | string, listener: SecureConnectListener): KtlsSocket;
export function connect(...args: unknown[]): KtlsSocket {
  const [given, listener] = normalizeConnectArgs(args);
  const options = checkConnectOptions(given);
  const { signal, timeout = 0, onread } = options;
  // node:tls's own allowHalfOpen (a net option) holds for the KtlsSocket too, unless ktls.allowHalfOpen says otherwise.
  const opts = withHalfOpen(options.ktls, options.allowHalfOpen);
  const ctl = new AbortController();
  const live: Live = { refed: true };
  const start = new PendingStart({
    abort: (err) => ctl.abort(err ?? new KtlsError('ERR_STREAM_DESTROYED', 'the socket was destroyed before it connected')),
    ref: (on) => {
      live.refed = on;
      if (!(live.raw instanceof net.Socket)) return;
      if (on) live.raw.ref();
      else live.raw.unref();
    },
  });
  // As tls.connect(): the context is made now, so a bad option (ciphers, a key) throws here, not later.
  const secureContext = options.secureContext ?? tls.createSecureContext(options);
  const { highWaterMark } = options as { highWaterMark?: number };
  const sock = new Socket(start, { ...(highWaterMark !== undefined ? { highWaterMark } : {}), ...opts });
  if (listener) sock.once('secureConnect', () => listener.call(sock, sock));
  if (onread) applyOnread(sock, onread);
  if (timeout > 0) sock.setTimeout(timeout);
  if (signal?.aborted) {
    // Nothing is looked up or opened for a signal aborted already.
    process.nextTick(() => sock.destroy(abortError(signal.reason)));
    return sock;
  }
  if (signal) addAbortSignal(signal, sock);
  establish({ ...options, secureContext }, opts, ctl.signal, live, sock).then(
    () => {
      if (sock.destroyed) return;
      try {
        sock.emit('secureConnect');
      } catch (err) {
        // A throwing listener is an uncaught exception, as with tls.connect(), not a rejection.
        process.nextTick(() => {
          throw err;
        });
      }
    },
    (err: unknown) => {
      if (!sock.destroyed) sock.destroy(err instanceof Error ? err : new KtlsError('ERR_KTLS_CONNECT', String(err)));
    },
  );
  return sock;
}

/**
 * {@link connect} as a promise: resolves with the {@link KtlsSocket} at its
 * `'secureConnect'`, rejects with the error that destroyed it before then.
 */
export function connectAsync(options: KtlsConnectOptions): Promise<KtlsSocket>;
export function connectAsync(port: number | string, host?: string, options?: KtlsConnectOptions): Promise<KtlsSocket>;
export function connectAsync(port: number | string, options?: KtlsConnectOptions): Promise<KtlsSocket>;
export function connectAsync(...args: unknown[]): Promise<KtlsSocket> {
  if (typeof args[args.length - 1] === 'function') throw invalidArgType('connectAsync() takes no callback: await it, or use connect()');
  return new Promise((resolve, reject) => {
    const sock = (connect as (...a: unknown[]) => KtlsSocket)(...args);
    const onError = (err: Error): void => reject(err);
    sock.once('error', onError);
    sock.once('secureConnect', () => {
      sock.off('error', onError);
      resolve(sock);
    });
  });
}
