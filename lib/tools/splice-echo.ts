/**
 * {@link spliceEcho}: a kTLS socket's decrypted input spliced straight back into it.
 * @packageDocumentation
 */
import { requireBinding } from '../native/binding.js';
import { KtlsError, KtlsSystemError, invalidArgType } from '../native/errors.js';
import { KtlsSocket } from '../socket/socket.js';

/**
 * Splice-echo: reads decrypted data from the socket into a pipe and splices it
 * straight back into the same socket, until the peer's close_notify or EOF;
 * then ends the socket. Resolves with the bytes echoed.
 */
export async function spliceEcho(socket: KtlsSocket): Promise<number> {
  if (!(socket instanceof KtlsSocket)) throw invalidArgType('Expected a KtlsSocket for socket');
  const b = requireBinding();
  const p = b.pipe(1, 0);
  if (typeof p === 'number') throw new KtlsSystemError(p, 'pipe2');
  const [r, w] = p;
  let wOpen = true;
  try {
    const sending = socket.spliceFrom(r);
    sending.catch(() => undefined); // observed below; a failed spliceTo must not leave it unhandled
    const received = await socket.spliceTo(w);
    b.closeFd(w); // EOF for spliceFrom once the pipe drains
    wOpen = false;
    const sent = await sending;
    if (sent !== received) throw new KtlsError('ERR_KTLS_ECHO', `echoed ${sent} of ${received} bytes`);
    await new Promise<void>((resolve) => socket.end(resolve));
    return sent;
  } finally {
    b.closeFd(r);
    if (wOpen) b.closeFd(w);
  }
}
