/**
 * The libuv handles under node:net and node:tls objects (not public API,
 * checked at run time): the fd of a socket or server, and stopping node:net
 * from reading a socket whose fd we read ourselves. The one place that reaches
 * into `_handle`.
 * @packageDocumentation
 */
import type * as net from 'node:net';
import type * as tls from 'node:tls';

/** The libuv TCP handle inside a `net.Socket`. */
interface UvStreamHandle {
  fd: number;
  /** Bytes libuv holds in write requests not yet written to the kernel. */
  writeQueueSize?: number;
  reading: boolean;
  readStop(): number;
  readStart(): number;
}

/** The libuv stream handle of a socket, or null when it has none (closed, or not a libuv stream). */
export function uvHandle(socket: net.Socket): UvStreamHandle | null {
  const h = (socket as unknown as { _handle?: Partial<UvStreamHandle> | null })._handle;
  if (!h || typeof h.fd !== 'number' || typeof h.readStop !== 'function') return null;
  return h as UvStreamHandle;
}

/** The fd under a `net.Socket` or `net.Server` (libuv's own: not ours to close), or -1. */
export function handleFd(o: net.Socket | net.Server): number {
  const fd = (o as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}

/** Bytes written to `socket` that have not reached the kernel yet: node:net's buffer and libuv's write queue. */
export function unsentBytes(socket: net.Socket): number {
  return socket.writableLength + (uvHandle(socket)?.writeQueueSize ?? 0);
}

/** The stream a node:tls socket runs over when it is not a net.Socket (node:tls wraps it in a JSStreamSocket). */
export function tlsTransport(t: tls.TLSSocket): { socket: object | undefined; stream: unknown } {
  const wrap = (t as unknown as { _handle?: { _parentWrap?: { stream?: unknown } } | null })._handle?._parentWrap;
  return { socket: wrap, stream: wrap?.stream };
}

/** A socket whose reading node:net has handed over: what it had buffered, and how to give reading back. */
export interface HeldReads {
  /** Bytes node:net had read but nobody had consumed, now ours. */
  readonly buffered: Buffer;
  /** Gives reading back to node:net: `unshift` bytes first, then libuv reads again (unless the socket is gone). */
  release(unshift?: Buffer): void;
}

/**
 * Stops node:net reading `socket` until {@link HeldReads.release}: libuv stops
 * at the handle (pause() alone does not: it reads on up to the highWaterMark,
 * and `_read` would start it again), and what node:net had buffered is taken
 * without emitting 'data'. The socket must have no encoding set.
 */
export function holdReads(socket: net.Socket, handle: UvStreamHandle): HeldReads {
  handle.readStop();
  handle.reading = false;
  // read() would emit 'data' and call _read (which restarts libuv): neither may happen while held.
  const own = Object.prototype.hasOwnProperty.call(socket, '_read');
  // eslint-disable-next-line @typescript-eslint/unbound-method -- put back on the same socket by release()
  const saved = socket._read;
  socket._read = () => undefined;
  const listeners = socket.rawListeners('data') as Array<(...args: unknown[]) => void>;
  socket.removeAllListeners('data');
  const chunks: Buffer[] = [];
  for (let c: unknown; (c = socket.read()) !== null;) chunks.push(c as Buffer);
  for (const l of listeners) socket.on('data', l);
  let released = false;
  return {
    buffered: Buffer.concat(chunks),
    release(unshift) {
      if (released) return;
      released = true;
      if (own) socket._read = saved;
      else delete (socket as unknown as { _read?: unknown })._read;
      if (unshift && unshift.length > 0) socket.unshift(unshift);
      if (socket.destroyed || uvHandle(socket) !== handle) return;
      // What net.Socket's tryReadStart does; read(0) would not, as the no-op _read left state.reading set.
      handle.reading = true;
      handle.readStart();
    },
  };
}
