/**
 * Before the kernel's RX key goes in, the socket must stand on a record
 * boundary: what `upgrade()` already read may end inside a record, whose rest
 * is read here from the raw socket (no kernel RX yet), with a deadline.
 * @packageDocumentation
 */
import * as os from 'node:os';
import { POLL_READABLE, type Binding, type NativeHandle } from '../native/binding.js';
import { KtlsError, KtlsSystemError, handshakeTimeout } from '../native/errors.js';
import type { RecordOpener } from '../record/layer.js';

const E = os.constants.errno;

/** Waits until the fd is readable (or in error), through the handle's poll; 'timeout' at `deadline`. */
export function waitReadable(handle: NativeHandle, waiters: { wake?: (status: number) => void }, deadline: number): Promise<number | 'timeout'> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => waiters.wake?.(1), Math.max(0, deadline - Date.now()));
    waiters.wake = (status) => {
      waiters.wake = undefined;
      clearTimeout(timer);
      handle.poll(0);
      resolve(status === 1 ? 'timeout' : status);
    };
    const rc = handle.poll(POLL_READABLE);
    if (rc < 0) waiters.wake(rc);
  });
}

/**
 * Reads from the raw socket (no kernel RX yet) until the opener holds whole
 * records only, so the kernel starts on a record boundary. A peer that sends
 * half a record and stops is given until `deadline`.
 */
export async function completeRecord(
  b: Binding,
  handle: NativeHandle,
  opener: RecordOpener,
  raw: Buffer[],
  waiters: { wake?: (s: number) => void },
  deadline: number,
  openComplete: () => void,
): Promise<void> {
  for (let need = opener.needed(); need > 0; need = opener.needed()) {
    const buf = Buffer.allocUnsafe(need);
    const n = handle.recv(buf, 0, need);
    if (n === -E.EAGAIN || n === -E.EINTR) {
      // A header that cannot start a record fails now, not after waiting for a body that never comes.
      openComplete();
      const status = await waitReadable(handle, waiters, deadline);
      if (status === 'timeout') throw handshakeTimeout();
      if (status < 0) {
        // EPOLLERR: the socket's own errno, not libuv's EBADF.
        const so = b.getsockoptInt(handle.fd, b.constants.SOL_SOCKET, b.constants.SO_ERROR);
        if (so !== 0) throw new KtlsSystemError(so > 0 ? -so : so, 'read');
      }
      continue;
    }
    if (n < 0) throw new KtlsSystemError(n, 'read');
    if (n === 0) throw new KtlsError('ERR_KTLS_TRUNCATED', 'connection closed in the middle of a TLS record during upgrade');
    raw.push(buf.subarray(0, n));
    opener.push(buf.subarray(0, n));
  }
}
