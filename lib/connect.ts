/**
 * `ktls.connect()` and `ktls.createServer()`: node:tls does the handshake (with
 * its certificates, SNI, ALPN and sessions) through a {@link WireTap}, then the
 * connection moves to the kernel without losing, duplicating or reordering a byte.
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { settled, tlsInfo, WireTap, type HandshakeTcp } from './handshake.js';
import { answerKeyUpdate, carriable, deriveSecrets, secretsOf, startTracking, wipeKeys } from './sequence.js';
import * as dns from 'node:dns/promises';
import { loadBinding } from './binding.js';
import { KtlsError, KtlsSystemError, errnoName, handshakeTimeout, invalidArgValue } from './errors.js';
import { tcpInfo } from './tcp.js';
import type { KtlsSocket, KtlsSocketOptions } from './socket.js';
import { upgradeWith } from './upgrade.js';
import { bridgeToNodeTls } from './bridge.js';
import { handleFd, tlsTransport } from './net-handle.js';

/** ktls-specific options of {@link connect} and {@link createServer}. */
export interface KtlsHandoverOptions extends KtlsSocketOptions {
  /**
   * Where the kernel lacks kTLS or the negotiated cipher: `'tls'` (default)
   * keeps the connection working with userspace record crypto behind the same
   * API (`socket.kernel === false`, one warning per process); `'error'` fails
   * with `ERR_KTLS_UNAVAILABLE`.
   */
  fallback?: 'tls' | 'error';
  /**
   * Client, TLS 1.3: wait up to this many milliseconds after the handshake for
   * the server's first NewSessionTicket, so that node:tls turns it into a
   * `'session'` event (and `getSession()`) usable with `connect({ session })`.
   * Default 0: switch at once; tickets then arrive as `'handshake'` events.
   */
  waitForTicket?: number;
  /**
   * Gather each handshake flight node:tls writes (ServerHello … Finished) into
   * one write, so it leaves in as few TCP segments as the MSS allows. Default true.
   */
  coalesce?: boolean;
  /** `false`: keep records in userspace even where the kernel has kTLS (comparisons, debugging). */
  kernel?: boolean;
  /**
   * Milliseconds the handshake and the switch to the kernel may take together,
   * from when the connection began (default: the server's `handshakeTimeout`,
   * else 120 s, node:tls's default). Past it the connection is closed with
   * `ERR_TLS_HANDSHAKE_TIMEOUT` (a `'tlsClientError'` on the server).
   */
  handshakeTimeout?: number;
  /**
   * `TCP_NODELAY` from the first byte (default true): a Finished and the first
   * record after it, or a small request and its response, are not held back by
   * Nagle's algorithm waiting for an ACK (a delayed ACK costs up to 40 ms).
   */
  noDelay?: boolean;
}

/** `tls.connect` options plus `ktls`. */
export interface KtlsConnectOptions extends tls.ConnectionOptions {
  /**
   * TCP Fast Open: connect with `TCP_FASTOPEN_CONNECT`, so once the kernel has
   * the server's cookie the ClientHello rides in the SYN. Where the kernel or
   * the path refuses, the connection is an ordinary one. Ignored with `socket`.
   */
  fastOpen?: boolean;
  /** ktls-specific options. */
  ktls?: KtlsHandoverOptions;
}

/** `tls.createServer` options plus `ktls`. */
export interface KtlsServerOptions extends tls.TlsOptions {
  /**
   * TCP Fast Open queue length for the listening socket (`TCP_FASTOPEN`):
   * clients with a cookie may send their ClientHello in the SYN. The kernel
   * must allow it (`net.ipv4.tcp_fastopen` bit 2); a refusal is a `KTLS_FASTOPEN` warning.
   */
  fastOpen?: number;
  /** ktls-specific options. */
  ktls?: KtlsHandoverOptions;
}

let warned = false;

/** TCP segment counters of a connection, for handshake statistics. */
function tcpCounters(raw: net.Socket): HandshakeTcp | undefined {
  try {
    const i = tcpInfo(raw);
    return { segmentsOut: i.segsOut, segmentsIn: i.segsIn, dataSegmentsOut: i.dataSegsOut };
  } catch {
    return undefined; // no addon, or the socket is gone: statistics only
  }
}

/** Connects with TCP_FASTOPEN_CONNECT; undefined when this kernel or platform cannot. */
async function fastOpenConnect(host: string, port: number): Promise<net.Socket | undefined> {
  const b = loadBinding().binding;
  if (!b) return undefined;
  const { address, family } = await dns.lookup(host);
  const fd = b.fastOpenSocket(family === 6 ? b.constants.AF_INET6 : b.constants.AF_INET);
  if (fd < 0) return undefined;
  const rc = b.connectFd(fd, address, port);
  if (rc < 0 && rc !== -b.constants.EINPROGRESS) {
    b.closeFd(fd);
    throw new KtlsSystemError(rc, 'connect', `${address}:${port}`);
  }
  // With a cookie the SYN waits for the first write (the ClientHello); libuv
  // retries that write until the connection is up either way.
  return new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
}

function enableFastOpen(server: net.Server, queue: number): void {
  const b = loadBinding().binding;
  const fd = handleFd(server);
  const rc = b && fd >= 0 ? b.setsockoptInt(fd, b.constants.SOL_TCP, b.constants.TCP_FASTOPEN, queue) : -1;
  if (rc < 0) process.emitWarning(`TCP Fast Open could not be enabled on the listening socket (${rc === -1 ? 'no addon' : errnoName(rc)})`, { code: 'KTLS_FASTOPEN' });
}

/** Where a hand-over stands: what it needs besides the TLSSocket. */
interface HandoverState {
  tap: WireTap;
  raw: net.Socket;
  keylog: Buffer[];
  isServer: boolean;
  /** 'session' events node:tls emitted (client), forwarded to the KtlsSocket. */
  sessions?: Buffer[];
  /** Plaintext the user already read through node:tls. */
  consumed?: () => number;
  /** Absolute time (ms) by which the hand-over must be done. */
  deadline: number;
}

/** The hand-over deadline: `handshakeTimeout` (node:tls's default 120 s) from when the connection began. */
function deadlineOf(since: number, timeout: number | undefined): number {
  return since + (timeout !== undefined && timeout > 0 ? timeout : 120_000);
}

let warnedNodeTls = false;

/** A suite neither kTLS nor the userspace record layer has: node:tls keeps the records (or, with fallback 'error', the switch fails). */
function keepOnNodeTls(t: tls.TLSSocket, st: HandoverState, opts: KtlsHandoverOptions): KtlsSocket {
  const suite = `${String(t.getProtocol())} ${t.getCipher().standardName}`;
  if (opts.fallback === 'error') throw new KtlsError('ERR_KTLS_UNSUPPORTED', `kernel TLS cannot carry ${suite}`);
  st.tap.fed.abandon();
  st.tap.sent.abandon();
  const info = tlsInfo(t);
  info.handshakeTcp = tcpCounters(st.raw);
  const sock = bridgeToNodeTls(t, st.raw, info, opts);
  for (const s of st.sessions ?? []) process.nextTick(() => sock.emit('session', s));
  if (!warnedNodeTls) {
    warnedNodeTls = true;
    process.emitWarning(`a connection negotiated ${suite}, which kernel TLS cannot carry; node:tls keeps protecting its records`, { code: 'KTLS_NODE_TLS' });
  }
  return sock;
}

/** Resolves on `event`; rejects on the socket's error, its close, or at `deadline` (`ERR_TLS_HANDSHAKE_TIMEOUT`). */
function untilSecure(t: tls.TLSSocket, event: 'secure' | 'secureConnect', deadline: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => done(handshakeTimeout()), Math.max(0, deadline - Date.now()));
    const onClose = (): void => done(new KtlsError('ERR_SOCKET_CLOSED', 'the connection closed before the TLS handshake finished'));
    const done = (err?: Error): void => {
      clearTimeout(timer);
      t.off(event, ok).off('error', done).off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const ok = (): void => done();
    t.once(event, ok).once('error', done).once('close', onClose);
  });
}

/** Moves a finished node:tls handshake onto the kernel. */
async function handOver(t: tls.TLSSocket, st: HandoverState, opts: KtlsHandoverOptions = {}): Promise<KtlsSocket> {
  const { tap, raw } = st;
  tap.markSecure();
  if (!carriable(t)) return keepOnNodeTls(t, st, opts);
  // 'secure' fires inside OpenSSL's handshake callback: stop feeding it now,
  // then wait until it has written everything it owes (tickets, user writes).
  tap.hold();
  t.disableRenegotiation();
  startTracking(t, st.keylog, tap, st.isServer);
  await settled(t, tap, st.deadline);
  const d = deriveSecrets(t, tap, st.consumed?.() ?? 0);
  const prefix = tap.unconsumed();
  const info = tlsInfo(t);
  info.handshakeTcp = tcpCounters(raw);
  tap.markSwitched();
  t.destroy();
  if (d.owesKeyUpdate) raw.write(answerKeyUpdate(d));
  const secrets = secretsOf(d);
  const trafficSecrets = d.tx.secret && d.rx.secret ? { tx: d.tx.secret, rx: d.rx.secret } : undefined;
  const fallback = opts.fallback ?? 'tls';
  try {
    const sock = await upgradeWith(raw, secrets, { ...opts, ...(trafficSecrets ? { trafficSecrets } : {}), fallback: fallback === 'error' ? 'error' : 'userspace' }, { prefix, early: d.early, skip: d.skip, deadline: st.deadline, role: st.isServer ? 'server' : 'client' });
    sock.attachTlsInfo(info);
    if (tap.lateWrite) sock.destroy(tap.lateWrite);
    else tap.onLateWrite = (err) => sock.destroy(err);
    if (!sock.kernel && !warned) {
      warned = true;
      process.emitWarning('kernel TLS is not available for this connection; records are protected in userspace (load the tls module: modprobe tls)', { code: 'KTLS_FALLBACK' });
    }
    for (const s of st.sessions ?? []) process.nextTick(() => sock.emit('session', s));
    return sock;
  } finally {
    secrets.wipe();
    wipeKeys(d.tx);
    wipeKeys(d.rx);
  }
}

/**
 * Connects like `tls.connect()` and resolves with a {@link KtlsSocket} once the
 * handshake is done and the keys are in the kernel. `listener` is called with it too.
 */
export function connect(options: KtlsConnectOptions, listener?: (socket: KtlsSocket) => void): Promise<KtlsSocket> {
  const done = (async () => {
    const { ktls: opts, fastOpen, ...tlsOptions } = options;
    let raw = tlsOptions.socket as net.Socket | undefined;
    if (!raw && fastOpen) raw = await fastOpenConnect(tlsOptions.host ?? 'localhost', tlsOptions.port ?? 443);
    if (!raw) {
      // Half-open: a peer's early FIN must not make node:net end or destroy the socket we are about to take.
      raw = net.connect({ ...(tlsOptions as net.NetConnectOpts), allowHalfOpen: true });
      const r = raw;
      await new Promise<void>((resolve, reject) => r.once('connect', resolve).once('error', reject));
    }
    raw.setNoDelay(opts?.noDelay ?? true);
    const tap = new WireTap(raw, opts?.coalesce ?? true);
    const keylog: Buffer[] = [];
    const t = tls.connect({ ...tlsOptions, socket: tap as unknown as net.Socket });
    t.once('secure', () => tap.markSecure());
    t.on('keylog', (line: Buffer) => keylog.push(line));
    const early: Buffer[] = [];
    t.on('session', (s: Buffer) => early.push(s));
    let ticket: Promise<unknown> = Promise.resolve();
    const deadline = deadlineOf(tap.since, opts?.handshakeTimeout);
    try {
      await untilSecure(t, 'secureConnect', deadline);
      const wait = opts?.waitForTicket ?? 0;
      if (wait > 0 && t.getProtocol() === 'TLSv1.3' && !t.isSessionReused()) {
        let timer: NodeJS.Timeout | undefined;
        ticket = new Promise((resolve) => {
          t.once('session', resolve);
          timer = setTimeout(resolve, wait);
        }).finally(() => clearTimeout(timer));
      }
      await ticket;
    } catch (err) {
      raw.destroy();
      throw err;
    }
    const r = raw;
    // After a failed hand-over the TLS state is gone with node:tls: the connection cannot be used.
    return handOver(t, { tap, raw, keylog, isServer: false, sessions: early, deadline }, opts).catch((err: unknown) => {
      r.destroy();
      throw r.errored ?? err;
    });
  })();
  if (listener) done.then(listener, () => undefined);
  return done;
}

/** A server connection until its hand-over: the tap under node:tls, and what is known of it. */
interface ServerConnection {
  tap: WireTap;
  raw: net.Socket;
  keylog: Buffer[];
  /** The node:tls socket, once an event has shown it. */
  tls?: tls.TLSSocket;
  /** The first error node:tls reported for it. */
  error?: Error;
  /** 'secureConnection' or 'tlsClientError' has been (or will be) emitted for it. */
  reported: boolean;
}

/**
 * A TLS server whose connections end up in the kernel. It takes the options of
 * `tls.createServer()` and emits `'secureConnection'` with {@link KtlsSocket}s;
 * per-connection failures (handshake or hand-over) are `'tlsClientError'` events.
 * `'newSession'`, `'resumeSession'`, `'OCSPRequest'` and `'keylog'` listeners are
 * passed through to the underlying `tls.Server`.
 */
export class KtlsServer extends EventEmitter {
  /** The `tls.Server` that runs the handshakes (never listens itself). */
  readonly tlsServer: tls.Server;
  /** The listening TCP server. */
  readonly netServer: net.Server;
  #conns = new WeakMap<WireTap, ServerConnection>();

  /** See {@link createServer}. */
  constructor(options: KtlsServerOptions = {}, listener?: (socket: KtlsSocket) => void) {
    super();
    const { ktls: opts, fastOpen, ...tlsOptions } = options;
    this.tlsServer = new tls.Server(tlsOptions);
    this.tlsServer.on('keylog', (line: Buffer, t: tls.TLSSocket) => {
      const c = this.#connOf(t);
      if (c) c.keylog.push(line);
    });
    this.tlsServer.on('secureConnection', (t: tls.TLSSocket) => {
      const c = this.#connOf(t);
      if (!c) {
        t.destroy();
        this.emit('tlsClientError', new KtlsError('ERR_KTLS_HANDOVER', 'cannot find the connection under this node:tls socket'), t);
        return;
      }
      c.reported = true; // from here the hand-over reports the outcome
      const { tap, raw, keylog } = c;
      handOver(t, { tap, raw, keylog, isServer: true, deadline: deadlineOf(tap.since, opts?.handshakeTimeout ?? tlsOptions.handshakeTimeout) }, opts).then(
        (sock) => this.emit('secureConnection', sock),
        (err: Error) => {
          t.destroy();
          raw.destroy();
          // A reset during the switch undoes it: the reset is the reason, not what it broke.
          this.emit('tlsClientError', raw.errored ?? err, t);
        },
      );
    });
    // node:tls reports some failures without closing the connection (a handshake
    // timeout) and never reports others (a reset before its first read): the
    // connection is closed here, and reported once, when its tap closes.
    this.tlsServer.on('tlsClientError', (err: Error, t: tls.TLSSocket) => {
      const c = this.#connOf(t);
      if (c) {
        c.error ??= err;
        c.tls ??= t;
      }
      t.destroy();
    });
    this.netServer = net.createServer({ allowHalfOpen: true }, (raw) => {
      raw.setNoDelay(opts?.noDelay ?? true);
      const tap = new WireTap(raw, opts?.coalesce ?? true);
      const c: ServerConnection = { tap, raw, keylog: [], reported: false };
      this.#conns.set(tap, c);
      tap.once('close', () => {
        if (c.reported) return;
        c.reported = true;
        raw.destroy();
        const err = c.error ?? tap.errored ?? Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
        this.emit('tlsClientError', err, c.tls ?? raw);
      });
      this.tlsServer.emit('connection', tap);
    });
    if (fastOpen !== undefined) {
      if (!Number.isInteger(fastOpen) || fastOpen < 0) throw invalidArgValue(`Expected a non-negative integer for options.fastOpen but received ${String(fastOpen)}`);
      // Before 'listening' reaches the user, so no connection is accepted without it.
      this.netServer.prependListener('listening', () => enableFastOpen(this.netServer, fastOpen));
    }
    for (const ev of ['listening', 'close', 'error']) this.netServer.on(ev, (...args: unknown[]) => this.emit(ev, ...args));
    const passThrough = new Set(['newSession', 'resumeSession', 'OCSPRequest', 'keylog']);
    this.on('newListener', (ev: string | symbol) => {
      if (typeof ev === 'string' && passThrough.delete(ev)) this.tlsServer.on(ev, (...args: unknown[]) => this.emit(ev, ...args));
    });
    if (listener) this.on('secureConnection', listener);
  }

  /** Starts listening, with the arguments of `net.Server#listen`. */
  listen(port?: number, host?: string, backlog?: number, listeningListener?: () => void): this;
  listen(port?: number, host?: string, listeningListener?: () => void): this;
  listen(options: net.ListenOptions, listeningListener?: () => void): this;
  listen(port?: number, listeningListener?: () => void): this;
  listen(...args: unknown[]): this {
    (this.netServer.listen as (...a: unknown[]) => net.Server)(...args);
    return this;
  }

  /** The bound address, as `net.Server#address`. */
  address(): ReturnType<net.Server['address']> {
    return this.netServer.address();
  }

  /** The connection under a node:tls socket (node:tls wraps our tap in a JSStreamSocket: TLSWrap._parentWrap.stream). */
  #connOf(t: tls.TLSSocket): ServerConnection | undefined {
    const tap = tlsTransport(t).stream;
    return tap instanceof WireTap ? this.#conns.get(tap) : undefined;
  }

  /** Stops accepting connections; open KtlsSockets are not affected. */
  close(callback?: (err?: Error) => void): this {
    this.netServer.close(callback);
    return this;
  }
}

/** Creates a {@link KtlsServer}: `tls.createServer()` whose connections move to the kernel. */
export function createServer(options: KtlsServerOptions = {}, listener?: (socket: KtlsSocket) => void): KtlsServer {
  return new KtlsServer(options, listener);
}

interface OwnTlsSocket {
  tap: WireTap;
  raw: net.Socket;
  keylog: Buffer[];
  sessions: Buffer[];
  isServer: boolean;
  pushed: number;
}

const own = new WeakMap<tls.TLSSocket, OwnTlsSocket>();

/**
 * Builds a `tls.TLSSocket` over `socket` through the library's handshake layer,
 * for code that needs the TLSSocket itself (its events, reading and writing
 * during a first phase). Switch it to the kernel later with {@link upgradeTLSSocket}.
 * A TLSSocket made directly on a net.Socket cannot be switched: see the README.
 * Renegotiation is refused, as after the switch.
 */
export function createTLSSocket(socket: net.Socket, options: tls.ConnectionOptions & tls.TLSSocketOptions = {}): tls.TLSSocket {
  const tap = new WireTap(socket, true);
  const t = options.isServer ? new tls.TLSSocket(tap as unknown as net.Socket, options) : tls.connect({ ...options, socket: tap as unknown as net.Socket });
  t.disableRenegotiation();
  const state: OwnTlsSocket = { tap, raw: socket, keylog: [], sessions: [], isServer: options.isServer === true, pushed: 0 };
  t.on('keylog', (line: Buffer) => state.keylog.push(line));
  // The latest tickets only: they are handed to the KtlsSocket at the switch.
  t.on('session', (s: Buffer) => state.sessions.splice(0, state.sessions.length - 1, s));
  // Count the plaintext node:tls hands to its reader, to know what the user has read at the switch.
  const push = t.push.bind(t);
  t.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
    if (chunk !== null && chunk !== undefined) state.pushed += (chunk as Buffer).length;
    return push(chunk, encoding);
  };
  // From the handshake on, only counts and unread plaintext are kept, however long this phase lasts.
  t.once('secure', () => {
    tap.markSecure();
    if (!carriable(t)) return void (tap.fed.abandon(), tap.sent.abandon());
    try {
      startTracking(t, state.keylog, tap, state.isServer);
      tap.fed.trimAs(() => state.pushed - t.readableLength);
    } catch {
      // the switch will report it (upgradeTLSSocket rejects with the reason)
    }
  });
  own.set(t, state);
  return t;
}

/**
 * Moves a TLSSocket made by {@link createTLSSocket} to the kernel once its
 * handshake is done. Plaintext the user already read is not delivered again;
 * what node:tls decrypted but nobody read comes first. Rejects if the
 * connection closes first, or (`ERR_TLS_HANDSHAKE_TIMEOUT`) if the handshake
 * and switch take longer than `options.handshakeTimeout` (default 120 s).
 */
export async function upgradeTLSSocket(t: tls.TLSSocket, options: KtlsHandoverOptions = {}): Promise<KtlsSocket> {
  const state = own.get(t);
  if (!state) throw new KtlsError('ERR_KTLS_TLS_SOCKET', 'only a TLSSocket made by ktls.createTLSSocket() can be upgraded: node:tls hides which records it has read');
  if (t.destroyed) throw new KtlsError('ERR_SOCKET_CLOSED', 'the TLSSocket is destroyed');
  const secure = (t as tls.TLSSocket & { _secureEstablished?: boolean })._secureEstablished === true;
  // A handshake still running is timed from the connection's start; a finished one from now.
  const deadline = deadlineOf(secure ? Date.now() : state.tap.since, options.handshakeTimeout);
  try {
    if (!secure) await untilSecure(t, 'secure', deadline);
    const consumed = (): number => state.pushed - t.readableLength;
    return await handOver(t, { tap: state.tap, raw: state.raw, keylog: state.keylog, isServer: state.isServer, sessions: state.sessions, consumed, deadline }, options);
  } catch (err) {
    t.destroy();
    state.raw.destroy();
    throw state.raw.errored ?? err;
  }
}
