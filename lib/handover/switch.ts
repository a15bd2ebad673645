/**
 * The switch itself, shared by the client, the server and upgradeTLSSocket():
 * once node:tls has finished the handshake through the wire tap, wait until it
 * owes nothing, recover each direction's keys and sequence numbers, and hand
 * the connection to `upgrade()` (or keep it on node:tls where no record layer
 * of ours can carry its suite).
 * @packageDocumentation
 */
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import { loadBinding } from '../native/binding.js';
import { KtlsError, handshakeTimeout } from '../native/errors.js';
import { handleFd } from '../native/net-handle.js';
import type { HandshakeTcp } from '../socket/base.js';
import type { KtlsSocketOptions } from '../socket/options.js';
import type { KtlsSocket } from '../socket/socket.js';
import { checkExportArgs } from '../record/exporter.js';
import { upgradeWith } from '../socket/upgrade.js';
import { isTcpFd } from '../socket/validate.js';
import { bridgeToNodeTls } from './node-tls-carried.js';
import { answerKeyUpdate, carriable, deriveSecrets, secretsOf, startTracking, wipeKeys } from './sequence.js';
import { relayTickets } from './tickets.js';
import { localCertificate, tlsInfo } from './tls-info.js';
import { settled, type WireTap } from './wire-tap.js';
import { countConnection } from '../socket/counters.js';

/** ktls-specific options of `connect()`, `createServer()` and `upgradeTLSSocket()`. */
export interface KtlsHandoverOptions extends KtlsSocketOptions {
  /**
   * Where the kernel lacks kTLS or the negotiated cipher: `'tls'` (default)
   * keeps the connection working with userspace record crypto behind the same
   * API (`socket.kernel === false`, one warning per process); `'error'` fails
   * with `ERR_KTLS_UNAVAILABLE`.
   */
  fallback?: 'tls' | 'error';
  /**
   * Client, TLS 1.3: wait up to this many milliseconds after the handshake for
   * the server's first NewSessionTicket before switching. Default 0: switch at
   * once; tickets that arrive after the switch still become `'session'` events
   * (and `getSession()`) usable with `connect({ session })`.
   */
  waitForTicket?: number;
  /**
   * Gather each handshake flight node:tls writes (ServerHello … Finished) into
   * one write, so it leaves in as few TCP segments as the MSS allows. Default true.
   */
  coalesce?: boolean;
  /** `false`: keep records in userspace even where the kernel has kTLS (comparisons, debugging). */
  kernel?: boolean;
  /**
   * Milliseconds the handshake and the switch to the kernel may take together,
   * from when the connection began (default: the server's `handshakeTimeout`,
   * else 120 s, node:tls's default). Past it the connection is closed with
   * `ERR_TLS_HANDSHAKE_TIMEOUT` (a `'tlsClientError'` on the server).
   */
  handshakeTimeout?: number;
  /**
   * `TCP_NODELAY` from the first byte (default true): a Finished and the first
   * record after it, or a small request and its response, are not held back by
   * Nagle's algorithm waiting for an ACK (a delayed ACK costs up to 40 ms).
   */
  noDelay?: boolean;
}

// One KTLS_FALLBACK warning per distinct reason (a handful: no module, a cipher, a known defect), not per connection.
const warned = new Set<string>();

/** TCP segment counters of a connection, for handshake statistics (undefined without the addon or the socket). */
function tcpCounters(raw: net.Socket): HandshakeTcp | undefined {
  const b = loadBinding().binding;
  const fd = handleFd(raw);
  const i = b && fd >= 0 ? b.tcpInfo(fd) : -1;
  return typeof i === 'number' ? undefined : { segmentsOut: i.segsOut, segmentsIn: i.segsIn, dataSegmentsOut: i.dataSegsOut };
}

/** Where a hand-over stands: what it needs besides the TLSSocket. */
export interface HandoverState {
  tap: WireTap;
  raw: net.Socket;
  keylog: Buffer[];
  isServer: boolean;
  /** 'session' events node:tls emitted (client), forwarded to the KtlsSocket. */
  sessions?: Buffer[];
  /**
   * Client, TLS 1.3: keep node:tls's SSL state after the switch so that tickets
   * that arrive later become `'session'` events (see tickets.ts).
   */
  relayTickets?: boolean;
  /** Plaintext the user already read through node:tls. */
  consumed?: () => number;
  /** Absolute time (ms) by which the hand-over must be done. */
  deadline: number;
  /** The socket `connect()` returned, which takes the connection (else a new one is made). */
  into?: KtlsSocket;
}

/** `options` with node:tls's top-level `allowHalfOpen` where `options.allowHalfOpen` is not set. @internal */
export function withHalfOpen(options: KtlsHandoverOptions | undefined, allowHalfOpen: boolean | undefined): KtlsHandoverOptions | undefined {
  return allowHalfOpen === undefined || options?.allowHalfOpen !== undefined ? options : { ...options, allowHalfOpen };
}

/** The hand-over deadline: `handshakeTimeout` (node:tls's default 120 s) from when the connection began. */
export function deadlineOf(since: number, timeout: number | undefined): number {
  return since + (timeout !== undefined && timeout > 0 ? timeout : 120_000);
}

/** Warned once per reason (a suite, a transport). */
const warnedNodeTls = new Set<boolean>();

/**
 * A suite neither kTLS nor the userspace record layer has, or a transport that is not TCP (a
 * Unix-domain socket, a stream): node:tls keeps the records (or, with fallback 'error', the switch fails).
 */
function keepOnNodeTls(t: tls.TLSSocket, st: HandoverState, opts: KtlsHandoverOptions, notTcp: boolean): KtlsSocket {
  const suite = `${String(t.getProtocol())} ${t.getCipher().standardName}`;
  if (opts.fallback === 'error')
    throw notTcp
      ? new KtlsError('ERR_KTLS_NOT_TCP', 'kernel TLS needs a TCP socket')
      : new KtlsError('ERR_KTLS_UNSUPPORTED', `kernel TLS cannot carry ${suite}`);
  st.tap.fed.abandon();
  st.tap.sent.abandon();
  const info = tlsInfo(t, st.isServer);
  info.handshakeTcp = tcpCounters(st.raw);
  info.certificate = localCertificate(t);
  // node:tls keeps the session here, so it answers for the exporter itself.
  info.exporter = {
    export: (length, label, context) => {
      checkExportArgs(length, label, context);
      // @types/node makes context required; node:tls takes it as optional (no context at all, which differs from an empty one in TLS 1.2).
      const exportIt = t.exportKeyingMaterial.bind(t) as (length: number, label: string, context?: Buffer) => Buffer;
      return exportIt(length, label, context);
    },
    wipe: () => undefined,
  };
  const why = notTcp ? 'a connection over a transport that is not TCP' : `a connection negotiated ${suite}, which kernel TLS cannot carry`;
  const sock = bridgeToNodeTls(t, st.raw, info, opts, `${why}; node:tls keeps protecting its records`, st.into);
  for (const s of st.sessions ?? []) process.nextTick(() => sock.emit('session', s));
  countConnection(sock, 'userspace', why);
  if (!warnedNodeTls.has(notTcp)) {
    warnedNodeTls.add(notTcp);
    process.emitWarning(`${why}; node:tls keeps protecting its records`, { code: 'KTLS_NODE_TLS' });
  }
  return sock;
}

/** Resolves on `event`; rejects on the socket's error, its close, or at `deadline` (`ERR_TLS_HANDSHAKE_TIMEOUT`). */
export function untilSecure(t: tls.TLSSocket, event: 'secure' | 'secureConnect', deadline: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => done(handshakeTimeout()), Math.max(0, deadline - Date.now()));
    const onClose = (): void => done(new KtlsError('ERR_SOCKET_CLOSED', 'the connection closed before the TLS handshake finished'));
    const done = (err?: Error): void => {
      clearTimeout(timer);
      t.off(event, ok).off('error', done).off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const ok = (): void => done();
    t.once(event, ok).once('error', done).once('close', onClose);
  });
}

/** Moves a finished node:tls handshake onto the kernel. */
export async function handOver(t: tls.TLSSocket, st: HandoverState, opts: KtlsHandoverOptions = {}): Promise<KtlsSocket> {
  const { tap, raw } = st;
  tap.markSecure();
  if (!carriable(t)) return keepOnNodeTls(t, st, opts, false);
  const b = loadBinding().binding;
  if (b && !isTcpFd(b, handleFd(raw))) return keepOnNodeTls(t, st, opts, true);
  // 'secure' fires inside OpenSSL's handshake callback: stop feeding it now,
  // then wait until it has written everything it owes (tickets, user writes).
  tap.hold();
  t.disableRenegotiation();
  startTracking(t, st.keylog, tap, st.isServer);
  await settled(t, tap, st.deadline);
  const d = deriveSecrets(t, tap, st.consumed?.() ?? 0);
  const prefix = tap.unconsumed();
  const info = tlsInfo(t, st.isServer);
  info.handshakeTcp = tcpCounters(raw);
  info.certificate = localCertificate(t);
  if (tap.exporter) info.exporter = tap.exporter;
  tap.markSwitched();
  // Client, TLS 1.3: node:tls keeps its SSL state (no traffic) for tickets that arrive later.
  const relay = st.relayTickets === true && !st.isServer && d.version === 'TLSv1.3';
  if (!relay) t.destroy();
  if (d.owesKeyUpdate) raw.write(answerKeyUpdate(d));
  const secrets = secretsOf(d);
  const trafficSecrets = d.tx.secret && d.rx.secret ? { tx: d.tx.secret, rx: d.rx.secret } : undefined;
  const fallback = opts.fallback ?? 'tls';
  try {
    const sock = await upgradeWith(
      raw,
      secrets,
      { ...opts, ...(trafficSecrets ? { trafficSecrets } : {}), fallback: fallback === 'error' ? 'error' : 'userspace' },
      { prefix, early: d.early, skip: d.skip, deadline: st.deadline, role: st.isServer ? 'server' : 'client', ...(st.into ? { into: st.into } : {}) },
    );
    sock.attachTlsInfo(info);
    if (tap.lateWrite) sock.destroy(tap.lateWrite);
    else tap.onLateWrite = (err) => sock.destroy(err);
    if (relay) relayTickets(t, tap, d, sock);
    const reason = sock.fallbackReason ?? 'kernel TLS is not available';
    if (!sock.kernel && !warned.has(reason)) {
      warned.add(reason);
      process.emitWarning(`records of this connection are protected in userspace, not by the kernel: ${reason}`, { code: 'KTLS_FALLBACK' });
    }
    for (const s of st.sessions ?? []) process.nextTick(() => sock.emit('session', s));
    return sock;
  } catch (err) {
    if (relay) t.destroy();
    throw err;
  } finally {
    secrets.wipe();
    wipeKeys(d.tx);
    wipeKeys(d.rx);
  }
}
