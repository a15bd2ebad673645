/**
 * {@link tcpInfo}: `TCP_INFO` of any TCP connection, and the fd under a `net.Socket`.
 * @packageDocumentation
 */
import * as net from 'node:net';
import { requireBinding } from '../native/binding.js';
import { KtlsError, invalidArgType } from '../native/errors.js';
import { handleFd } from '../native/net-handle.js';
import { tcpInfoOf, type TcpInfo } from '../socket/base.js';
import { checkFd } from '../socket/options.js';
import { KtlsSocket } from '../socket/socket.js';

/** The fd under a `net.Socket` (libuv's own; not ours to close). */
export function fdOf(socket: net.Socket): number {
  const fd = handleFd(socket);
  if (fd < 0) throw new KtlsError('ERR_SOCKET_CLOSED', 'the socket has no open fd');
  return fd;
}

/** `TCP_INFO` of a connected TCP socket: a KtlsSocket, a `net.Socket` or an fd. */
export function tcpInfo(socket: KtlsSocket | net.Socket | number): TcpInfo {
  if (socket instanceof KtlsSocket) return socket.getTcpInfo();
  if (typeof socket === 'number') checkFd('socket', socket);
  const fd = typeof socket === 'number' ? socket : socket instanceof net.Socket ? fdOf(socket) : -1;
  if (fd < 0) throw invalidArgType('Expected a KtlsSocket, a net.Socket or an fd for socket');
  return tcpInfoOf(requireBinding(), fd);
}
