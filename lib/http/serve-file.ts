/**
 * {@link serveFile}: a file as an HTTP response (content type, conditional
 * requests, single ranges) whose body goes out with `KtlsSocket#sendFile` —
 * `sendfile(2)` on a kTLS socket: the file's pages are encrypted by the kernel
 * and never copied into JavaScript.
 * @packageDocumentation
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type * as http2 from 'node:http2';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as util from 'node:util';
import { KtlsError, invalidArgType, invalidArgValue } from '../native/errors.js';
import { KtlsSocket } from '../socket/socket.js';
import { isAdopted } from './adopt.js';
import { plainTcp, sendFileToNetSocket } from './net-sendfile.js';
import { insideRoot, openFile, type OpenedFile } from './open-file.js';
import { isHttp2Response, respondWithFd } from './serve-file-h2.js';
import { contentTypeOf, ifRangeHolds, parseRange, preconditionStatus, validatorsOf } from './representation.js';

export { CONTENT_TYPES, contentTypeOf, parseRange, type ParsedRange } from './representation.js';

/** Options of {@link serveFile}. */
export interface ServeFileOptions {
  /**
   * Extra response headers (e.g. `Cache-Control`); they win over the defaults
   * except the length and range headers. Names match case-insensitively, so
   * each header goes out once.
   */
  headers?: http.OutgoingHttpHeaders;
  /**
   * Serve `file` as a path under this directory (e.g. a decoded URL pathname).
   * A path with a `..` segment or a NUL byte is answered `403` / `400`.
   * Without `root`, `file` is a file system path used as it is.
   */
  root?: string;
  /**
   * With `root`: what to do when the file opened is not under `root` (a
   * symbolic link, or a directory on the way, leads out of it). `'refuse'`
   * (default): `403`, because anyone who can create a link under the root
   * could otherwise publish any file the server can read. `'follow'`: serve
   * it (links managed by the operator, e.g. a release directory). Links that
   * stay under `root` are always followed.
   */
  symlinks?: 'refuse' | 'follow';
  /**
   * How the body is sent. `'auto'` (default): `KtlsSocket#sendFile` when
   * `res.socket` is a KtlsSocket whose records the kernel seals (zero-copy),
   * otherwise `fs.createReadStream().pipe(res)`. `'sendfile'`: `KtlsSocket#sendFile`
   * whenever `res.socket` is a KtlsSocket that has it, kernel or userspace records.
   * A socket from `ktls.adopt()` (plain TCP) counts as zero-copy: `'auto'` uses sendfile(2) on it.
   * `'stream'`: always the read stream. Either way the response is the same;
   * a response whose `write`/`end` were replaced (e.g. by compression middleware)
   * always gets the stream. On an HTTP/2 response `via` does not apply: the
   * body goes with `stream.respondWithFD()` (see {@link serveFile}).
   */
  via?: 'auto' | 'sendfile' | 'stream';
}

/** What {@link serveFile} did. */
export interface ServeFileResult {
  /** The status sent: 200, 206, 304, 400, 403, 404, 412 or 416. */
  statusCode: number;
  /** File bytes sent as the body: 0 for HEAD, an empty file or an error status (whose short text body is not counted). */
  bytes: number;
  /**
   * How the body went out: `'sendfile'` (KtlsSocket#sendFile), `'stream'` (read
   * stream), `'respondWithFD'` (an HTTP/2 response: http2 frames the file), or
   * `'none'` (no file body).
   */
  method: 'sendfile' | 'stream' | 'respondWithFD' | 'none';
  /** The file that was served (absolute when `root` was given). */
  path: string;
}

/**
 * The response's headers, one per name whatever its case: the defaults
 * (`Content-Type` unless set with `res.setHeader()`, `ETag`, `Last-Modified`),
 * then the caller's, which win. Names are lower case, as Node stores them.
 */
function mergeHeaders(
  res: http.ServerResponse,
  full: string,
  v: ReturnType<typeof validatorsOf>,
  extra: http.OutgoingHttpHeaders = {},
): http.OutgoingHttpHeaders {
  const headers: http.OutgoingHttpHeaders = {};
  if (!res.hasHeader('content-type')) headers['content-type'] = contentTypeOf(full);
  headers.etag = v.etag;
  headers['last-modified'] = v.lastModified;
  for (const [name, value] of Object.entries(extra)) if (value !== undefined) headers[name.toLowerCase()] = value;
  return headers;
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
 * `Content-Type` from the extension, a strong `ETag`, `Last-Modified`,
 * `Accept-Ranges: bytes`),
 * then the body. On a KtlsSocket whose records the kernel seals, the body goes
 * out with `KtlsSocket#sendFile` (`sendfile(2)`: no copy through JavaScript,
 * no userspace crypto); elsewhere through `fs.createReadStream()`. Keep-alive
 * is unaffected: the response ends exactly after `Content-Length` bytes.
 *
 * - `HEAD`: headers only.
 * - `Range: bytes=a-b` (one range): `206` with `Content-Range`; a range that
 *   starts past the end: `416` with `Content-Range: bytes *\/size`. Several
 *   ranges: the whole file (`200`). `If-Range` that is not a strong match
 *   (another or a weak `ETag`, a date other than `Last-Modified`, or one
 *   within the second the file changed): the whole file.
 * - Preconditions in RFC 9110 §13.2.2's order: `If-Match` /
 *   `If-Unmodified-Since` failing → `412`; `If-None-Match` /
 *   `If-Modified-Since` → `304` with the validators and no body.
 * - A missing file, a directory or anything but a regular file (a FIFO is
 *   opened `O_NONBLOCK` and never read): `404`; no permission, or (under
 *   `root`) a file a link leads out of the root to: `403`.
 * - The status is serveFile's (a `res.statusCode` set before is replaced);
 *   headers set with `res.setHeader()` before are kept.
 *
 * - An HTTP/2 compat response (`http2.Http2ServerResponse`, e.g. from
 *   `createSecureHttp2Server()`): the same answers, the body with the stream's
 *   `respondWithFD()`; HTTP/2 frames the file in Node, so it passes through
 *   JavaScript's process (the kernel still encrypts it). A failure resets only
 *   that stream and rejects (`ERR_HTTP2_STREAM_CANCEL` when the client reset it).
 *
 * Resolves once the body has been handed to the kernel and the response has
 * finished. Rejects without touching the response on unexpected I/O errors
 * before the headers (answer 500 yourself), with `ERR_HTTP_HEADERS_SENT` if
 * headers were already sent, and — after destroying the connection, since the
 * promised length cannot be kept — when the body cannot be sent in full (the
 * peer went away: the socket's error; the file shrank: `ERR_KTLS_HTTP_SHORT_FILE`).
 */
export async function serveFile(res: http.ServerResponse | http2.Http2ServerResponse, file: string, options: ServeFileOptions = {}): Promise<ServeFileResult> {
  if (isHttp2Response(res)) return serveFileOn(res as unknown as http.ServerResponse, file, options, res);
  if (!(res instanceof http.ServerResponse)) throw invalidArgType('Expected res to be an http.ServerResponse or http2.Http2ServerResponse');
  return serveFileOn(res, file, options, null);
}

/** {@link serveFile} on an HTTP/1 response, or on an HTTP/2 compat response (`h2`: the same object), whose members it shares. */
async function serveFileOn(res: http.ServerResponse, file: string, options: ServeFileOptions, h2: http2.Http2ServerResponse | null): Promise<ServeFileResult> {
  if (typeof file !== 'string') throw invalidArgType(`Expected file to be a string but received ${typeof file}`);
  const via = options.via ?? 'auto';
  if (via !== 'auto' && via !== 'sendfile' && via !== 'stream')
    throw invalidArgValue(`Expected options.via to be 'auto', 'sendfile' or 'stream' but received ${String(via)}`);
  const symlinks = options.symlinks ?? 'refuse';
  if (symlinks !== 'refuse' && symlinks !== 'follow')
    throw invalidArgValue(`Expected options.symlinks to be 'refuse' or 'follow' but received ${String(symlinks)}`);
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
  const none = (statusCode: number): ServeFileResult => ({ statusCode, bytes: 0, method: 'none', path: full });

  let file_: OpenedFile;
  try {
    file_ = await openFile(full);
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
    if (!file_.isFile) {
      // A directory, FIFO, socket or device: never read (O_NONBLOCK kept open() from waiting on it).
      respondStatus(res, 404);
      return none(404);
    }
    if (options.root !== undefined && symlinks === 'refuse' && !(await insideRoot(options.root, file_.fd, full))) {
      respondStatus(res, 403);
      return none(403);
    }
    const size = file_.size;
    const v = validatorsOf(size, file_.mtimeSeconds, file_.mtimeNanos);
    const req = res.req as http.IncomingMessage | undefined;
    const headers = mergeHeaders(res, full, v, options.headers);
    const pre = req ? preconditionStatus(req.headers, req.method ?? 'GET', v) : null;
    if (pre === 304) {
      res.writeHead(304, headers);
      await endResponse(res);
      return none(304);
    }
    if (pre === 412) {
      respondStatus(res, 412);
      return none(412);
    }
    const rangeHeader = ifRangeHolds(req?.headers['if-range'], v) ? req?.headers.range : undefined;
    const range = parseRange(rangeHeader, size);
    if (range === 'unsatisfiable') {
      respondStatus(res, 416, { 'Content-Range': `bytes */${size}` });
      return none(416);
    }
    const start = range ? range.start : 0;
    const length = range ? range.end - range.start + 1 : size;
    const statusCode = range ? 206 : 200;
    headers['accept-ranges'] = 'bytes';
    headers['content-length'] = length;
    if (range) headers['content-range'] = `bytes ${range.start}-${range.end}/${size}`;
    const result = (bytes: number, method: ServeFileResult['method']): ServeFileResult => ({ statusCode, bytes, method, path: full });
    if (h2 && req?.method !== 'HEAD' && length > 0) return result(await respondWithFd(h2, file_.fd, statusCode, headers, start, length), 'respondWithFD');
    res.writeHead(statusCode, headers);

    if (req?.method === 'HEAD' || length === 0) {
      await endResponse(res);
      return result(0, 'none');
    }

    const socket = res.socket;
    const clean = via !== 'stream' && untouched(res) && !res.chunkedEncoding;
    let sendBody: (() => Promise<number>) | null = null;
    if (clean && socket instanceof KtlsSocket && (via === 'sendfile' || socket.kernelDirections.tx || isAdopted(socket))) {
      // flushHeaders() puts the head into the socket's write queue and sendFile
      // queues the body behind it (corked: they leave together, TCP_CORK under
      // kernel TX). Once sendFile resolves the queue is empty, so end() below
      // writes nothing: no byte follows the Content-Length bytes.
      sendBody = () => {
        socket.cork();
        try {
          res.flushHeaders();
          return socket.sendFile(file_.fd, { offset: start, length });
        } finally {
          socket.uncork();
        }
      };
    } else if (clean && socket && !(socket instanceof KtlsSocket) && file_.native && plainTcp(socket)) {
      // Plain HTTP: the head through node:net, the body with sendfile(2) on the same connection.
      sendBody = () => {
        res.flushHeaders();
        return sendFileToNetSocket(socket, file_.fd, start, length);
      };
    }
    if (sendBody && socket) {
      let sent: number;
      try {
        sent = await sendBody();
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
    const stream = fs.createReadStream('', { fd: file_.fd, start, end: start + length - 1, autoClose: true });
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
    if (owned) file_.close();
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

/** @deprecated Renamed {@link ServeFileOptions} (it is not `KtlsSocket#sendFile`'s); the old name goes in the next minor version. */
export type HttpSendFileOptions = ServeFileOptions;
/** @deprecated Renamed {@link ServeFileResult}; the old name goes in the next minor version. */
export type HttpSendFileResult = ServeFileResult;

/**
 * @deprecated Renamed {@link serveFile}: `ktls.sendFile(res, …)` read as
 * `KtlsSocket#sendFile`, which sends a file's bytes without HTTP. This alias
 * warns once (`KTLS_DEP_SEND_FILE`) and goes in the next minor version.
 */
export const sendFile: typeof serveFile = util.deprecate(serveFile, 'ktls.sendFile(res, file) is renamed ktls.serveFile(res, file)', 'KTLS_DEP_SEND_FILE');
