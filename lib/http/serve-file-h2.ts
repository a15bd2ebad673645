/**
 * The body of a {@link serveFile} answer on an HTTP/2 stream: the compat
 * response's `stream.respondWithFD()`, so Node's http2 reads the file and
 * frames it (HTTP/2 frames every body: no `sendfile(2)` here).
 * @packageDocumentation
 */
import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as http2 from 'node:http2';
import { KtlsError } from '../native/errors.js';

/** True for a response of Node's http2 compatibility API. */
export function isHttp2Response(res: unknown): res is http2.Http2ServerResponse {
  return res instanceof http2.Http2ServerResponse;
}

/** The file's size now, or -1 if it cannot be read. */
function sizeOf(fd: number): Promise<number> {
  return new Promise((resolve) => fs.fstat(fd, (err, st) => resolve(err ? -1 : st.size)));
}

/**
 * Sends status, headers (those set with `res.setHeader()` first) and `length`
 * bytes of `fd` from `offset` on the response's stream. Resolves with the bytes
 * promised once the stream has closed cleanly; rejects with the stream's error,
 * `ERR_HTTP2_STREAM_CANCEL` if the client reset it, or
 * `ERR_KTLS_HTTP_SHORT_FILE` if the file no longer holds the range (the
 * client then sees a stream shorter than its `content-length`). Only the
 * stream is affected: other streams of the connection go on.
 */
export function respondWithFd(
  res: http2.Http2ServerResponse,
  fd: number,
  statusCode: number,
  headers: http.OutgoingHttpHeaders,
  offset: number,
  length: number,
): Promise<number> {
  const stream = res.stream;
  return new Promise((resolve, reject) => {
    let failed: Error | undefined;
    stream.on('error', (err: Error) => (failed ??= err));
    stream.once('close', () => {
      void sizeOf(fd).then((size) => {
        if (failed) reject(failed);
        else if (stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR)
          reject(new KtlsError('ERR_HTTP2_STREAM_CANCEL', `the client reset the stream (code ${stream.rstCode}) before the file was sent`));
        else if (size >= 0 && size < offset + length)
          reject(
            new KtlsError('ERR_KTLS_HTTP_SHORT_FILE', `the file ended after ${Math.max(0, size - offset)} of the ${length} bytes promised in content-length`),
          );
        else resolve(length);
      });
    });
    const all = { ...res.getHeaders(), ...headers, ':status': statusCode } as http2.OutgoingHttpHeaders;
    stream.respondWithFD(fd, all, { offset, length });
  });
}
