/**
 * `ktls.createServer()`: a `tls.Server` runs each handshake through a wire tap
 * under a `net.Server` we listen with; finished handshakes switch to the
 * kernel, and every connection that fails or is abandoned first is closed and
 * reported once.
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { KtlsError, invalidArgType, invalidArgValue } from '../native/errors.js';
import { tlsTransport } from '../native/net-handle.js';
import type { KtlsSocket } from '../socket/socket.js';
import { enableFastOpen, listenRequest, listenReusePort } from './listen.js';
import { RawStandIn } from './stand-in.js';
import { deadlineOf, handOver, withHalfOpen, type KtlsHandoverOptions } from './switch.js';
import { WireTap, connReset } from './wire-tap.js';

/** `tls.createServer` options plus `ktls`. */
export interface KtlsServerOptions extends tls.TlsOptions {
  /**
   * TCP Fast Open queue length for the listening socket (`TCP_FASTOPEN`):
   * clients with a cookie may send their ClientHello in the SYN. The kernel
   * must allow it (`net.ipv4.tcp_fastopen` bit 2); a refusal is a `KTLS_FASTOPEN` warning.
   */
  fastOpen?: number;
  /**
   * `SO_REUSEPORT` on the listening socket: several servers (processes, or
   * cluster workers) bind the same address and port and the kernel spreads
   * connections over them. Node ≥ 22.12 sets it through `net.Server#listen`;
   * older versions get a socket the addon creates and binds.
   */
  reusePort?: boolean;
  /** ktls-specific options. */
  ktls?: KtlsHandoverOptions;
}

/** A server connection until its hand-over: the tap under node:tls, and what is known of it. */
const ignoreError = (): void => undefined;

interface ServerConnection {
  tap: WireTap;
  raw: Duplex;
  standIn: RawStandIn;
  keylog: Buffer[];
  /** The node:tls socket, once an event has shown it. */
  tls?: tls.TLSSocket;
  /** The first error node:tls reported for it. */
  error?: Error;
  /** 'secureConnection' or 'tlsClientError' has been (or will be) emitted for it. */
  reported: boolean;
  /** Stops counting it (once): its handshake failed, or its KtlsSocket closed. */
  release: () => void;
  /** Stops watching the raw socket's 'close' (the KtlsSocket reports it from the switch on). */
  unwatch: () => void;
}

/** What `'drop'` carries, as `net.Server`'s. */
export interface KtlsDropData {
  /** The address the connection came in on. */
  localAddress?: string;
  /** The local port. */
  localPort?: number;
  /** `'IPv4'` or `'IPv6'`. */
  localFamily?: string;
  /** The client's address. */
  remoteAddress?: string;
  /** The client's port. */
  remotePort?: number;
  /** `'IPv4'` or `'IPv6'`. */
  remoteFamily?: string;
}

/**
 * A TLS server whose connections end up in the kernel. It takes the options of
 * `tls.createServer()` and emits `'secureConnection'` with {@link KtlsSocket}s;
 * per-connection failures (handshake or hand-over) are `'tlsClientError'` events.
 * `'newSession'`, `'resumeSession'`, `'OCSPRequest'` and `'keylog'` listeners are
 * passed through to the underlying `tls.Server`.
 *
 * As `tls.Server` counts its TLSSockets, it counts each connection from accept
 * until its KtlsSocket closes (or its handshake fails): {@link getConnections},
 * {@link maxConnections} (beyond it a connection is closed at once and
 * `'drop'` emitted) and {@link close} (whose `'close'` waits for them all).
 * `'connection'` carries the raw `net.Socket` before its handshake; as on
 * `tls.Server`, `server.emit('connection', socket)` hands the server a
 * connection accepted elsewhere (any Duplex; only a TCP socket's records move
 * to the kernel).
 */
export class KtlsServer extends EventEmitter {
  /** The `tls.Server` that runs the handshakes (never listens itself). */
  readonly tlsServer: tls.Server;
  /** The listening TCP server. */
  readonly netServer: net.Server;
  /**
   * As `net.Server#maxConnections`: once this many connections are open (in
   * handshake or on a KtlsSocket), new ones are closed and `'drop'` is emitted.
   */
  maxConnections: number | undefined = undefined;
  #conns = new WeakMap<WireTap, ServerConnection>();
  /** Connections open: accepted and not yet closed or failed. */
  #open = 0;
  /** The listening socket has closed ('close' from the net.Server); 'close' waits for #open to reach 0. */
  #netClosed = false;
  #reusePort: boolean;

  /** See {@link createServer}. */
  constructor(options: KtlsServerOptions = {}, listener?: (socket: KtlsSocket) => void) {
    super();
    const { ktls, fastOpen, reusePort, ...tlsOptions } = options;
    // node:tls's own allowHalfOpen (a net option) holds for the KtlsSocket too, unless ktls.allowHalfOpen says otherwise.
    const opts = withHalfOpen(ktls, tlsOptions.allowHalfOpen);
    if (reusePort !== undefined && typeof reusePort !== 'boolean')
      throw invalidArgType(`Expected a boolean for options.reusePort but received ${typeof reusePort}`);
    this.#reusePort = reusePort ?? false;
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
      const { tap, raw, keylog, standIn } = c;
      standIn.hold();
      handOver(
        t,
        { tap, raw: raw as net.Socket, keylog, isServer: true, deadline: deadlineOf(tap.since, opts?.handshakeTimeout ?? tlsOptions.handshakeTimeout) },
        opts,
      ).then(
        (sock) => {
          // Nothing that lives as long as the connection may keep the hand-over (tap, node:tls socket) reachable.
          c.unwatch();
          // As node:tls's server sockets: an error after the handshake never crashes the process
          // for want of a listener (node:tls keeps its own no-op onSocketTLSError on each).
          sock.on('error', ignoreError);
          standIn.standFor(sock);
          if (sock.closed) c.release();
          else sock.once('close', c.release);
          this.emit('secureConnection', sock);
        },
        (err: Error) => {
          standIn.release();
          t.destroy();
          raw.destroy();
          c.release();
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
    // As tls.Server's own connection listener, first: server.emit('connection', socket) injects one.
    this.on('connection', (raw: Duplex) => this.#accept(raw, opts));
    this.netServer = net.createServer({ allowHalfOpen: true }, (raw) => {
      if (this.maxConnections !== undefined && this.#open >= this.maxConnections) return this.#drop(raw);
      // As tls.Server's connections: `socket.server` is the server the application made (net's own count uses `_server`).
      (raw as unknown as { server: unknown }).server = this;
      this.emit('connection', raw);
    });
    if (fastOpen !== undefined) {
      if (!Number.isInteger(fastOpen) || fastOpen < 0)
        throw invalidArgValue(`Expected a non-negative integer for options.fastOpen but received ${String(fastOpen)}`);
      // Before 'listening' reaches the user, so no connection is accepted without it.
      this.netServer.prependListener('listening', () => enableFastOpen(this.netServer, fastOpen));
    }
    this.netServer.on('listening', () => {
      this.#netClosed = false;
      this.emit('listening');
    });
    this.netServer.on('error', (err: Error) => this.emit('error', err));
    this.netServer.on('close', () => {
      this.#netClosed = true;
      this.#closeIfDrained();
    });
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
    if (!this.#reusePort) {
      (this.netServer.listen as (...a: unknown[]) => net.Server)(...args);
      return this;
    }
    const { options, callback } = listenRequest(args);
    if (callback) this.once('listening', callback);
    listenReusePort(this.netServer, options, (err) => this.emit('error', err));
    return this;
  }

  /** Whether the server is listening, as `net.Server#listening`. */
  get listening(): boolean {
    return this.netServer.listening;
  }

  /** Starts the handshake of a connection (accepted, or given with `emit('connection')`). */
  #accept(raw: Duplex, opts: KtlsHandoverOptions | undefined): void {
    this.#open++;
    const release = this.#releaser();
    // Any Duplex may carry TLS (node:tls takes one); only a TCP socket's records can move to the kernel.
    if (raw instanceof net.Socket) raw.setNoDelay(opts?.noDelay ?? true);
    const tap = new WireTap(raw as net.Socket, opts?.coalesce ?? true);
    // Closed before anything reported it (the hand-over, once started, releases it itself).
    const onRawClose = (): void => {
      if (!c.reported) release();
    };
    const c: ServerConnection = { tap, raw, standIn: new RawStandIn(raw), keylog: [], reported: false, release, unwatch: () => raw.off('close', onRawClose) };
    this.#conns.set(tap, c);
    raw.once('close', onRawClose);
    tap.once('close', () => {
      if (c.reported) return;
      c.reported = true;
      raw.destroy();
      release();
      const err = c.error ?? tap.errored ?? connReset('socket hang up');
      this.emit('tlsClientError', err, c.tls ?? raw);
    });
    this.tlsServer.emit('connection', tap);
  }

  /** As `net.Server#getConnections`: connections open, in handshake or on a KtlsSocket. */
  getConnections(callback: (err: Error | null, count: number) => void): this {
    if (typeof callback !== 'function') throw invalidArgType(`Expected callback to be a function but received ${typeof callback}`);
    process.nextTick(callback, null, this.#open);
    return this;
  }

  /** Stops counting one connection, once; made here so that it keeps nothing else of the connection reachable. */
  #releaser(): () => void {
    let counted = true;
    return () => {
      if (!counted) return;
      counted = false;
      this.#open--;
      this.#closeIfDrained();
    };
  }

  #drop(raw: net.Socket): void {
    const data: KtlsDropData = {
      localAddress: raw.localAddress,
      localPort: raw.localPort,
      localFamily: raw.localFamily,
      remoteAddress: raw.remoteAddress,
      remotePort: raw.remotePort,
      remoteFamily: raw.remoteFamily,
    };
    raw.destroy();
    this.emit('drop', data);
  }

  #closeIfDrained(): void {
    if (!this.#netClosed || this.#open > 0) return;
    this.#netClosed = false;
    this.emit('close');
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

  /** As `tls.Server#addContext`: a secure context for clients that ask for `hostname` (SNI, wildcards allowed). */
  addContext(hostname: string, context: tls.SecureContextOptions | tls.SecureContext): void {
    this.tlsServer.addContext(hostname, context);
  }

  /** As `tls.Server#setSecureContext`: replaces the default context for new handshakes. */
  setSecureContext(options: tls.SecureContextOptions): void {
    this.tlsServer.setSecureContext(options);
  }

  /** As `tls.Server#getTicketKeys`: the 48-byte session ticket key. */
  getTicketKeys(): Buffer {
    return this.tlsServer.getTicketKeys();
  }

  /** As `tls.Server#setTicketKeys`: shares session tickets with other servers that set the same key. */
  setTicketKeys(keys: Buffer): void {
    this.tlsServer.setTicketKeys(keys);
  }

  /** As `net.Server#ref`. */
  ref(): this {
    this.netServer.ref();
    return this;
  }

  /** As `net.Server#unref`: the listening socket does not keep the process alive. */
  unref(): this {
    this.netServer.unref();
    return this;
  }

  /**
   * As `net.Server#close`: stops accepting connections; open connections are
   * not affected, and `'close'` (with `callback`) comes once the last one has
   * closed. `callback` gets `ERR_SERVER_NOT_RUNNING` if the server was not listening.
   */
  close(callback?: (err?: Error) => void): this {
    if (typeof callback === 'function') {
      if (this.netServer.listening) this.once('close', () => callback());
      else this.once('close', () => callback(new KtlsError('ERR_SERVER_NOT_RUNNING', 'Server is not running.')));
    }
    this.netServer.close();
    return this;
  }

  /** As `net.Server[Symbol.asyncDispose]`: {@link close}, resolved at `'close'`; nothing if not listening. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.netServer.listening) return;
    await new Promise<void>((resolve, reject) => this.close((err) => (err ? reject(err) : resolve())));
  }
}

/** Creates a {@link KtlsServer}: `tls.createServer()` whose connections move to the kernel. */
export function createServer(options: KtlsServerOptions = {}, listener?: (socket: KtlsSocket) => void): KtlsServer {
  return new KtlsServer(options, listener);
}
