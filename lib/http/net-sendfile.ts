/**
 * sendfile(2) into a plain `net.Socket` (HTTP without TLS): node:net has no
 * sendfile at all. The body goes out on a duplicate of the socket's fd, with
 * our own poll for writability, once node:net has handed everything before it
 * (the response head) to the kernel; node:net writes nothing meanwhile, because
 * http.ServerResponse holds the next response until this one finishes.
 * @packageDocumentation
 */
import type * as net from 'node:net';
import * as os from 'node:os';
import { POLL_WRITABLE, requireBinding } from '../native/binding.js';
import { KtlsError, KtlsSystemError } from '../native/errors.js';
import { handleFd, unsentBytes } from '../native/net-handle.js';
import { FdWatcher } from '../socket/fd-watcher.js';
import { STEP } from '../socket/ops/op.js';

const E = os.constants.errno;

/** Whether `socket` is a plain `net.Socket` over an fd this module can send into (not TLS, still open). */
export function plainTcp(socket: net.Socket): boolean {
  return !('encrypted' in socket) && !socket.destroyed && handleFd(socket) >= 0;
}

/** Resolves once everything written to `socket` before has reached the kernel (at once when libuv already wrote it). */
function flushed(socket: net.Socket): Promise<void> {
  if (unsentBytes(socket) === 0) return Promise.resolve();
  return new Promise((resolve, reject) => socket.write(Buffer.alloc(0), (err) => (err ? reject(err) : resolve())));
}

/**
 * Sends `length` bytes of `fileFd` from `offset` into `socket` with sendfile(2).
 * Resolves with the bytes sent (fewer only if the file ended first); rejects
 * with the kernel's errno (`sendfile`) if the connection fails.
 */
export async function sendFileToNetSocket(socket: net.Socket, fileFd: number, offset: number, length: number): Promise<number> {
  const b = requireBinding();
  await flushed(socket);
  const fd = handleFd(socket);
  if (fd < 0 || socket.destroyed) throw new KtlsError('ERR_SOCKET_CLOSED', 'the connection closed before the body could be sent');
  const dup = b.adopt(fd, 0); // the same connection under our own fd: node:net keeps its own
  if (dup < 0) throw new KtlsSystemError(dup, 'fcntl(F_DUPFD_CLOEXEC)');
  const watcher = new FdWatcher(b, dup);
  let sent = 0;
  try {
    while (sent < length) {
      const n = b.sendfile(dup, fileFd, offset + sent, Math.min(length - sent, STEP));
      if (n === -E.EAGAIN || n === -E.EINTR) {
        // A socket node:net destroys while the peer reads nothing would otherwise keep this wait (and the dup) forever.
        await new Promise<void>((resolve) => {
          const done = (): void => (socket.off('close', done), resolve());
          socket.once('close', done);
          watcher.whenReady(POLL_WRITABLE, done);
        });
        if (socket.destroyed) throw new KtlsError('ERR_SOCKET_CLOSED', 'the connection closed while the body was being sent');
        continue;
      }
      if (n < 0) throw new KtlsSystemError(n, 'sendfile');
      if (n === 0) break; // the file ended early; the caller reports it
      sent += n;
      // node:net sees none of these bytes: tell its idle timer (server.timeout) that they moved.
      if (socket.timeout) socket.setTimeout(socket.timeout);
    }
    return sent;
  } finally {
    watcher.close();
    b.closeFd(dup);
  }
}
