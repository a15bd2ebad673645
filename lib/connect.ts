/**
 * `ktls.connect()` and `ktls.createServer()`: node:tls does the handshake (with
 * its certificates, SNI, ALPN and sessions) through a {@link WireTap}, then the
 * connection moves to the kernel without losing, duplicating or reordering a byte.
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { deriveSecrets, tlsInfo, WireTap, type HandshakeTcp } from './handshake.js';
import * as dns from 'node:dns/promises';
import { loadBinding } from './binding.js';
import { KtlsError, KtlsSystemError, errnoName, invalidArgValue } from './errors.js';
import { tcpInfo } from './tcp.js';
import type { KtlsSocket, KtlsSocketOptions } from './socket.js';
import { upgradeWith } from './upgrade.js';

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
  const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd;
  const rc = b && typeof fd === 'number' ? b.setsockoptInt(fd, b.constants.SOL_TCP, b.constants.TCP_FASTOPEN, queue) : -1;
  if (rc < 0) process.emitWarning(`TCP Fast Open could not be enabled on the listening socket (${rc === -1 ? 'no addon' : errnoName(rc)})`, { code: 'KTLS_FASTOPEN' });
}

/** Moves a finished node:tls handshake onto the kernel. */
async function handOver(t: tls.TLSSocket, tap: WireTap, raw: net.Socket, keylog: Buffer[], isServer: boolean, opts: KtlsHandoverOptions = {}, sessions: Buffer[] = [], consumed: () => number = () => 0): Promise<KtlsSocket> {
  // 'secure' fires inside OpenSSL's handshake callback: records fed in the same
  // chunk are still being read. Stop feeding now; count after node:tls settles.
  const prefix = tap.hold();
  t.disableRenegotiation();
  await nextTurn();
  await nextTurn();
  const { secrets, replay, trafficSecrets } = deriveSecrets(t, keylog, tap, isServer);
  const info = tlsInfo(t);
  info.handshakeTcp = tcpCounters(raw);
  tap.markSwitched();
  t.destroy();
  const fallback = opts.fallback ?? 'tls';
  try {
    const sock = await upgradeWith(raw, secrets, { ...opts, ...(trafficSecrets ? { trafficSecrets } : {}), fallback: fallback === 'error' ? 'error' : 'userspace' }, { prefix: Buffer.concat([...replay, prefix]), skip: consumed() });
    sock.attachTlsInfo(info);
    if (!sock.kernel && !warned) {
      warned = true;
      process.emitWarning('kernel TLS is not available for this connection; records are protected in userspace (load the tls module: modprobe tls)', { code: 'KTLS_FALLBACK' });
    }
    for (const s of sessions) process.nextTick(() => sock.emit('session', s));
    return sock;
  } finally {
    secrets.wipe();
    trafficSecrets?.tx.fill(0);
    trafficSecrets?.rx.fill(0);
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
    t.on('keylog', (line: Buffer) => keylog.push(line));
    const early: Buffer[] = [];
    t.on('session', (s: Buffer) => early.push(s));
    let ticket: Promise<unknown> = Promise.resolve();
    try {
      await new Promise<void>((resolve, reject) => t.once('secureConnect', resolve).once('error', reject));
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
    return handOver(t, tap, raw, keylog, false, opts, early).catch((err: unknown) => {
      r.destroy();
      throw err;
    });
  })();
  if (listener) done.then(listener, () => undefined);
  return done;
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
  #keylogs = new WeakMap<tls.TLSSocket, Buffer[]>();
  #raws = new WeakMap<WireTap, net.Socket>();

  /** See {@link createServer}. */
  constructor(options: KtlsServerOptions = {}, listener?: (socket: KtlsSocket) => void) {
    super();
    const { ktls: opts, fastOpen, ...tlsOptions } = options;
    this.tlsServer = new tls.Server(tlsOptions);
    this.tlsServer.on('keylog', (line: Buffer, t: tls.TLSSocket) => {
      const list = this.#keylogs.get(t) ?? [];
      list.push(line);
      this.#keylogs.set(t, list);
    });
    this.tlsServer.on('secureConnection', (t: tls.TLSSocket) => {
      // node:tls wraps a non-net stream in a JSStreamSocket: TLSWrap._parentWrap.stream is our tap.
      const tap = (t as unknown as { _handle?: { _parentWrap?: { stream?: unknown } } })._handle?._parentWrap?.stream;
      const raw = tap instanceof WireTap ? this.#raws.get(tap) : undefined;
      if (!(tap instanceof WireTap) || !raw) {
        t.destroy();
        this.emit('tlsClientError', new KtlsError('ERR_KTLS_HANDOVER', 'cannot find the connection under this node:tls socket'), t);
        return;
      }
      handOver(t, tap, raw, this.#keylogs.get(t) ?? [], true, opts).then(
        (sock) => this.emit('secureConnection', sock),
        (err: Error) => {
          raw.destroy();
          this.emit('tlsClientError', err, t);
        },
      );
    });
    this.tlsServer.on('tlsClientError', (err: Error, t: tls.TLSSocket) => this.emit('tlsClientError', err, t));
    this.netServer = net.createServer({ allowHalfOpen: true }, (raw) => {
      raw.setNoDelay(opts?.noDelay ?? true);
      const tap = new WireTap(raw, opts?.coalesce ?? true);
      this.#raws.set(tap, raw);
      raw.on('error', () => tap.destroy());
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
 */
export function createTLSSocket(socket: net.Socket, options: tls.ConnectionOptions & tls.TLSSocketOptions = {}): tls.TLSSocket {
  const tap = new WireTap(socket, true);
  const t = options.isServer ? new tls.TLSSocket(tap as unknown as net.Socket, options) : tls.connect({ ...options, socket: tap as unknown as net.Socket });
  const state: OwnTlsSocket = { tap, raw: socket, keylog: [], sessions: [], isServer: options.isServer === true, pushed: 0 };
  t.on('keylog', (line: Buffer) => state.keylog.push(line));
  t.on('session', (s: Buffer) => state.sessions.push(s));
  // Count the plaintext node:tls hands to its reader, to know what the user has read at the switch.
  const push = t.push.bind(t);
  t.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
    if (chunk !== null && chunk !== undefined) state.pushed += (chunk as Buffer).length;
    return push(chunk, encoding);
  };
  own.set(t, state);
  return t;
}

/**
 * Moves a TLSSocket made by {@link createTLSSocket} to the kernel once its
 * handshake is done. Plaintext the user already read is not delivered again;
 * what node:tls decrypted but nobody read comes first.
 */
export async function upgradeTLSSocket(t: tls.TLSSocket, options: KtlsHandoverOptions = {}): Promise<KtlsSocket> {
  const state = own.get(t);
  if (!state) throw new KtlsError('ERR_KTLS_TLS_SOCKET', 'only a TLSSocket made by ktls.createTLSSocket() can be upgraded: node:tls hides which records it has read');
  if (!(t as tls.TLSSocket & { _secureEstablished?: boolean })._secureEstablished) {
    await new Promise<void>((resolve, reject) => t.once('secure', resolve).once('secureConnect', resolve).once('error', reject));
  }
  const consumed = (): number => state.pushed - t.readableLength;
  return handOver(t, state.tap, state.raw, state.keylog, state.isServer, options, state.sessions, consumed).catch((err: unknown) => {
    state.raw.destroy();
    throw err;
  });
}
