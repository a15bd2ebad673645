/**
 * `ktls.connect()`: `tls.connect()` through the wire tap (optionally with TCP
 * Fast Open), then the switch to the kernel.
 * @packageDocumentation
 */
import * as dns from 'node:dns/promises';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { loadBinding } from '../native/binding.js';
import { KtlsSystemError } from '../native/errors.js';
import type { KtlsSocket } from '../socket/socket.js';
import { deadlineOf, handOver, untilSecure, type KtlsHandoverOptions } from './switch.js';
import { WireTap } from './wire-tap.js';

/** `tls.connect` options plus `ktls`. */
export interface KtlsConnectOptions extends tls.ConnectionOptions {
  /**
   * TCP Fast Open: connect with `TCP_FASTOPEN_CONNECT`, so once the kernel has
   * the server's cookie the ClientHello rides in the SYN. Where the kernel or
   * the path refuses, the connection is an ordinary one. Ignored with `socket`.
   */
  fastOpen?: boolean;
  /** ktls-specific options. */
  ktls?: KtlsHandoverOptions;
}

/** Connects with TCP_FASTOPEN_CONNECT; undefined when this kernel or platform cannot. */
async function fastOpenConnect(host: string, port: number): Promise<net.Socket | undefined> {
  const b = loadBinding().binding;
  if (!b) return undefined;
  const { address, family } = await dns.lookup(host);
  const fd = b.fastOpenSocket(family === 6 ? b.constants.AF_INET6 : b.constants.AF_INET);
  if (fd < 0) return undefined;
  const rc = b.connectFd(fd, address, port);
  if (rc < 0 && rc !== -b.constants.EINPROGRESS) {
    b.closeFd(fd);
    throw new KtlsSystemError(rc, 'connect', `${address}:${port}`);
  }
  // With a cookie the SYN waits for the first write (the ClientHello); libuv
  // retries that write until the connection is up either way.
  return new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
}

/**
 * Connects like `tls.connect()` and resolves with a {@link KtlsSocket} once the
 * handshake is done and the keys are in the kernel. `listener` is called with it too.
 */
export function connect(options: KtlsConnectOptions, listener?: (socket: KtlsSocket) => void): Promise<KtlsSocket> {
  const done = (async () => {
    const { ktls: opts, fastOpen, ...tlsOptions } = options;
    let raw = tlsOptions.socket as net.Socket | undefined;
    if (!raw && fastOpen) raw = await fastOpenConnect(tlsOptions.host ?? 'localhost', tlsOptions.port ?? 443);
    if (!raw) {
      // Half-open: a peer's early FIN must not make node:net end or destroy the socket we are about to take.
      raw = net.connect({ ...(tlsOptions as net.NetConnectOpts), allowHalfOpen: true });
      const r = raw;
      await new Promise<void>((resolve, reject) => r.once('connect', resolve).once('error', reject));
    }
    raw.setNoDelay(opts?.noDelay ?? true);
    const tap = new WireTap(raw, opts?.coalesce ?? true);
    const keylog: Buffer[] = [];
    const t = tls.connect({ ...tlsOptions, socket: tap });
    t.once('secure', () => tap.markSecure());
    t.on('keylog', (line: Buffer) => keylog.push(line));
    const early: Buffer[] = [];
    t.on('session', (s: Buffer) => early.push(s));
    let ticket: Promise<unknown> = Promise.resolve();
    const deadline = deadlineOf(tap.since, opts?.handshakeTimeout);
    try {
      await untilSecure(t, 'secureConnect', deadline);
      const wait = opts?.waitForTicket ?? 0;
      if (wait > 0 && t.getProtocol() === 'TLSv1.3' && !t.isSessionReused()) {
        let timer: NodeJS.Timeout | undefined;
        ticket = new Promise((resolve) => {
          t.once('session', resolve);
          timer = setTimeout(resolve, wait);
        }).finally(() => clearTimeout(timer));
      }
      await ticket;
    } catch (err) {
      raw.destroy();
      throw err;
    }
    const r = raw;
    // After a failed hand-over the TLS state is gone with node:tls: the connection cannot be used.
    return handOver(t, { tap, raw, keylog, isServer: false, sessions: early, deadline, relayTickets: true }, opts).catch((err: unknown) => {
      r.destroy();
      throw r.errored ?? err;
    });
  })();
  if (listener) done.then(listener, () => undefined);
  return done;
}
