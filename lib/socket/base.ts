/**
 * What a KtlsSocket shares with `tls.TLSSocket` and `net.Socket` beyond the
 * stream itself: what the handshake negotiated, and the TCP controls servers
 * and frameworks call (timeouts, keep-alive, Nagle, TCP_CORK, TCP_INFO,
 * destroySoon).
 * @packageDocumentation
 */
import { X509Certificate } from 'node:crypto';
import { Duplex, type DuplexOptions } from 'node:stream';
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import { requireBinding, type Binding } from '../native/binding.js';
import { constants } from '../native/constants.js';
import { KtlsError, KtlsSystemError, invalidArgValue } from '../native/errors.js';
import { checkExportArgs } from '../record/exporter.js';
import type { RecordPaths } from './paths.js';
import { KeyUsage, type UsageHost } from './key-usage.js';
import { tcpInfoOf, type HandshakeTcp, type TcpInfo, type TlsInfo } from './negotiated.js';
import type { PendingStart } from './pending.js';

export { tcpInfoOf, type HandshakeTcp, type TcpInfo, type TlsInfo } from './negotiated.js';

/** What a socket's connection gives the base: its fd's handle and where it goes. @internal */
export type BaseConnection = Pick<RecordPaths, 'binding' | 'handle' | 'remote' | 'local' | 'fallbackReason' | 'keyUsageLimits'>;

/** The node:tls-like and net-like surface of a KtlsSocket. */
export abstract class KtlsSocketBase extends Duplex {
  /** Always true, as on `tls.TLSSocket`: frameworks read it for `req.protocol`/`req.secure`. */
  readonly encrypted = true;
  /** Negotiated TLS version (`'TLSv1.2'` or `'TLSv1.3'`); undefined before the handshake. */
  abstract readonly version: string | undefined;
  /** Peer address as the original `net.Socket` saw it. */
  get remoteAddress(): string | undefined {
    return this.#addr().remote.address;
  }
  /** Peer port. */
  get remotePort(): number | undefined {
    return this.#addr().remote.port;
  }
  /** `'IPv4'` or `'IPv6'`. */
  get remoteFamily(): string | undefined {
    return this.#addr().remote.family;
  }
  /** Local address. */
  get localAddress(): string | undefined {
    return this.#addr().local.address;
  }
  /** Local port. */
  get localPort(): number | undefined {
    return this.#addr().local.port;
  }
  /**
   * Why records are not (wholly) sealed and opened by the kernel (`kernel === false`):
   * no tls module, a cipher this kernel lacks, a known kernel defect, `kernel: false`. Undefined when
   * they are, and before the switch.
   */
  get fallbackReason(): string | undefined {
    return this.#conn?.fallbackReason;
  }
  /** @internal The TCP connection's fd, for TCP options. */
  abstract get tcpFd(): number;

  /** Writes queued below the stream (not yet taken by the kernel). */
  protected abstract get queuedWrites(): number;

  #tls: TlsInfo | undefined;
  #timer: NodeJS.Timeout | undefined;
  #usage: KeyUsage | null | undefined;
  #conn: BaseConnection | undefined;
  #tcpCorked = false;
  #uncorkPending = false;
  /** Before the switch (a socket `connect()` returned at once): what was asked of it meanwhile. */
  protected start: PendingStart | null;

  /** `conn` is the connection, or what to hold until it exists (see `pending.ts`). */
  constructor(options: DuplexOptions, conn: BaseConnection | PendingStart) {
    super(options);
    this.start = null;
    if ('handle' in conn) this.attachBase(conn);
    else this.start = conn;
  }

  /** The connection now exists: its handle, addresses and options, and what was set on the socket before it. */
  protected attachBase(conn: BaseConnection): void {
    if (conn.keyUsageLimits === false) this.#usage = null;
    this.#conn = conn;
    const start = this.start;
    if (!start) return;
    if (!start.refed) conn.handle.unref();
    if (start.noDelay !== undefined) this.setNoDelay(start.noDelay);
    if (start.keepAlive) this.setKeepAlive(...start.keepAlive);
  }

  #addr(): Pick<RecordPaths, 'remote' | 'local'> {
    return this.#conn ?? this.start ?? { remote: {}, local: {} };
  }

  get #binding(): Binding {
    return this.#conn?.binding ?? requireBinding();
  }

  /** Called once from `_destroy`: stops the idle timer and zeroes the exporter secret (a method, not a per-socket 'close' listener). */
  protected releaseBase(): void {
    clearTimeout(this.#timer);
    this.#tls?.exporter?.wipe();
  }

  /** The underlying fd (owned by this socket; -1 once closed). */
  get fd(): number {
    return this.#conn ? this.#conn.handle.fd : -1;
  }

  /** As `net.Socket#address()`: the local address, family and port. */
  address(): net.AddressInfo | Record<string, never> {
    if (this.localAddress === undefined || this.localPort === undefined) return {};
    return { address: this.localAddress, family: this.remoteFamily ?? (this.localAddress.includes(':') ? 'IPv6' : 'IPv4'), port: this.localPort };
  }

  /** As `net.Socket#readyState`: `'open'`, `'readOnly'`, `'writeOnly'` or `'closed'`. */
  get readyState(): 'opening' | 'open' | 'readOnly' | 'writeOnly' | 'closed' {
    if (this.destroyed) return 'closed';
    if (this.start && !this.start.tcpConnected) return 'opening';
    if (this.readable && this.writable) return 'open';
    if (this.readable) return 'readOnly';
    return this.writable ? 'writeOnly' : 'closed';
  }

  /** As `net.Socket#bufferSize` (deprecated there): bytes waiting to be written; undefined once destroyed. */
  get bufferSize(): number | undefined {
    return this.destroyed ? undefined : this.writableLength;
  }

  /** As `net.Socket#timeout`: the last `setTimeout()` value (ms), undefined before one. */
  timeout: number | undefined;

  /** Lets the process exit while this socket is open. */
  unref(): this {
    return this.#ref(false);
  }

  /** Undoes `unref()`. */
  ref(): this {
    return this.#ref(true);
  }

  #ref(on: boolean): this {
    if (this.#conn) {
      if (on) this.#conn.handle.ref();
      else this.#conn.handle.unref();
    } else if (this.start) {
      this.start.refed = on;
      this.start.connector.ref(on);
    }
    return this;
  }

  /** @internal Called by the handshake hand-over with what node:tls knew. */
  attachTlsInfo(info: TlsInfo): void {
    if (!this.#tls) this.on('session', (s: Buffer) => void (this.#tls && (this.#tls.session = s)));
    this.#tls = info;
  }

  /** What node:tls knew at the switch (undefined after a bare `upgrade()`). */
  protected get tlsInfo(): TlsInfo | undefined {
    return this.#tls;
  }

  /** @internal The TCP fd's binding, for the node:tls members in `tls-members.ts`. */
  protected get nativeBinding(): Binding {
    return this.#binding;
  }

  /** TCP segments sent and received on this connection up to the switch to kTLS (handshake included). */
  get handshakeTcp(): HandshakeTcp | undefined {
    return this.#tls?.handshakeTcp;
  }

  /** ALPN protocol negotiated by the node:tls handshake (false if none; undefined after a bare `upgrade()`). */
  get alpnProtocol(): string | false | null | undefined {
    return this.#tls?.alpnProtocol;
  }

  /** SNI server name of the handshake, as `tls.TLSSocket#servername`. */
  get servername(): string | false | null | undefined {
    return this.#tls?.servername;
  }

  /** Whether the peer's certificate was verified during the handshake. */
  get authorized(): boolean {
    return this.#tls?.authorized ?? false;
  }

  /** Why the peer's certificate was not verified, if it was not. */
  get authorizationError(): Error | null {
    return this.#tls?.authorizationError ?? null;
  }

  /**
   * The peer certificate as `tls.TLSSocket#getPeerCertificate(detailed)` returned
   * it at the switch: with `detailed` true the issuer chain (`issuerCertificate`)
   * is included, otherwise not. `{}` without one.
   */
  getPeerCertificate(detailed?: false): tls.PeerCertificate | Record<string, never>;
  getPeerCertificate(detailed: true): tls.DetailedPeerCertificate | Record<string, never>;
  getPeerCertificate(detailed?: boolean): tls.PeerCertificate | tls.DetailedPeerCertificate | Record<string, never>;
  getPeerCertificate(detailed = false): tls.PeerCertificate | tls.DetailedPeerCertificate | Record<string, never> {
    const cert = this.#tls?.peerCertificate ?? {};
    if (detailed || !('raw' in cert)) return cert;
    const { issuerCertificate: _chain, ...plain } = cert;
    return plain;
  }

  /** The peer's certificate as an `X509Certificate`, as `tls.TLSSocket#getPeerX509Certificate()`; undefined without one. */
  getPeerX509Certificate(): X509Certificate | undefined {
    const cert = this.#tls?.peerCertificate ?? {};
    return 'raw' in cert && Buffer.isBuffer(cert.raw) ? new X509Certificate(cert.raw) : undefined;
  }

  /** Our Finished message's verify_data, as `tls.TLSSocket#getFinished()` (undefined after a bare `upgrade()`). */
  getFinished(): Buffer | undefined {
    return this.#tls?.finished && Buffer.from(this.#tls.finished);
  }

  /** The peer's Finished message's verify_data, as `tls.TLSSocket#getPeerFinished()`. */
  getPeerFinished(): Buffer | undefined {
    return this.#tls?.peerFinished && Buffer.from(this.#tls.peerFinished);
  }

  /** The key exchange's ephemeral key, as `tls.TLSSocket#getEphemeralKeyInfo()` returned it at the switch. */
  getEphemeralKeyInfo(): tls.EphemeralKeyInfo | object | null {
    const e = this.#tls?.ephemeralKeyInfo;
    return e ? { ...e } : null;
  }

  /** Signature algorithms both sides support, as `tls.TLSSocket#getSharedSigalgs()` returned it at the switch. */
  getSharedSigalgs(): string[] {
    return [...(this.#tls?.sharedSigalgs ?? [])];
  }

  /**
   * Keying material (RFC 5705; TLS 1.3: RFC 8446 §7.5), equal to what the peer's
   * `exportKeyingMaterial(length, label, context)` returns. Computed from the
   * exporter secret node:tls logged during the handshake, kept in private
   * unpooled memory and zeroed at close.
   * @throws `ERR_KTLS_NO_EXPORTER` after a bare `upgrade()` (traffic keys carry no
   *   exporter secret); `ERR_SSL_TLS_ILLEGAL_EXPORTER_LABEL` (as node:tls) for TLS 1.2's own
   *   labels and TLS 1.3 labels over 249 bytes of UTF-8;
   *   `ERR_INVALID_ARG_TYPE`/`ERR_INVALID_ARG_VALUE` for bad arguments.
   */
  exportKeyingMaterial(length: number, label: string, context?: Buffer): Buffer {
    const exporter = this.#tls?.exporter;
    if (!exporter) {
      checkExportArgs(length, label, context);
      throw new KtlsError(
        'ERR_KTLS_NO_EXPORTER',
        'this socket has no exporter secret: upgrade() was given traffic keys only (use ktls.connect()/createServer())',
      );
    }
    return exporter.export(length, label, context);
  }

  /** Renegotiation does not exist after the switch: the kernel carries records only. Always throws `ERR_KTLS_NO_RENEGOTIATION`. */
  renegotiate(_options?: unknown, _callback?: (err: Error | null) => void): never {
    throw new KtlsError(
      'ERR_KTLS_NO_RENEGOTIATION',
      'renegotiation is not available after the switch to kernel TLS (TLS 1.3 has none; use updateKeys() for fresh keys)',
    );
  }

  /** The TLS session (for `tls.connect({ session })`), or undefined. Updated by later `'session'` events. */
  getSession(): Buffer | undefined {
    return this.#tls?.session;
  }

  /** Whether the handshake resumed a session. */
  isSessionReused(): boolean {
    return this.#tls?.sessionReused ?? false;
  }

  /** The negotiated protocol, as `tls.TLSSocket#getProtocol()`: null before the handshake and once closed. */
  getProtocol(): string | null {
    if (this.destroyed) return null;
    return this.#tls?.protocol ?? this.version ?? null;
  }

  /** The negotiated cipher suite, as `tls.TLSSocket#getCipher()`. */
  getCipher(): tls.CipherNameAndProtocol | undefined {
    return this.#tls && { ...this.#tls.cipher };
  }

  /**
   * As `net.Socket#setTimeout`: emits `'timeout'` (without destroying) after
   * `msecs` with no data read or written, again after each later activity; `0` disables it. The timer does
   * not keep the process alive.
   */
  setTimeout(msecs: number, callback?: () => void): this {
    if (typeof msecs !== 'number' || !(msecs >= 0) || !Number.isFinite(msecs))
      throw invalidArgValue(`Expected a non-negative number for msecs but received ${String(msecs)}`);
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.timeout = msecs;
    if (msecs === 0) {
      if (callback) this.removeListener('timeout', callback);
      return this;
    }
    if (callback) this.once('timeout', callback);
    if (!this.destroyed) {
      // Kept after it fires, as net's: the next read or write re-arms it (refresh()).
      this.#timer = setTimeout(() => this.emit('timeout'), msecs);
      this.#timer.unref();
    }
    return this;
  }

  /** Restarts the idle timer; called on every read and every accepted write. */
  protected activity(): void {
    this.#timer?.refresh();
    if (this.#usage !== null) (this.#usage ??= new KeyUsage(this as unknown as UsageHost)).tick();
  }

  /** As `net.Socket#setKeepAlive`: `SO_KEEPALIVE`, and `TCP_KEEPIDLE` from `initialDelay` ms when given. */
  setKeepAlive(enable = false, initialDelay = 0): this {
    if (!this.#conn && this.start) return ((this.start.keepAlive = [enable, initialDelay]), this); // applied on connect, as net's
    const b = this.#binding;
    if (this.fd < 0 || this.tcpFd < 0) return this; // closed, or no TCP under us (a no-op, as net's over a pipe)
    const k = b.constants;
    let rc = b.setsockoptInt(this.tcpFd, k.SOL_SOCKET, k.SO_KEEPALIVE, enable ? 1 : 0);
    if (rc < 0) throw new KtlsSystemError(rc, 'setsockopt(SO_KEEPALIVE)');
    if (enable && initialDelay > 0) {
      rc = b.setsockoptInt(this.tcpFd, k.SOL_TCP, k.TCP_KEEPIDLE, Math.max(1, Math.floor(initialDelay / 1000)));
      if (rc < 0) throw new KtlsSystemError(rc, 'setsockopt(TCP_KEEPIDLE)');
    }
    return this;
  }

  /** As `net.Socket#destroySoon`: ends the writable side, then destroys once it has finished. */
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', () => this.destroy());
  }

  /** Enables or disables Nagle's algorithm (TCP_NODELAY), like `net.Socket#setNoDelay`. */
  setNoDelay(noDelay = true): this {
    if (!this.#conn && this.start) return ((this.start.noDelay = noDelay), this); // applied on connect, as net's
    if (this.tcpFd < 0 && this.fd >= 0) return this; // no TCP under us
    const k = constants();
    const rc = this.#binding.setsockoptInt(this.tcpFd, k.SOL_TCP, k.TCP_NODELAY, noDelay ? 1 : 0);
    if (rc < 0 && !this.destroyed) throw new KtlsSystemError(rc, 'setsockopt(TCP_NODELAY)');
    return this;
  }

  /**
   * Holds writes back, as `Writable#cork()`, and also sets `TCP_CORK` so that
   * what is written until the matching `uncork()` (headers, a
   * `sendFile()`) leaves as full segments, not one per write.
   */
  override cork(): void {
    super.cork();
    if (this.writableCorked === 1 && !this.#tcpCorked) this.#setTcpCork(true);
  }

  /** Releases `cork()`; `TCP_CORK` is cleared once everything written under it has gone to the kernel. */
  override uncork(): void {
    super.uncork();
    if (this.writableCorked === 0 && this.#tcpCorked) {
      this.#uncorkPending = true;
      if (this.queuedWrites === 0) this.#setTcpCork(false);
    }
  }

  /** A write pass ended: an uncork that waited for the queue to empty clears `TCP_CORK` now. */
  protected writesFlushed(): void {
    if (this.queuedWrites === 0 && this.#uncorkPending) this.#setTcpCork(false);
  }

  #setTcpCork(on: boolean): void {
    this.#uncorkPending = false;
    if (this.destroyed || this.fd < 0 || this.tcpFd < 0) return;
    const k = constants();
    const rc = this.#binding.setsockoptInt(this.tcpFd, k.SOL_TCP, k.TCP_CORK, on ? 1 : 0);
    if (rc < 0) return void this.destroy(new KtlsSystemError(rc, 'setsockopt(TCP_CORK)'));
    this.#tcpCorked = on;
  }

  /** `TCP_INFO` of the connection: segment and byte counters, RTT, Fast Open flags (`synData`). */
  getTcpInfo(): TcpInfo {
    return tcpInfoOf(this.#binding, this.tcpFd);
  }
}
