/**
 * HTTP/2 over kTLS: {@link createSecureHttp2Server} is `http2.createSecureServer()`
 * on a {@link KtlsServer}. ALPN picks the protocol; an `h2` connection becomes
 * a Node `Http2Session` on the {@link KtlsSocket} (Node wraps a stream without
 * a native handle in its JS stream socket), and with `allowHTTP1` an HTTP/1.1
 * connection takes {@link KtlsHttpsServer}'s path, where `serveFile()` uses
 * `sendfile(2)`.
 * @packageDocumentation
 */
import * as http from 'node:http';
import * as http2 from 'node:http2';
import type * as net from 'node:net';
import type { KtlsServerOptions } from '../handover/server.js';
import { invalidArgType } from '../native/errors.js';
import type { KtlsSocket } from '../socket/socket.js';
import { bindSession } from './h2-session.js';
import { KtlsHttpsServer, type KtlsHttpsServerOptions } from './server.js';

/**
 * Options of {@link createSecureHttp2Server}: those of `http2.createSecureServer()`
 * (`allowHTTP1`, `settings`, `maxSessionMemory`, `unknownProtocolTimeout`, …)
 * and of `ktls.createServer()` (`ktls`), in one object.
 *
 * As on `http2.createSecureServer()`, ALPN offers `h2`, and `http/1.1` too with
 * `allowHTTP1` (an `ALPNProtocols` option is replaced unless `ALPNCallback`
 * is given). `ktls.allowTruncation` defaults to true, as for {@link createHttpsServer}.
 */
export interface KtlsHttp2ServerOptions extends KtlsServerOptions, Omit<http2.SecureServerOptions, keyof KtlsServerOptions> {}

/** The options as the HTTP/1.1 side takes them: node:http2's `Http1IncomingMessage`/`Http1ServerResponse` as http's classes. */
function http1Options(options: KtlsHttp2ServerOptions): KtlsHttpsServerOptions {
  if (options === null || typeof options !== 'object')
    throw invalidArgType(`Expected options to be an object but received ${options === null ? 'null' : typeof options}`);
  const { Http1IncomingMessage, Http1ServerResponse } = options;
  return { ...options, IncomingMessage: Http1IncomingMessage, ServerResponse: Http1ServerResponse };
}

/**
 * A `'request'` listener of {@link createSecureHttp2Server}: HTTP/2 requests
 * get http2's compat objects, HTTP/1.1 ones (with `allowHTTP1`) http's. Declared
 * as a method so a listener typed for either (fastify's, express's) fits, as
 * with `http2.createSecureServer()`.
 */
export type KtlsHttp2RequestListener = {
  /** Called once per request, with the request and the response to write. */
  listener(req: http2.Http2ServerRequest | http.IncomingMessage, res: http2.Http2ServerResponse | http.ServerResponse): void;
}['listener'];

/** Events of the inner `Http2Server` relayed on their first listener here. */
const H2_EVENTS = new Set(['session', 'stream', 'sessionError', 'unknownProtocol', 'request', 'checkContinue', 'timeout']);

/**
 * A server that speaks HTTP/2 and, with `allowHTTP1`, HTTP/1.1 on connections
 * whose records the kernel seals and opens. Its events and members are
 * `Http2SecureServer`'s: `'request'` (both protocols, as with `allowHTTP1` on
 * node:http2), `'stream'`, `'session'`, `'sessionError'`, `'unknownProtocol'`,
 * `'checkContinue'`, `'timeout'`, the TLS events, `setTimeout()`,
 * `updateSettings()`, `close()`.
 *
 * HTTP/2 frames every body, so on `h2` connections response bodies (files
 * from `stream.respondWithFile()` included) pass through JavaScript on their
 * way to the kernel, which still encrypts them; only HTTP/1.1 responses can
 * use `sendfile(2)`.
 *
 * `close()` stops accepting connections and closes idle HTTP/1.1 ones, as on
 * node:http2; open HTTP/2 sessions stay until their clients close them or the
 * application calls `session.close()` (GOAWAY). Its callback runs once every
 * connection has closed.
 */
export class KtlsHttp2Server extends KtlsHttpsServer {
  /** The `Http2Server` that runs the HTTP/2 sessions (fed with `'connection'` events; it never listens). */
  readonly h2: http2.Http2Server;
  readonly #allowHTTP1: boolean;
  #h2Events = new Set(H2_EVENTS);

  /** See {@link createSecureHttp2Server}. */
  constructor(options: KtlsHttp2ServerOptions = {}, onRequest?: KtlsHttp2RequestListener) {
    super(http1Options(options));
    this.#allowHTTP1 = options.allowHTTP1 === true;
    this.h2 = http2.createServer({ ...options, allowHTTP1: false } as http2.ServerOptions);
    this.h2.on('session', (session: http2.ServerHttp2Session) => {
      if (this.#routing) bindSession(session, this.#routing);
    });
    if (onRequest !== undefined) this.on('request', onRequest);
  }

  /** The ALPN list of `http2.createSecureServer()`: `h2`, then `http/1.1` with `allowHTTP1`. */
  protected static override tlsOptions(options: KtlsHttpsServerOptions): KtlsServerOptions {
    const opts = options as KtlsHttp2ServerOptions;
    const tlsOpts: KtlsServerOptions = { ...opts, ktls: { allowTruncation: true, ...opts.ktls } };
    if (opts.ALPNCallback === undefined) tlsOpts.ALPNProtocols = opts.allowHTTP1 === true ? ['h2', 'http/1.1'] : ['h2'];
    return tlsOpts;
  }

  protected override forward(ev: string): void {
    if (this.#h2Events.delete(ev)) this.h2.on(ev, (...args: unknown[]) => this.emit(ev, ...args));
    super.forward(ev);
  }

  /** The socket whose session the inner server is creating. */
  #routing: KtlsSocket | null = null;

  /**
   * As node:http2's own connection listener: HTTP/1.1 (or no ALPN) goes to the
   * HTTP/1.1 server when `allowHTTP1`; everything else to the `Http2Server`,
   * which makes a session or, without `allowHTTP1`, answers `'unknownProtocol'`.
   */
  protected override route(socket: KtlsSocket): void {
    const alpn = socket.alpnProtocol;
    if (this.#allowHTTP1 && (alpn === false || alpn === 'http/1.1')) return super.route(socket);
    this.#routing = socket;
    try {
      this.h2.emit('connection', socket);
    } finally {
      this.#routing = null;
    }
  }

  /** As `Http2SecureServer#setTimeout`: the idle timeout of sessions (and HTTP/1.1 connections), with an optional `'timeout'` listener. */
  override setTimeout(msecs?: number, callback?: (socket: net.Socket) => void): this;
  override setTimeout(callback: (socket: net.Socket) => void): this;
  override setTimeout(msecs?: number | ((socket: net.Socket) => void), callback?: (socket: net.Socket) => void): this {
    if (typeof msecs === 'function') return this.setTimeout(undefined, msecs);
    this.timeout = msecs ?? 0;
    if (callback !== undefined) this.on('timeout', callback);
    return this;
  }

  /** The idle timeout of sessions and HTTP/1.1 connections (ms, 0: none; node:http2's default 0). */
  override get timeout(): number {
    return (this.h2 as unknown as net.Server & { timeout: number }).timeout;
  }
  /** Sets the idle timeout of new sessions and HTTP/1.1 connections. */
  override set timeout(ms: number) {
    (this.h2 as unknown as { timeout: number }).timeout = ms;
    this.http.timeout = ms;
  }

  /** As `Http2SecureServer#updateSettings`: the settings new sessions send. */
  updateSettings(settings: http2.Settings): void {
    this.h2.updateSettings(settings);
  }
}

/**
 * Creates an HTTP/2 server on kTLS, the counterpart of `http2.createSecureServer()`:
 * ALPN `h2` connections get HTTP/2 sessions, and with `allowHTTP1: true`
 * HTTP/1.1 clients are served by the same `'request'` listener.
 *
 * ```ts
 * const server = ktls.createSecureHttp2Server({ key, cert, allowHTTP1: true }, (req, res) => {
 *   res.setHeader('content-type', 'application/json');
 *   res.end(JSON.stringify({ protocol: req.httpVersion }));
 * }).listen(8443);
 * server.on('stream', (stream, headers) => { ... }); // the core HTTP/2 API works too
 * ```
 */
export function createSecureHttp2Server(options: KtlsHttp2ServerOptions = {}, onRequest?: KtlsHttp2RequestListener): KtlsHttp2Server {
  return new KtlsHttp2Server(options, onRequest);
}
