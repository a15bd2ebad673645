/**
 * Module-level zero-copy helpers: pipes, TCP_INFO, a kTLS ↔ plain-TCP splice
 * proxy and splice-echo. They build on KtlsSocket's spliceFrom/spliceTo.
 * @packageDocumentation
 */
import * as net from 'node:net';
import { loadBinding, type Binding } from './binding.js';
import { constants } from './constants.js';
import { KtlsError, KtlsSystemError, KtlsUnavailableError, invalidArgType } from './errors.js';
import { KtlsSocket, type TcpInfo } from './socket.js';
import { handleFd, holdReads, uvHandle } from './net-handle.js';

function binding(): Binding {
  const { binding: b, error } = loadBinding();
  if (!b) throw new KtlsUnavailableError(`the ktls addon is not available: ${error?.message ?? 'unknown error'}`);
  return b;
}

/**
 * A pipe for {@link KtlsSocket.spliceFrom} / {@link KtlsSocket.spliceTo}, e.g.
 * to give a child process as its stdout. Both ends are close-on-exec and
 * blocking (the splice loops never block on them); close them with
 * `fs.closeSync`.
 */
export function pipe(): [readFd: number, writeFd: number] {
  const p = binding().pipe(0, 0);
  if (typeof p === 'number') throw new KtlsSystemError(p, 'pipe2');
  return p;
}

/** The fd under a `net.Socket` (libuv's own; not ours to close). */
export function fdOf(socket: net.Socket): number {
  const fd = handleFd(socket);
  if (fd < 0) throw new KtlsError('ERR_SOCKET_CLOSED', 'the socket has no open fd');
  return fd;
}

/** `TCP_INFO` of a connected TCP socket: a KtlsSocket, a `net.Socket` or an fd. */
export function tcpInfo(socket: KtlsSocket | net.Socket | number): TcpInfo {
  if (socket instanceof KtlsSocket) return socket.getTcpInfo();
  const fd = typeof socket === 'number' ? socket : socket instanceof net.Socket ? fdOf(socket) : -1;
  if (fd < 0) throw invalidArgType('Expected a KtlsSocket, a net.Socket or an fd for socket');
  const info = binding().tcpInfo(fd);
  if (typeof info === 'number') throw new KtlsSystemError(info, 'getsockopt(TCP_INFO)');
  return { ...info, synData: (info.options & constants().TCPI_OPT_SYN_DATA) !== 0 };
}

/** Bytes a {@link proxy} moved each way. */
export interface ProxyResult {
  /** Plaintext that came out of the TLS side and went to the plain socket. */
  fromTls: number;
  /** Plaintext that came from the plain socket and went into the TLS side. */
  toTls: number;
}

/**
 * Terminates TLS in the kernel and forwards plaintext between `tlsSide` and a
 * plain TCP socket with splice(2) both ways; the bytes never enter JavaScript.
 * Each direction ends the other's writable side when its input ends (EOF or
 * close_notify). The plain socket is detached from node:net's reading for the
 * duration (what it had already buffered is sent first): do not read from it,
 * resume it or add 'data' listeners until both directions are done, when it
 * reads through node:net again (paused). Resolves when both directions are done.
 */
export async function proxy(tlsSide: KtlsSocket, plain: net.Socket): Promise<ProxyResult> {
  if (!(tlsSide instanceof KtlsSocket)) throw invalidArgType('Expected a KtlsSocket for tlsSide');
  if (!(plain instanceof net.Socket)) throw invalidArgType('Expected a net.Socket for plain');
  const fd = fdOf(plain);
  plain.pause();
  // splice(2) reads the fd from here on: libuv reading it too would strand bytes in node:net's buffer.
  const held = holdReads(plain, uvHandle(plain)!);
  const resumeReads = (): void => held.release();
  // What libuv already read from the plain side goes first.
  const early = held.buffered.length;
  if (early > 0) tlsSide.write(held.buffered);
  const down = tlsSide.spliceTo(fd).then((n) => new Promise<number>((resolve) => plain.end(() => resolve(n))));
  const up = tlsSide.spliceFrom(fd).then((n) => new Promise<number>((resolve, reject) => tlsSide.once('error', reject).end(() => resolve(n + early))));
  // After a failure the other direction may still be splicing: node:net reads again only once both stopped.
  const reattached = Promise.allSettled([down, up]).then(resumeReads);
  const [fromTls, toTls] = await Promise.all([down, up]);
  await reattached;
  return { fromTls, toTls };
}

/**
 * Splice-echo: reads decrypted data from the socket into a pipe and splices it
 * straight back into the same socket, until the peer's close_notify or EOF;
 * then ends the socket. Resolves with the bytes echoed.
 */
export async function spliceEcho(socket: KtlsSocket): Promise<number> {
  if (!(socket instanceof KtlsSocket)) throw invalidArgType('Expected a KtlsSocket for socket');
  const b = binding();
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
