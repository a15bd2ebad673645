/**
 * `ktls.connect()`'s arguments: `tls.connect()`'s signatures normalized to one
 * options object, and the `net.connect()` options checked as node:net checks them.
 * @packageDocumentation
 */
import * as net from 'node:net';
import type * as tls from 'node:tls';
import { invalidArgType, invalidArgValue } from '../native/errors.js';
import type { OnRead } from '../socket/net-compat.js';
import type { KtlsSocket } from '../socket/socket.js';
import type { KtlsHandoverOptions } from './switch.js';

/** `tls.connect()` options (with the `net.connect()` ones it passes on) plus `fastOpen`, `signal` and `ktls`. */
export interface KtlsConnectOptions extends Omit<tls.ConnectionOptions, 'port' | 'timeout'> {
  /** The server's port: a number or a numeric string, 0 to 65535 (else `ERR_SOCKET_BAD_PORT`, thrown). */
  port?: number | string;
  /** 4, 6, or 0 (default: either), as `net.connect()`: which address family the name is resolved to. */
  family?: number;
  /** `dns.lookup()` hints, as `net.connect()`. */
  hints?: number;
  /** The local address to connect from (an IP address), as `net.connect()`. */
  localAddress?: string;
  /** The local port to connect from, as `net.connect()`. */
  localPort?: number;
  /** As `tls.connect()`: keep the writable side open after the peer ends (default false); `ktls.allowHalfOpen` wins if set. */
  allowHalfOpen?: boolean;
  /** As `net.connect()`: incoming data goes into this buffer and to `callback`, not to `'data'` events. */
  onread?: OnRead;
  /** As `net.connect()`: try every address the name resolves to (default `net.getDefaultAutoSelectFamily()`); `false`: the first only. */
  autoSelectFamily?: boolean;
  /** As `net.connect()`: milliseconds before the next address is tried (default `net.getDefaultAutoSelectFamilyAttemptTimeout()`). */
  autoSelectFamilyAttemptTimeout?: number;
  /**
   * Milliseconds of inactivity allowed. Before the socket exists (lookup,
   * connect, handshake) an idle connection is destroyed and the connect fails
   * with `ERR_SOCKET_CONNECTION_TIMEOUT` (there is no socket yet to emit
   * `'timeout'` on); after, it is the {@link KtlsSocket}'s `setTimeout()`, which
   * emits `'timeout'` as `tls.connect()`'s socket does.
   */
  timeout?: number;
  /**
   * Aborting it destroys the connection: before the socket exists the connect
   * fails with an `AbortError` (`code: 'ABORT_ERR'`, `cause`: the signal's
   * reason); after, the {@link KtlsSocket} is destroyed with one, as `net.Socket`'s `signal`.
   */
  signal?: AbortSignal;
  /**
   * TCP Fast Open: connect with `TCP_FASTOPEN_CONNECT`, so once the kernel has
   * the server's cookie the ClientHello rides in the SYN. Where the kernel or
   * the path refuses, the connection is an ordinary one. Ignored with `socket`.
   */
  fastOpen?: boolean;
  /** ktls-specific options. */
  ktls?: KtlsHandoverOptions;
}

/** The `connect()` callback: called with the socket (also as `this`, as `tls.connect()`'s) once it is ready. */
export type SecureConnectListener = (this: KtlsSocket, socket: KtlsSocket) => void;

const isObject = (v: unknown): v is object => typeof v === 'object' && v !== null;

/**
 * `tls.connect()`'s argument forms (`options[, cb]`, `port[, host][, options][, cb]`,
 * `path[, options][, cb]`) as one options object, as node:tls normalizes them:
 * a string that is not a number is a path; options after a port or host are merged in.
 */
export function normalizeConnectArgs(args: readonly unknown[]): [KtlsConnectOptions, SecureConnectListener | undefined] {
  const last = args[args.length - 1];
  const listener = typeof last === 'function' ? (last as SecureConnectListener) : undefined;
  const first = args[0];
  let options: KtlsConnectOptions;
  if (isObject(first)) options = { ...(first as KtlsConnectOptions) };
  else if (typeof first === 'string' && !(Number(first) >= 0)) options = { path: first };
  else {
    options = { port: first as number | string };
    if (typeof args[1] === 'string') options.host = args[1];
  }
  const more = isObject(args[1]) ? args[1] : isObject(args[2]) ? args[2] : undefined;
  if (more) Object.assign(options, more);
  return [options, listener];
}

/** `net`'s port check: a number or numeric string, integer, 0 to 65535; `ERR_SOCKET_BAD_PORT` otherwise. */
export function validatePort(port: unknown): number {
  if (typeof port !== 'number' && typeof port !== 'string')
    throw invalidArgType(`The "options.port" property must be one of type number or string. Received ${typeof port}`);
  const n = Number(port);
  if ((typeof port === 'string' && port.trim().length === 0) || n !== n >>> 0 || n > 0xffff)
    throw Object.assign(new RangeError(`options.port should be >= 0 and < 65536. Received ${typeof port} (${String(port)}).`), {
      code: 'ERR_SOCKET_BAD_PORT',
    });
  return n;
}

/** Checks what node:net would refuse, before anything is opened; returns the options with `port` a number. */
export function checkConnectOptions(options: KtlsConnectOptions): KtlsConnectOptions & { port?: number } {
  const { family, lookup, localAddress, timeout, signal } = options;
  if (family !== undefined && family !== 0 && family !== 4 && family !== 6)
    throw invalidArgValue(`The property 'options.family' must be one of: 0, 4, 6. Received ${String(family)}`);
  if (lookup !== undefined && typeof lookup !== 'function') throw invalidArgType(`Expected a function for options.lookup but received ${typeof lookup}`);
  if (localAddress !== undefined && !net.isIP(localAddress))
    throw Object.assign(new TypeError(`Invalid IP address: ${String(localAddress)}`), { code: 'ERR_INVALID_IP_ADDRESS' });
  if (timeout !== undefined) {
    if (typeof timeout !== 'number') throw invalidArgType(`Expected a number for options.timeout but received ${typeof timeout}`);
    if (!(timeout >= 0) || !Number.isFinite(timeout))
      throw invalidArgValue(`Expected a non-negative number of milliseconds for options.timeout but received ${timeout}`);
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgType('Expected an AbortSignal for options.signal');
  return { ...options, port: options.port === undefined ? undefined : validatePort(options.port) };
}
