/**
 * HTTPS over kTLS: {@link createHttpsServer} feeds the {@link KtlsSocket}s of a
 * {@link KtlsServer} to Node's own `http.Server` (so express and fastify work on
 * top), and {@link sendFile} serves a file as an HTTP response whose body goes
 * out with `KtlsSocket#sendFile` — `sendfile(2)` on a kTLS socket: the file's
 * pages are encrypted by the kernel and never copied into JavaScript.
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type * as net from 'node:net';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createServer, type KtlsServer, type KtlsServerOptions } from './connect.js';
import { KtlsError, invalidArgType, invalidArgValue } from './errors.js';
import { KtlsSocket } from './socket.js';

// ---------------------------------------------------------------------------
// createHttpsServer
// ---------------------------------------------------------------------------

/**
 * Options of {@link createHttpsServer}: those of `ktls.createServer()` (the TLS
 * options of `tls.createServer()` plus `ktls`) and those of `http.createServer()`,
 * in one object as for `https.createServer()`.
 *
 * Defaults that differ from `ktls.createServer()`: `ALPNProtocols: ['http/1.1']`,
 * `ktls.allowHalfOpen: true` (http.Server decides when to end, as it does over
 * `net`), and `ktls.allowTruncation: true` (HTTP/1.1 messages carry their own
 * length, and many clients close without close_notify, as `node:https` accepts).
 */
export interface KtlsHttpsServerOptions extends KtlsServerOptions, http.ServerOptions {}

/** `http.Server` events, forwarded to a {@link KtlsHttpsServer} only once it has a listener (their presence changes http's behaviour). */
const HTTP_EVENTS = new Set(['request', 'checkContinue', 'checkExpectation', 'clientError', 'connect', 'upgrade', 'dropRequest', 'timeout']);
/** {@link KtlsServer} events forwarded the same way. */
const TLS_EVENTS = new Set(['tlsClientError', 'secureConnection', 'newSession', 'resumeSession', 'OCSPRequest', 'keylog']);

/**
 * An HTTPS server whose connections run on kTLS: a {@link KtlsServer} does the
 * handshakes and hands each {@link KtlsSocket} to an `http.Server` that never
 * listens itself. `'request'` handlers get ordinary `IncomingMessage` /
 * `ServerResponse` objects with `res.socket` a KtlsSocket, so {@link sendFile}
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
    this.tls = createServer({
      ...options,
      ALPNProtocols: options.ALPNProtocols ?? ['http/1.1'],
      ktls: { allowHalfOpen: true, allowTruncation: true, ...options.ktls },
    });
    this.http = http.createServer(options, requestListener);
    this.tls.on('secureConnection', (socket: KtlsSocket) => this.#onConnection(socket));
    this.tls.on('listening', () => {
      // http.Server starts its connection tracking (headersTimeout/requestTimeout,
      // closeIdleConnections) on its own 'listening'; it never listens, so say it.
      this.http.emit('listening');
      this.emit('listening');
    });
    this.tls.on('error', (err: Error) => this.emit('error', err));
    this.tls.on('close', () => this.emit('close'));
    const httpEvents = new Set(HTTP_EVENTS);
    const tlsEvents = new Set(TLS_EVENTS);
    this.on('newListener', (ev: string | symbol) => {
      if (typeof ev !== 'string') return;
      if (httpEvents.delete(ev)) this.http.on(ev, (...args: unknown[]) => this.emit(ev, ...args));
      else if (tlsEvents.delete(ev)) this.tls.on(ev, (...args: unknown[]) => this.emit(ev, ...args));
    });
  }

  #onConnection(socket: KtlsSocket): void {
    try {
      socket.setNoDelay(this.#noDelay);
      if (this.#keepAlive) socket.setKeepAlive(this.#keepAlive.enable, this.#keepAlive.delay);
    } catch {
      // The connection is already gone (setsockopt on a closed fd); http sees 'close'.
    }
    this.http.emit('connection', socket);
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
   * once idle or at their keep-alive timeout). `callback` runs when the
   * listening socket is closed (with `ERR_SERVER_NOT_RUNNING` if it was not listening).
   */
  close(callback?: (err?: Error) => void): this {
    this.tls.close(callback);
    this.http.close();
    return this;
  }

  /** Destroys every connection, busy or idle (`http.Server#closeAllConnections`). */
  closeAllConnections(): void {
    this.http.closeAllConnections();
  }

  /** Destroys connections that have no request in flight (`http.Server#closeIdleConnections`). */
  closeIdleConnections(): void {
    this.http.closeIdleConnections();
  }

  /** Sets the socket inactivity timeout of new connections, as `http.Server#setTimeout`. */
  setTimeout(msecs?: number, callback?: () => void): this {
    this.http.setTimeout(msecs, callback);
    return this;
  }

  /** `http.Server#keepAliveTimeout`: how long an idle keep-alive connection stays open (ms). */
  get keepAliveTimeout(): number {
    return this.http.keepAliveTimeout;
  }
  set keepAliveTimeout(ms: number) {
    this.http.keepAliveTimeout = ms;
  }

  /** `http.Server#headersTimeout` (ms). */
  get headersTimeout(): number {
    return this.http.headersTimeout;
  }
  set headersTimeout(ms: number) {
    this.http.headersTimeout = ms;
  }

  /** `http.Server#requestTimeout` (ms). */
  get requestTimeout(): number {
    return this.http.requestTimeout;
  }
  set requestTimeout(ms: number) {
    this.http.requestTimeout = ms;
  }

  /** `http.Server#timeout`: socket inactivity timeout while a request is in flight (ms, 0: none). */
  get timeout(): number {
    return this.http.timeout;
  }
  set timeout(ms: number) {
    this.http.timeout = ms;
  }

  /** `http.Server#maxRequestsPerSocket` (0: no limit). */
  get maxRequestsPerSocket(): number | null {
    return this.http.maxRequestsPerSocket;
  }
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
 *   ktls.sendFile(res, file, { root: '/srv/www' }).catch(() => res.destroy());
 * }).listen(8443);
 * ```
 */
export function createHttpsServer(options: KtlsHttpsServerOptions = {}, requestListener?: http.RequestListener): KtlsHttpsServer {
  return new KtlsHttpsServer(options, requestListener);
}

// ---------------------------------------------------------------------------
// sendFile
// ---------------------------------------------------------------------------

/** Options of {@link sendFile}. */
export interface HttpSendFileOptions {
  /** Extra response headers (e.g. `Cache-Control`); they win over the defaults except the length and range headers. */
  headers?: http.OutgoingHttpHeaders;
  /**
   * Serve `file` as a path under this directory (e.g. a decoded URL pathname).
   * A path with a `..` segment or a NUL byte is answered `403` / `400`.
   * Without `root`, `file` is a file system path used as it is.
   */
  root?: string;
  /**
   * How the body is sent. `'auto'` (default): `KtlsSocket#sendFile` when
   * `res.socket` is a KtlsSocket whose records the kernel seals (zero-copy),
   * otherwise `fs.createReadStream().pipe(res)`. `'sendfile'`: `KtlsSocket#sendFile`
   * whenever `res.socket` is a KtlsSocket that has it, kernel or userspace records.
   * `'stream'`: always the read stream. Either way the response is the same;
   * a response whose `write`/`end` were replaced (e.g. by compression middleware)
   * always gets the stream.
   */
  via?: 'auto' | 'sendfile' | 'stream';
}

/** What {@link sendFile} did. */
export interface HttpSendFileResult {
  /** The status sent: 200, 206, 400, 403, 404 or 416. */
  statusCode: number;
  /** File bytes sent as the body: 0 for HEAD, an empty file or an error status (whose short text body is not counted). */
  bytes: number;
  /** How the body went out: `'sendfile'` (KtlsSocket#sendFile), `'stream'` (read stream), or `'none'` (no file body). */
  method: 'sendfile' | 'stream' | 'none';
  /** The file that was served (absolute when `root` was given). */
  path: string;
}

/** Content types by extension, for a handful of common files; anything else is `application/octet-stream`. */
export const CONTENT_TYPES: Readonly<Record<string, string>> = Object.freeze({
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.csv': 'text/csv; charset=utf-8',
  '.xml': 'application/xml',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.pdf': 'application/pdf',
  '.zip': 'application/zip',
  '.gz': 'application/gzip',
  '.tar': 'application/x-tar',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.mp3': 'audio/mpeg',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
});

/** The content type {@link sendFile} sends for a file name. */
export function contentTypeOf(file: string): string {
  return CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** A parsed `Range` header: one satisfiable range, `'unsatisfiable'`, or null (absent, malformed or multiple: serve it all). */
export type ParsedRange = { start: number; end: number } | 'unsatisfiable' | null;

/**
 * Parses a `Range: bytes=…` header against a representation of `size` bytes
 * (RFC 9110 §14.1.2). Only a single range is served: several ranges, another
 * unit or bad syntax give null (the whole file, as the RFC allows).
 */
export function parseRange(header: string | undefined, size: number): ParsedRange {
  if (header === undefined) return null;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return null;
  const [, first = '', last = ''] = m;
  if (first === '') {
    if (last === '') return null;
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (last !== '' && Number(last) < start) return null; // invalid range-spec: ignore the header
  if (!(start < size)) return 'unsatisfiable';
  return { start, end: last === '' ? size - 1 : Math.min(Number(last), size - 1) };
}

/** Answers with a short text body (or none for HEAD). */
function respondStatus(res: http.ServerResponse, statusCode: number, headers: http.OutgoingHttpHeaders = {}): void {
  const body = `${http.STATUS_CODES[statusCode] ?? 'Error'}\n`;
  res.writeHead(statusCode, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(res.req?.method === 'HEAD' ? undefined : body);
}

/** Resolves `file` under `root`: the absolute path, or the status to answer with. */
function resolveUnder(root: string, file: string): string | number {
  if (file.includes('\0')) return 400;
  const parts = file.split(/[\\/]+/);
  if (parts.includes('..')) return 403;
  return path.join(path.resolve(root), ...parts.filter((p) => p !== '' && p !== '.'));
}

/** True when `res.write`/`res.end` are Node's own (nobody transforms the body). */
function untouched(res: http.ServerResponse): boolean {
  return res.write === http.OutgoingMessage.prototype.write && res.end === http.OutgoingMessage.prototype.end;
}

/**
 * Serves a file as the response to `res`: status and headers (`Content-Length`,
 * `Content-Type` from the extension, `Last-Modified`, `Accept-Ranges: bytes`),
 * then the body. On a KtlsSocket whose records the kernel seals, the body goes
 * out with `KtlsSocket#sendFile` (`sendfile(2)`: no copy through JavaScript,
 * no userspace crypto); elsewhere through `fs.createReadStream()`. Keep-alive
 * is unaffected: the response ends exactly after `Content-Length` bytes.
 *
 * - `HEAD`: headers only.
 * - `Range: bytes=a-b` (one range): `206` with `Content-Range`; a range that
 *   starts past the end: `416` with `Content-Range: bytes *\/size`. Several
 *   ranges: the whole file (`200`). `If-Range` with a date other than the
 *   file's `Last-Modified`: the whole file.
 * - A missing file or a directory: `404`; no permission: `403`.
 * - The status is sendFile's (a `res.statusCode` set before is replaced);
 *   headers set with `res.setHeader()` before are kept.
 *
 * Resolves once the body has been handed to the kernel and the response has
 * finished. Rejects without touching the response on unexpected I/O errors
 * before the headers (answer 500 yourself), with `ERR_HTTP_HEADERS_SENT` if
 * headers were already sent, and — after destroying the connection, since the
 * promised length cannot be kept — when the body cannot be sent in full (the
 * peer went away: the socket's error; the file shrank: `ERR_KTLS_HTTP_SHORT_FILE`).
 */
export async function sendFile(res: http.ServerResponse, file: string, options: HttpSendFileOptions = {}): Promise<HttpSendFileResult> {
  if (!(res instanceof http.ServerResponse)) throw invalidArgType('Expected res to be an http.ServerResponse');
  if (typeof file !== 'string') throw invalidArgType(`Expected file to be a string but received ${typeof file}`);
  const via = options.via ?? 'auto';
  if (via !== 'auto' && via !== 'sendfile' && via !== 'stream') throw invalidArgValue(`Expected options.via to be 'auto', 'sendfile' or 'stream' but received ${String(via)}`);
  if (res.headersSent) throw new KtlsError('ERR_HTTP_HEADERS_SENT', 'cannot send a file: the response headers were already sent');

  let full = file;
  if (options.root !== undefined) {
    const r = resolveUnder(options.root, file);
    if (typeof r === 'number') {
      respondStatus(res, r);
      return { statusCode: r, bytes: 0, method: 'none', path: file };
    }
    full = r;
  }
  const none = (statusCode: number): HttpSendFileResult => ({ statusCode, bytes: 0, method: 'none', path: full });

  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(full, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENAMETOOLONG' || code === 'ELOOP') {
      respondStatus(res, 404);
      return none(404);
    }
    if (code === 'EACCES' || code === 'EPERM') {
      respondStatus(res, 403);
      return none(403);
    }
    throw err;
  }
  let owned = true; // closed here unless a read stream took it
  try {
    const st = await handle.stat();
    if (!st.isFile()) {
      respondStatus(res, 404);
      return none(404);
    }
    const size = st.size;
    const lastModified = st.mtime.toUTCString();
    const req = res.req as http.IncomingMessage | undefined;
    const ifRange = req?.headers['if-range'];
    const rangeHeader = ifRange === undefined || ifRange === lastModified ? req?.headers.range : undefined;
    const range = parseRange(rangeHeader, size);
    if (range === 'unsatisfiable') {
      respondStatus(res, 416, { 'Content-Range': `bytes */${size}` });
      return none(416);
    }
    const start = range ? range.start : 0;
    const length = range ? range.end - range.start + 1 : size;
    const statusCode = range ? 206 : 200;
    const headers: http.OutgoingHttpHeaders = {};
    if (!res.hasHeader('content-type')) headers['Content-Type'] = contentTypeOf(full);
    headers['Last-Modified'] = lastModified;
    Object.assign(headers, options.headers);
    headers['Accept-Ranges'] = 'bytes';
    headers['Content-Length'] = length;
    if (range) headers['Content-Range'] = `bytes ${range.start}-${range.end}/${size}`;
    res.writeHead(statusCode, headers);
    const result = (bytes: number, method: HttpSendFileResult['method']): HttpSendFileResult => ({ statusCode, bytes, method, path: full });

    if (req?.method === 'HEAD' || length === 0) {
      await endResponse(res);
      return result(0, 'none');
    }

    const socket = res.socket;
    const kernelPath = via !== 'stream' && socket instanceof KtlsSocket && (via === 'sendfile' || socket.kernelDirections.tx) && untouched(res) && !res.chunkedEncoding;
    if (kernelPath) {
      // flushHeaders() puts the head into the socket's write queue and sendFile
      // queues the body behind it (corked: they leave together, TCP_CORK under
      // kernel TX). Once sendFile resolves the queue is empty, so end() below
      // writes nothing: no byte follows the Content-Length bytes.
      let sent: number;
      try {
        socket.cork();
        let pending: Promise<number>;
        try {
          res.flushHeaders();
          pending = socket.sendFile(handle, { offset: start, length });
        } finally {
          socket.uncork();
        }
        sent = await pending;
      } catch (err) {
        socket.destroy();
        throw err;
      }
      if (sent !== length) {
        const err = new KtlsError('ERR_KTLS_HTTP_SHORT_FILE', `the file ended after ${sent} of the ${length} bytes promised in Content-Length`);
        socket.destroy(err);
        throw err;
      }
      await endResponse(res);
      return result(sent, 'sendfile');
    }

    owned = false;
    const stream = fs.createReadStream('', { fd: handle, start, end: start + length - 1, autoClose: true });
    try {
      await pipeline(stream, res);
    } catch (err) {
      res.socket?.destroy();
      throw err;
    }
    if (stream.bytesRead !== length) {
      const err = new KtlsError('ERR_KTLS_HTTP_SHORT_FILE', `the file ended after ${stream.bytesRead} of the ${length} bytes promised in Content-Length`);
      res.socket?.destroy(err);
      throw err;
    }
    return result(length, 'stream');
  } finally {
    if (owned) await handle.close().catch(() => undefined);
  }
}

/** `res.end()` and wait for `'finish'` (or `'close'`, if the connection went away first). */
function endResponse(res: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('finish', done).off('close', done);
      resolve();
    };
    res.once('finish', done).once('close', done);
    res.end();
  });
}
