/**
 * HTTPS over kTLS: {@link createHttpsServer} feeds the {@link KtlsSocket}s of a
 * {@link KtlsServer} to Node's own `http.Server`, so express and fastify work on
 * top, and `serveFile()` (serve-file.ts) can send bodies with `sendfile(2)`.
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events';
import * as http from 'node:http';
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import { createServer, type KtlsServer, type KtlsServerOptions } from '../handover/server.js';
import { invalidArgType, invalidArgValue } from '../native/errors.js';
import { KtlsSocket } from '../socket/socket.js';

/**
 * Options of {@link createHttpsServer}: those of `ktls.createServer()` (the TLS
 * options of `tls.createServer()` plus `ktls`) and those of `http.createServer()`,
 * in one object as for `https.createServer()`.
 *
 * Defaults that differ from `ktls.createServer()`: `ALPNProtocols: ['http/1.1']`
 * (unless `ALPNCallback` is given),
 * and `ktls.allowTruncation: true` (HTTP/1.1 messages carry their own
 * length, and many clients close without close_notify, as `node:https` accepts).
 *
 * This server speaks HTTP/1.1 only (its `http.Server` cannot run HTTP/2): an
 * `ALPNProtocols` containing `'h2'` throws `ERR_INVALID_ARG_VALUE`, and an
 * `ALPNCallback` answer of `'h2'` ends that handshake with a
 * `no_application_protocol` alert. Clients offering `h2` and `http/1.1` get
 * `http/1.1`. For HTTP/2, use `createSecureHttp2Server()` (with `allowHTTP1`
 * for both).
 */
export interface KtlsHttpsServerOptions extends KtlsServerOptions, http.ServerOptions {}

/**
 * The protocol names in an `ALPNProtocols` option: an array of strings or
 * byte arrays, or one byte array in wire format (each name length-prefixed).
 */
function alpnNames(list: unknown): string[] {
  const names: string[] = [];
  if (Array.isArray(list)) {
    for (const p of list as unknown[]) {
      if (typeof p === 'string') names.push(p);
      else if (p instanceof Uint8Array) names.push(Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString('latin1'));
    }
  } else if (list instanceof Uint8Array) {
    const b = Buffer.from(list.buffer, list.byteOffset, list.byteLength);
    for (let i = 0; i < b.length; i += 1 + b[i]) names.push(b.toString('latin1', i + 1, i + 1 + b[i]));
  }
  return names;
}

/**
 * The TLS options for the {@link KtlsServer}: HTTP/2 is never offered (the
 * `http.Server` speaks HTTP/1.1; `createSecureHttp2Server()` serves h2), so an `ALPNProtocols` naming `h2` throws `ERR_INVALID_ARG_VALUE`,
 * and an `ALPNCallback` that picks `h2` is answered with undefined: node:tls
 * then ends the handshake with a `no_application_protocol` alert.
 */
function tlsOptions(options: KtlsHttpsServerOptions): KtlsServerOptions {
  const { ALPNProtocols, ALPNCallback } = options;
  if (ALPNProtocols !== undefined && alpnNames(ALPNProtocols).includes('h2'))
    throw invalidArgValue(
      "createHttpsServer serves HTTP/1.1 only: options.ALPNProtocols contains 'h2'; offer 'http/1.1', or use createSecureHttp2Server() for HTTP/2",
    );
  const tlsOpts: KtlsServerOptions = { ...options, ktls: { allowTruncation: true, ...options.ktls } };
  if (typeof ALPNCallback === 'function') {
    // node:tls refuses ALPNProtocols together with ALPNCallback: no default list then.
    tlsOpts.ALPNCallback = (arg) => {
      const chosen = ALPNCallback(arg);
      return chosen === 'h2' ? undefined : chosen;
    };
  } else if (ALPNCallback === undefined) {
    tlsOpts.ALPNProtocols = ALPNProtocols ?? ['http/1.1'];
  }
  return tlsOpts;
}

/** `http.Server` events, forwarded to a {@link KtlsHttpsServer} only once it has a listener (their presence changes http's behaviour). */
const HTTP_EVENTS = new Set(['request', 'checkContinue', 'checkExpectation', 'clientError', 'connect', 'upgrade', 'dropRequest', 'timeout']);
/** {@link KtlsServer} events forwarded the same way. */
const TLS_EVENTS = new Set(['connection', 'tlsClientError', 'secureConnection', 'newSession', 'resumeSession', 'OCSPRequest', 'keylog']);

/**
 * An HTTPS server whose connections run on kTLS: a {@link KtlsServer} does the
 * handshakes and hands each {@link KtlsSocket} to an `http.Server` that never
 * listens itself. `'request'` handlers get ordinary `IncomingMessage` /
 * `ServerResponse` objects with `res.socket` a KtlsSocket, so `serveFile()`
 * can send bodies with `sendfile(2)`.
 *
 * Events: `'listening'`, `'close'`, `'error'` always; `'request'`,
 * `'checkContinue'`, `'checkExpectation'`, `'clientError'`, `'connect'`,
 * `'upgrade'`, `'dropRequest'`, `'timeout'` from the `http.Server`, and
 * `'tlsClientError'`, `'secureConnection'`, `'newSession'`, `'resumeSession'`,
 * `'OCSPRequest'`, `'keylog'` from the KtlsServer, each attached on the first
 * listener.
 */
export class KtlsHttpsServer extends EventEmitter {
  /** The `http.Server` that parses requests (fed with `'connection'` events; it never listens). */
  readonly http: http.Server;
  /** The TLS server that listens, handshakes and hands connections to the kernel. */
  readonly tls: KtlsServer;
  #noDelay: boolean;
  #keepAlive: { enable: boolean; delay: number } | undefined;

  /** See {@link createHttpsServer}. */
  constructor(options: KtlsHttpsServerOptions = {}, requestListener?: http.RequestListener) {
    super();
    if (options === null || typeof options !== 'object') throw invalidArgType(`Expected options to be an object but received ${typeof options}`);
    this.#noDelay = options.noDelay ?? true;
    this.#keepAlive = options.keepAlive ? { enable: true, delay: options.keepAliveInitialDelay ?? 0 } : undefined;
    this.tls = createServer(new.target.tlsOptions(options));
    this.http = http.createServer(options, requestListener);
    this.tls.on('secureConnection', (socket: KtlsSocket) => this.#onConnection(socket));
    this.tls.on('listening', () => {
      // http.Server starts its connection tracking (headersTimeout/requestTimeout,
      // closeIdleConnections) on its own 'listening'; it never listens, so say it.
      this.http.emit('listening');
      this.emit('listening');
    });
    this.tls.on('error', (err: Error) => this.emit('error', err));
    // As https.Server: a connection that fails before HTTP is a 'clientError' too (destroyed if nobody listens).
    this.tls.on('tlsClientError', (err: Error, conn: net.Socket | tls.TLSSocket) => void (this.emit('clientError', err, conn) || conn.destroy(err)));
    // As https.Server: 'close' once the listener is closed and every connection has ended.
    this.tls.on('close', () => this.#whenDrained(() => this.emit('close')));
    this.on('newListener', (ev: string | symbol) => {
      if (typeof ev === 'string') this.forward(ev);
    });
  }

  /** The TLS options for the {@link KtlsServer} (a subclass offers other ALPN protocols). */
  protected static tlsOptions(options: KtlsHttpsServerOptions): KtlsServerOptions {
    return tlsOptions(options);
  }

  #httpEvents = new Set(HTTP_EVENTS);
  #tlsEvents = new Set(TLS_EVENTS);

  /** Attaches the relay of an inner server's event `ev`, once, when `ev` gets its first listener here. */
  protected forward(ev: string): void {
    if (this.#httpEvents.delete(ev)) this.http.on(ev, (...args: unknown[]) => this.emit(ev, ...args));
    else if (this.#tlsEvents.delete(ev)) this.tls.on(ev, (...args: unknown[]) => this.#relay(ev, args));
  }

  /** Hands a connection that has switched to its protocol's server (here, always the `http.Server`). */
  protected route(socket: KtlsSocket): void {
    this.http.emit('connection', socket);
  }

  /** A KtlsServer event re-emitted here (not taken for one the application emits). */
  #relaying = false;

  #relay(ev: string, args: unknown[]): void {
    const was = this.#relaying;
    this.#relaying = true;
    try {
      this.emit(ev, ...args);
    } finally {
      this.#relaying = was;
    }
  }

  /**
   * As on `https.Server`, `emit('connection', socket)` by the application hands
   * the server a connection accepted elsewhere (a protocol-sniffing front end,
   * say); every other event is emitted as usual.
   */
  override emit(ev: string | symbol, ...args: unknown[]): boolean {
    if (ev === 'connection' && !this.#relaying) return this.tls.emit('connection', ...args);
    return super.emit(ev, ...args);
  }

  /** Connections handed to the http.Server and not closed yet. */
  #sockets = new Set<KtlsSocket>();
  #drained: Array<() => void> = [];

  /** Runs `fn` once no connection is left (at once if none is). */
  #whenDrained(fn: () => void): void {
    if (this.#sockets.size === 0) fn();
    else this.#drained.push(fn);
  }

  #onConnection(socket: KtlsSocket): void {
    this.#sockets.add(socket);
    socket.once('close', () => {
      this.#sockets.delete(socket);
      if (this.#sockets.size === 0) for (const fn of this.#drained.splice(0)) fn();
    });
    try {
      socket.setNoDelay(this.#noDelay);
      if (this.#keepAlive) socket.setKeepAlive(this.#keepAlive.enable, this.#keepAlive.delay);
    } catch {
      // The connection is already gone (setsockopt on a closed fd); http sees 'close'.
    }
    this.route(socket);
  }

  /** Starts listening, with the arguments of `net.Server#listen`. */
  listen(port?: number, host?: string, backlog?: number, listeningListener?: () => void): this;
  listen(options: net.ListenOptions, listeningListener?: () => void): this;
  listen(port?: number, listeningListener?: () => void): this;
  listen(...args: unknown[]): this {
    (this.tls.listen as (...a: unknown[]) => KtlsServer)(...args);
    return this;
  }

  /** Whether the server is listening. */
  get listening(): boolean {
    return this.tls.netServer.listening;
  }

  /** The bound address, as `net.Server#address`. */
  address(): ReturnType<net.Server['address']> {
    return this.tls.address();
  }

  /**
   * Stops accepting connections and closes idle keep-alive connections, as
   * `http.Server#close` does; requests in flight finish (their connections close
   * once idle or at their keep-alive timeout). `callback` runs, as with
   * `https.Server`, once the listening socket is closed and every connection
   * has closed (with `ERR_SERVER_NOT_RUNNING` at once if it was not listening).
   */
  close(callback?: (err?: Error) => void): this {
    this.tls.close((err) => {
      if (err) callback?.(err);
      else if (callback) this.#whenDrained(() => callback());
    });
    this.http.close();
    return this;
  }

  /** Open connections: handshakes in progress plus KtlsSockets not closed yet (`net.Server#getConnections`). */
  getConnections(callback: (err: Error | null, count: number) => void): this {
    this.tls.getConnections(callback);
    return this;
  }

  /** As `net.Server#ref`. */
  ref(): this {
    this.tls.ref();
    return this;
  }

  /** As `net.Server#unref`: the listening socket does not keep the process alive. */
  unref(): this {
    this.tls.unref();
    return this;
  }

  /** `net.Server#maxConnections`: connections past it (in handshake or open) are closed at accept, with `'drop'` on the KtlsServer. */
  get maxConnections(): number | undefined {
    return this.tls.maxConnections;
  }
  /** Sets `net.Server#maxConnections`. */
  set maxConnections(n: number | undefined) {
    this.tls.maxConnections = n;
  }

  /** @deprecated As `net.Server#connections`: use {@link KtlsHttpsServer.getConnections}. KtlsSockets open now. */
  get connections(): number {
    return this.#sockets.size;
  }

  /** `await using`: {@link KtlsHttpsServer.close}, resolved once every connection has closed. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.listening) return;
    await new Promise<void>((resolve, reject) => this.close((err) => (err ? reject(err) : resolve())));
  }

  /** `http.Server#maxHeadersCount` (null: 2000). */
  get maxHeadersCount(): number | null {
    return this.http.maxHeadersCount;
  }
  /** Sets `http.Server#maxHeadersCount`. */
  set maxHeadersCount(n: number | null) {
    this.http.maxHeadersCount = n;
  }

  /** Destroys every connection, busy or idle (`http.Server#closeAllConnections`). */
  closeAllConnections(): void {
    this.http.closeAllConnections();
  }

  /** Destroys connections that have no request in flight (`http.Server#closeIdleConnections`). */
  closeIdleConnections(): void {
    this.http.closeIdleConnections();
  }

  /** As `https.Server#addContext`: a secure context for clients that ask for `hostname` (SNI, wildcards allowed). */
  addContext(hostname: string, context: tls.SecureContextOptions | tls.SecureContext): void {
    this.tls.addContext(hostname, context);
  }

  /** As `https.Server#setSecureContext`: replaces the default context for new handshakes. */
  setSecureContext(options: tls.SecureContextOptions): void {
    this.tls.setSecureContext(options);
  }

  /** As `https.Server#getTicketKeys`: the 48-byte session ticket key. */
  getTicketKeys(): Buffer {
    return this.tls.getTicketKeys();
  }

  /** As `https.Server#setTicketKeys`: shares session tickets with other servers that set the same key. */
  setTicketKeys(keys: Buffer): void {
    this.tls.setTicketKeys(keys);
  }

  /** Sets the socket inactivity timeout of new connections, as `http.Server#setTimeout`. */
  setTimeout(msecs?: number, callback?: (socket: net.Socket) => void): this;
  setTimeout(callback: (socket: net.Socket) => void): this;
  setTimeout(msecs?: number | ((socket: net.Socket) => void), callback?: (socket: net.Socket) => void): this {
    // http.Server#setTimeout would store a lone callback as the timeout: listen for it instead.
    if (typeof msecs === 'function') this.http.on('timeout', msecs);
    else this.http.setTimeout(msecs, callback);
    return this;
  }

  /** `http.Server#keepAliveTimeout`: how long an idle keep-alive connection stays open (ms). */
  get keepAliveTimeout(): number {
    return this.http.keepAliveTimeout;
  }
  /** Sets `http.Server#keepAliveTimeout`. */
  set keepAliveTimeout(ms: number) {
    this.http.keepAliveTimeout = ms;
  }

  /** `http.Server#headersTimeout` (ms). */
  get headersTimeout(): number {
    return this.http.headersTimeout;
  }
  /** Sets `http.Server#headersTimeout`. */
  set headersTimeout(ms: number) {
    this.http.headersTimeout = ms;
  }

  /** `http.Server#requestTimeout` (ms). */
  get requestTimeout(): number {
    return this.http.requestTimeout;
  }
  /** Sets `http.Server#requestTimeout`. */
  set requestTimeout(ms: number) {
    this.http.requestTimeout = ms;
  }

  /** `http.Server#timeout`: socket inactivity timeout while a request is in flight (ms, 0: none). */
  get timeout(): number {
    return this.http.timeout;
  }
  /** Sets `http.Server#timeout`. */
  set timeout(ms: number) {
    this.http.timeout = ms;
  }

  /** `http.Server#maxRequestsPerSocket` (0: no limit). */
  get maxRequestsPerSocket(): number | null {
    return this.http.maxRequestsPerSocket;
  }
  /** Sets `http.Server#maxRequestsPerSocket`. */
  set maxRequestsPerSocket(n: number | null) {
    this.http.maxRequestsPerSocket = n;
  }
}

/**
 * Creates an HTTPS server on kTLS: `https.createServer()`'s shape, with
 * connections whose records the kernel seals and opens. Works with express
 * (`createHttpsServer(opts, app)`) and fastify (`serverFactory`).
 *
 * ```ts
 * const server = ktls.createHttpsServer({ key, cert }, (req, res) => {
 *   const file = decodeURIComponent(new URL(req.url ?? '/', 'https://x').pathname);
 *   ktls.serveFile(res, file, { root: '/srv/www' }).catch(() => res.destroy());
 * }).listen(8443);
 * ```
 */
export function createHttpsServer(options: KtlsHttpsServerOptions = {}, requestListener?: http.RequestListener): KtlsHttpsServer {
  return new KtlsHttpsServer(options, requestListener);
}
