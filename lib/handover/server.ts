/**
 * `ktls.createServer()`: a `tls.Server` runs each handshake through a wire tap
 * under a `net.Server` we listen with; finished handshakes switch to the
 * kernel, and every connection that fails or is abandoned first is closed and
 * reported once.
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { loadBinding } from '../native/binding.js';
import { KtlsError, errnoName, invalidArgValue } from '../native/errors.js';
import { handleFd, tlsTransport } from '../native/net-handle.js';
import type { KtlsSocket } from '../socket/socket.js';
import { deadlineOf, handOver, type KtlsHandoverOptions } from './switch.js';
import { WireTap } from './wire-tap.js';

/** `tls.createServer` options plus `ktls`. */
export interface KtlsServerOptions extends tls.TlsOptions {
  /**
   * TCP Fast Open queue length for the listening socket (`TCP_FASTOPEN`):
   * clients with a cookie may send their ClientHello in the SYN. The kernel
   * must allow it (`net.ipv4.tcp_fastopen` bit 2); a refusal is a `KTLS_FASTOPEN` warning.
   */
  fastOpen?: number;
  /** ktls-specific options. */
  ktls?: KtlsHandoverOptions;
}

function enableFastOpen(server: net.Server, queue: number): void {
  const b = loadBinding().binding;
  const fd = handleFd(server);
  const rc = b && fd >= 0 ? b.setsockoptInt(fd, b.constants.SOL_TCP, b.constants.TCP_FASTOPEN, queue) : -1;
  if (rc < 0)
    process.emitWarning(`TCP Fast Open could not be enabled on the listening socket (${rc === -1 ? 'no addon' : errnoName(rc)})`, { code: 'KTLS_FASTOPEN' });
}

/** A server connection until its hand-over: the tap under node:tls, and what is known of it. */
interface ServerConnection {
  tap: WireTap;
  raw: net.Socket;
  keylog: Buffer[];
  /** The node:tls socket, once an event has shown it. */
  tls?: tls.TLSSocket;
  /** The first error node:tls reported for it. */
  error?: Error;
  /** 'secureConnection' or 'tlsClientError' has been (or will be) emitted for it. */
  reported: boolean;
}

/**
 * A TLS server whose connections end up in the kernel. It takes the options of
 * `tls.createServer()` and emits `'secureConnection'` with {@link KtlsSocket}s;
 * per-connection failures (handshake or hand-over) are `'tlsClientError'` events.
 * `'newSession'`, `'resumeSession'`, `'OCSPRequest'` and `'keylog'` listeners are
 * passed through to the underlying `tls.Server`.
 */
export class KtlsServer extends EventEmitter {
  /** The `tls.Server` that runs the handshakes (never listens itself). */
  readonly tlsServer: tls.Server;
  /** The listening TCP server. */
  readonly netServer: net.Server;
  #conns = new WeakMap<WireTap, ServerConnection>();

  /** See {@link createServer}. */
  constructor(options: KtlsServerOptions = {}, listener?: (socket: KtlsSocket) => void) {
    super();
    const { ktls: opts, fastOpen, ...tlsOptions } = options;
    this.tlsServer = new tls.Server(tlsOptions);
    this.tlsServer.on('keylog', (line: Buffer, t: tls.TLSSocket) => {
      const c = this.#connOf(t);
      if (c) c.keylog.push(line);
    });
    this.tlsServer.on('secureConnection', (t: tls.TLSSocket) => {
      const c = this.#connOf(t);
      if (!c) {
        t.destroy();
        this.emit('tlsClientError', new KtlsError('ERR_KTLS_HANDOVER', 'cannot find the connection under this node:tls socket'), t);
        return;
      }
      c.reported = true; // from here the hand-over reports the outcome
      const { tap, raw, keylog } = c;
      handOver(t, { tap, raw, keylog, isServer: true, deadline: deadlineOf(tap.since, opts?.handshakeTimeout ?? tlsOptions.handshakeTimeout) }, opts).then(
        (sock) => this.emit('secureConnection', sock),
        (err: Error) => {
          t.destroy();
          raw.destroy();
          // A reset during the switch undoes it: the reset is the reason, not what it broke.
          this.emit('tlsClientError', raw.errored ?? err, t);
        },
      );
    });
    // node:tls reports some failures without closing the connection (a handshake
    // timeout) and never reports others (a reset before its first read): the
    // connection is closed here, and reported once, when its tap closes.
    this.tlsServer.on('tlsClientError', (err: Error, t: tls.TLSSocket) => {
      const c = this.#connOf(t);
      if (c) {
        c.error ??= err;
        c.tls ??= t;
      }
      t.destroy();
    });
    this.netServer = net.createServer({ allowHalfOpen: true }, (raw) => {
      raw.setNoDelay(opts?.noDelay ?? true);
      const tap = new WireTap(raw, opts?.coalesce ?? true);
      const c: ServerConnection = { tap, raw, keylog: [], reported: false };
      this.#conns.set(tap, c);
      tap.once('close', () => {
        if (c.reported) return;
        c.reported = true;
        raw.destroy();
        const err = c.error ?? tap.errored ?? Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
        this.emit('tlsClientError', err, c.tls ?? raw);
      });
      this.tlsServer.emit('connection', tap);
    });
    if (fastOpen !== undefined) {
      if (!Number.isInteger(fastOpen) || fastOpen < 0)
        throw invalidArgValue(`Expected a non-negative integer for options.fastOpen but received ${String(fastOpen)}`);
      // Before 'listening' reaches the user, so no connection is accepted without it.
      this.netServer.prependListener('listening', () => enableFastOpen(this.netServer, fastOpen));
    }
    for (const ev of ['listening', 'close', 'error']) this.netServer.on(ev, (...args: unknown[]) => this.emit(ev, ...args));
    const passThrough = new Set(['newSession', 'resumeSession', 'OCSPRequest', 'keylog']);
    this.on('newListener', (ev: string | symbol) => {
      if (typeof ev === 'string' && passThrough.delete(ev)) this.tlsServer.on(ev, (...args: unknown[]) => this.emit(ev, ...args));
    });
    if (listener) this.on('secureConnection', listener);
  }

  /** Starts listening, with the arguments of `net.Server#listen`. */
  listen(port?: number, host?: string, backlog?: number, listeningListener?: () => void): this;
  listen(port?: number, host?: string, listeningListener?: () => void): this;
  listen(options: net.ListenOptions, listeningListener?: () => void): this;
  listen(port?: number, listeningListener?: () => void): this;
  listen(...args: unknown[]): this {
    (this.netServer.listen as (...a: unknown[]) => net.Server)(...args);
    return this;
  }

  /** The bound address, as `net.Server#address`. */
  address(): ReturnType<net.Server['address']> {
    return this.netServer.address();
  }

  /** The connection under a node:tls socket (node:tls wraps our tap in a JSStreamSocket: TLSWrap._parentWrap.stream). */
  #connOf(t: tls.TLSSocket): ServerConnection | undefined {
    const tap = tlsTransport(t).stream;
    return tap instanceof WireTap ? this.#conns.get(tap) : undefined;
  }

  /** As `tls.Server#addContext`: a secure context for clients that ask for `hostname` (SNI, wildcards allowed). */
  addContext(hostname: string, context: tls.SecureContextOptions | tls.SecureContext): void {
    this.tlsServer.addContext(hostname, context);
  }

  /** As `tls.Server#setSecureContext`: replaces the default context for new handshakes. */
  setSecureContext(options: tls.SecureContextOptions): void {
    this.tlsServer.setSecureContext(options);
  }

  /** As `tls.Server#getTicketKeys`: the 48-byte session ticket key. */
  getTicketKeys(): Buffer {
    return this.tlsServer.getTicketKeys();
  }

  /** As `tls.Server#setTicketKeys`: shares session tickets with other servers that set the same key. */
  setTicketKeys(keys: Buffer): void {
    this.tlsServer.setTicketKeys(keys);
  }

  /** As `net.Server#ref`. */
  ref(): this {
    this.netServer.ref();
    return this;
  }

  /** As `net.Server#unref`: the listening socket does not keep the process alive. */
  unref(): this {
    this.netServer.unref();
    return this;
  }

  /** Stops accepting connections; open KtlsSockets are not affected. */
  close(callback?: (err?: Error) => void): this {
    this.netServer.close(callback);
    return this;
  }
}

/** Creates a {@link KtlsServer}: `tls.createServer()` whose connections move to the kernel. */
export function createServer(options: KtlsServerOptions = {}, listener?: (socket: KtlsSocket) => void): KtlsServer {
  return new KtlsServer(options, listener);
}
