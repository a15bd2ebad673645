/**
 * What `upgrade()` and `ktls.adopt()` require of a socket before they touch it:
 * a connected TCP `net.Socket` whose bytes nobody has decoded.
 * @packageDocumentation
 */
import * as net from 'node:net';
import * as os from 'node:os';
import * as tls from 'node:tls';
import type { Binding } from '../native/binding.js';
import { KtlsError, KtlsSystemError, invalidArgType } from '../native/errors.js';
import { uvHandle } from '../native/net-handle.js';

const E = os.constants.errno;

/** Checks that `socket` is a connected, readable-as-bytes `net.Socket` with an fd (shared with `ktls.adopt()`). @internal */
export function validateSocket(socket: unknown): { socket: net.Socket; handle: NonNullable<ReturnType<typeof uvHandle>> } {
  if (!(socket instanceof net.Socket)) throw invalidArgType(`Expected a net.Socket for socket but received ${socket === null ? 'null' : typeof socket}`);
  if (socket instanceof tls.TLSSocket) {
    throw new KtlsError(
      'ERR_KTLS_TLS_SOCKET',
      'a tls.TLSSocket cannot be upgraded: OpenSSL may hold records it read from the socket; pass the underlying net.Socket with secrets, or use ktls.connect()/createServer()',
    );
  }
  if (socket.destroyed) throw new KtlsError('ERR_SOCKET_CLOSED', 'the socket is destroyed');
  if (socket.readableEncoding !== null) {
    // Decoded text cannot be turned back into the exact record bytes it came from.
    throw new KtlsError('ERR_KTLS_ENCODING', `the socket has setEncoding('${socket.readableEncoding}'); TLS records are binary`);
  }
  if (socket.connecting) throw new KtlsSystemError(-E.ENOTCONN, 'getpeername', 'the socket is still connecting');
  const handle = uvHandle(socket);
  if (!handle || handle.fd < 0) throw new KtlsError('ERR_KTLS_NOT_TCP', 'the socket has no file descriptor (not a TCP socket, or already upgraded)');
  return { socket, handle };
}

/** Whether `fd` is a TCP socket (what kTLS can carry); false for a Unix-domain socket, a pipe, or no fd. @internal */
export function isTcpFd(b: Binding, fd: number): boolean {
  if (fd < 0) return false;
  const k = b.constants;
  return b.getsockoptInt(fd, k.SOL_SOCKET, k.SO_TYPE) === k.SOCK_STREAM && b.getsockoptInt(fd, k.SOL_SOCKET, k.SO_PROTOCOL) === k.IPPROTO_TCP;
}

/** Checks that `fd` is a TCP socket, and (`connected`) that its peer is still there. @internal */
export function checkTcp(b: Binding, fd: number, connected = true): void {
  const k = b.constants;
  const type = b.getsockoptInt(fd, k.SOL_SOCKET, k.SO_TYPE);
  if (type < 0) throw new KtlsSystemError(type, 'getsockopt(SO_TYPE)');
  const proto = b.getsockoptInt(fd, k.SOL_SOCKET, k.SO_PROTOCOL);
  if (proto < 0) throw new KtlsSystemError(proto, 'getsockopt(SO_PROTOCOL)');
  if (type !== k.SOCK_STREAM || proto !== k.IPPROTO_TCP) throw new KtlsError('ERR_KTLS_NOT_TCP', 'kernel TLS needs a TCP socket');
  const peer = connected ? b.peerConnected(fd) : 0;
  if (peer < 0) throw new KtlsSystemError(peer, 'getpeername', 'the socket is not connected');
}
