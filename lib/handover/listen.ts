/**
 * The listening socket of a {@link KtlsServer}: `SO_REUSEPORT` (set before
 * bind(), which Node 20's `net.Server#listen` cannot do) and TCP Fast Open.
 * @packageDocumentation
 */
import cluster from 'node:cluster';
import * as dns from 'node:dns';
import * as net from 'node:net';
import { loadBinding, requireBinding } from '../native/binding.js';
import { KtlsSystemError, errnoName, errnoOf, invalidArgValue } from '../native/errors.js';
import { handleFd, uvHandle } from '../native/net-handle.js';

/** Whether this Node's `net.Server#listen` takes `reusePort` itself (v22.12, v23.1). */
export function nativeReusePort(version = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

/** What a `listen(...)` call asked for, in `net.ListenOptions` form. */
export interface ListenRequest {
  options: net.ListenOptions;
  callback?: () => void;
}

/** Reads the arguments of `net.Server#listen` (port, host, backlog, callback | options, callback). */
export function listenRequest(args: readonly unknown[]): ListenRequest {
  const last = args[args.length - 1];
  const callback = typeof last === 'function' ? (last as () => void) : undefined;
  const rest = callback ? args.slice(0, -1) : args;
  const [first, second, third] = rest;
  if (first !== null && typeof first === 'object') return { options: { ...(first as net.ListenOptions) }, callback };
  const options: net.ListenOptions = {};
  if (first !== undefined && first !== null) options.port = Number(first);
  if (typeof second === 'string') options.host = second;
  const backlog = typeof second === 'number' ? second : third;
  if (typeof backlog === 'number') options.backlog = backlog;
  return { options, callback };
}

async function addressOf(host: string | undefined): Promise<Array<{ address: string; family: number }>> {
  if (host === undefined || host === '')
    return [
      { address: '::', family: 6 },
      { address: '0.0.0.0', family: 4 },
    ];
  const family = net.isIP(host);
  if (family !== 0) return [{ address: host, family }];
  const r = await dns.promises.lookup(host);
  return [{ address: r.address, family: r.family }];
}

/**
 * A TCP socket with `SO_REUSEPORT` bound to the request's address (not yet
 * listening: libuv's listen() does that), or the error `net.Server` would emit
 * (`syscall: 'listen'`, `address`, `port`). Without a host it binds `::`, or
 * `0.0.0.0` where IPv6 is unavailable, as `net.Server` does.
 */
export async function reusePortSocket(options: net.ListenOptions): Promise<number> {
  const b = requireBinding();
  const k = b.constants;
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalidArgValue(`Expected a port between 0 and 65535 but received ${String(options.port)}`);
  const candidates = await addressOf(options.host);
  let lastErr: Error | undefined;
  for (const { address, family } of candidates) {
    const fd = b.tcpSocket(family === 6 ? k.AF_INET6 : k.AF_INET);
    if (fd < 0) {
      lastErr = new KtlsSystemError(fd, 'socket');
      continue;
    }
    let rc = b.setsockoptInt(fd, k.SOL_SOCKET, k.SO_REUSEPORT, 1);
    let syscall = 'setsockopt(SO_REUSEPORT)';
    if (rc === 0) {
      rc = b.bindFd(fd, address, port);
      syscall = 'listen';
    }
    if (rc === 0) return fd;
    b.closeFd(fd);
    throw Object.assign(new KtlsSystemError(rc, syscall, `${address}:${port}`), { address, port });
  }
  throw lastErr ?? new KtlsSystemError(-1, 'socket');
}

/**
 * Sets `TCP_FASTOPEN` on a listening server, or says with a `KTLS_FASTOPEN`
 * warning why it could not: no addon, the kernel's refusal, or a round-robin
 * cluster worker, whose listening socket is the primary's.
 */
export function enableFastOpen(server: net.Server, queue: number): void {
  const b = loadBinding().binding;
  const fd = handleFd(server);
  let why: string | undefined;
  if (!b) why = 'no addon';
  else if (fd < 0)
    why = cluster.isWorker
      ? 'a round-robin cluster worker has no listening socket of its own (the primary accepts); use cluster.SCHED_NONE or reusePort'
      : 'no listening socket';
  else {
    const rc = b.setsockoptInt(fd, b.constants.SOL_TCP, b.constants.TCP_FASTOPEN, queue);
    if (rc < 0) why = errnoName(rc);
  }
  if (why) process.emitWarning(`TCP Fast Open could not be enabled on the listening socket (${why})`, { code: 'KTLS_FASTOPEN' });
}

/**
 * Listens on `server` with `SO_REUSEPORT`, its own socket even in a cluster
 * worker (`exclusive`: sharing the primary's socket would defeat the option).
 * Node ≥ 22.12 does it itself; before, the addon makes and binds the socket
 * and `net.Server` listens on it: by fd, or in a worker (where `{ fd }` would
 * go to the primary, which cannot use this process's fd) by its libuv handle,
 * which `net.Server` always listens on exclusively.
 */
export function listenReusePort(server: net.Server, options: net.ListenOptions, onError: (err: Error) => void): void {
  if (nativeReusePort()) {
    server.listen({ ...options, reusePort: true, exclusive: options.exclusive ?? cluster.isWorker } as net.ListenOptions);
    return;
  }
  reusePortSocket(options)
    .then((fd) => {
      if (!cluster.isWorker || options.exclusive === false) {
        server.listen({ fd, backlog: options.backlog });
        return;
      }
      // A net.Socket over the fd only to get its TCP handle (it never reads nor writes).
      const handle = uvHandle(new net.Socket({ fd, readable: false, writable: false }));
      if (!handle) throw new KtlsSystemError(-errnoOf('EBADF'), 'listen', 'no libuv handle for the listening socket');
      server.listen(handle, options.backlog);
    })
    .catch(onError);
}
