/**
 * `adopt()`: a connected plain-TCP `net.Socket` becomes a {@link KtlsSocket}
 * with no TLS at all, so plain HTTP gets the same zero-copy
 * `KtlsSocket#sendFile` (sendfile(2) straight into TCP) and `spliceFrom`/
 * `spliceTo` that kTLS connections have. It takes the fd over as `upgrade()`
 * does, without keys: bytes node:net had read but not delivered come first.
 * @packageDocumentation
 */
import type * as net from 'node:net';
import { requireBinding } from '../native/binding.js';
import { KtlsError, KtlsSystemError, invalidArgType } from '../native/errors.js';
import { holdReads } from '../native/net-handle.js';
import type { RecordPaths } from '../socket/paths.js';
import { KtlsSocket } from '../socket/socket.js';
import { checkTcp, validateSocket } from '../socket/validate.js';
import { countConnection } from '../socket/counters.js';

/** Options of {@link adopt}. */
export interface AdoptOptions {
  /** As `net.Socket`'s: keep the writable side open after the peer's FIN. Default false. */
  allowHalfOpen?: boolean;
  /** The readable side's buffer size in bytes (the stream's `highWaterMark`). */
  highWaterMark?: number;
}

/** Sockets made by {@link adopt}: plain TCP, whose `sendFile` is sendfile(2) with nothing to seal. */
const adopted = new WeakSet<KtlsSocket>();

/** Whether `socket` came from {@link adopt} (plain TCP: `sendFile` is zero-copy with no record layer). @internal */
export function isAdopted(socket: KtlsSocket): boolean {
  return adopted.has(socket);
}

/**
 * Takes over a connected plain-TCP `net.Socket` as a {@link KtlsSocket} with
 * no TLS: reads and writes are the connection's bytes as they are, and
 * `sendFile()` sends a file with sendfile(2) (the page cache goes to TCP
 * without a copy into JavaScript), `spliceFrom()`/`spliceTo()` with splice(2).
 * `serveFile()` uses it for response bodies. Bytes node:net had already read
 * but not delivered are delivered first; writes node:net still held reach the
 * kernel before the socket is taken over.
 *
 * The socket is a KtlsSocket in every respect except records: `encrypted` is
 * false, `kernel` is false, `kernelDirections` is `{ tx: false, rx: false }`,
 * `version`, `cipher` and `getProtocol()` are null; `updateKeys()` and
 * `setMaxRecordSize()` reject with `ERR_KTLS_UNSUPPORTED`. `end()` sends a FIN.
 *
 * ```ts
 * const app = http.createServer((req, res) => void ktls.serveFile(res, '/srv/big.iso'));
 * net.createServer({ noDelay: true }, (sock) => void ktls.adopt(sock).then((s) => app.emit('connection', s), () => sock.destroy())).listen(8080);
 * ```
 *
 * @param socket - a connected TCP `net.Socket` (not a `tls.TLSSocket`); on
 *   success it is destroyed without closing the connection, which the returned socket owns.
 * @throws `ERR_INVALID_ARG_TYPE` (not a net.Socket), `ERR_KTLS_TLS_SOCKET`
 *   (a tls.TLSSocket), `ERR_SOCKET_CLOSED` (destroyed, e.g. adopted already),
 *   `ERR_KTLS_NOT_TCP` (a Unix or other non-TCP socket), `ERR_KTLS_ENCODING`
 *   (`setEncoding()` was called), `KtlsSystemError` `ENOTCONN` (not connected).
 *   On failure the `net.Socket` is left as it was.
 */
export async function adopt(socket: net.Socket, options: AdoptOptions = {}): Promise<KtlsSocket> {
  if (options === null || typeof options !== 'object') throw invalidArgType(`Expected options to be an object but received ${typeof options}`);
  const b = requireBinding();
  const { handle: uv } = validateSocket(socket);
  checkTcp(b, uv.fd);
  // What node:net still has queued goes out before the fd changes hands.
  if (socket.writableLength > 0) await new Promise<void>((resolve) => socket.write(Buffer.alloc(0), () => resolve()));
  if (socket.destroyed || uv.fd < 0) throw new KtlsError('ERR_SOCKET_CLOSED', 'the socket was destroyed while it was being adopted');
  const held = holdReads(socket, uv);
  const fd = b.adopt(uv.fd);
  if (fd < 0) {
    held.release();
    throw new KtlsSystemError(fd, 'fcntl(F_DUPFD_CLOEXEC)');
  }
  const holder: { value?: KtlsSocket } = {};
  const out = new Int32Array(1);
  const handle = new b.Handle(fd, KtlsSocket.pollCallback(holder), out);
  const k = b.constants;
  const paths: RecordPaths = {
    binding: b,
    handle,
    out,
    // No records: version and cipher are never used ('plain' TX sends bytes as they are,
    // no RX opener reads them as they are) and are reported as null below.
    version: 'TLSv1.2',
    cipher: 'aes-128-gcm',
    tx: 'plain',
    rx: null,
    plainTcp: true,
    early: held.buffered.length > 0 ? [{ type: k.RECORD_APPLICATION_DATA, data: held.buffered }] : [],
    remote: { address: socket.remoteAddress, port: socket.remotePort, family: socket.remoteFamily },
    local: { address: socket.localAddress, port: socket.localPort },
  };
  // The net.Socket lets go of its own fd; ours keeps the connection open.
  socket.destroy();
  const s = new KtlsSocket(paths, {
    allowHalfOpen: options.allowHalfOpen ?? false,
    // A FIN is the end of a plain stream: there is no close_notify to wait for.
    allowTruncation: true,
    ...(options.highWaterMark !== undefined ? { highWaterMark: options.highWaterMark } : {}),
  });
  holder.value = s;
  // Honest about what it is: express's req.protocol, for one, reads `encrypted`.
  Object.defineProperty(s, 'encrypted', { value: false, enumerable: true });
  Object.defineProperty(s, 'version', { value: null, enumerable: true });
  Object.defineProperty(s, 'cipher', { value: null, enumerable: true });
  adopted.add(s);
  countConnection(s, 'none');
  return s;
}
