/**
 * What a KtlsSocket shares with `tls.TLSSocket` and `net.Socket` beyond the
 * stream itself: what the handshake negotiated, and the connection controls
 * servers and frameworks call (timeouts, keep-alive, destroySoon).
 * @packageDocumentation
 */
import { Duplex, type DuplexOptions } from 'node:stream';
import type * as tls from 'node:tls';
import { loadBinding } from './binding.js';
import { KtlsSystemError, invalidArgValue } from './errors.js';
import type { HandshakeTcp, TlsInfo } from './handshake.js';

/** The node:tls-like and net-like surface of a KtlsSocket. */
export abstract class KtlsSocketBase extends Duplex {
  /** Always true, as on `tls.TLSSocket`: frameworks read it for `req.protocol`/`req.secure`. */
  readonly encrypted = true;
  /** Negotiated TLS version (`'TLSv1.2'` or `'TLSv1.3'`). */
  abstract readonly version: string;
  /** The connection's fd (-1 once closed). */
  abstract get fd(): number;
  /** @internal The TCP connection's fd, for TCP options. */
  abstract get tcpFd(): number;

  #tls: TlsInfo | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: DuplexOptions) {
    super(options);
    this.once('close', () => clearTimeout(this.#timer));
  }

  /** @internal Called by the handshake hand-over with what node:tls knew. */
  attachTlsInfo(info: TlsInfo): void {
    this.#tls = info;
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

  /** The peer certificate (with its chain) as `tls.TLSSocket#getPeerCertificate(true)` returned it at the switch. */
  getPeerCertificate(): tls.DetailedPeerCertificate | Record<string, never> {
    return this.#tls?.peerCertificate ?? {};
  }

  /** The TLS session (for `tls.connect({ session })`), or undefined. Updated by later `'session'` events. */
  getSession(): Buffer | undefined {
    return this.#tls?.session;
  }

  /** Whether the handshake resumed a session. */
  isSessionReused(): boolean {
    return this.#tls?.sessionReused ?? false;
  }

  /** The negotiated protocol, as `tls.TLSSocket#getProtocol()`. */
  getProtocol(): string | null {
    return this.#tls?.protocol ?? this.version;
  }

  /** The negotiated cipher suite, as `tls.TLSSocket#getCipher()`. */
  getCipher(): tls.CipherNameAndProtocol | undefined {
    return this.#tls?.cipher;
  }

  /**
   * As `net.Socket#setTimeout`: emits `'timeout'` (once, without destroying)
   * after `msecs` with no data read or written; `0` disables it. The timer does
   * not keep the process alive.
   */
  setTimeout(msecs: number, callback?: () => void): this {
    if (typeof msecs !== 'number' || !(msecs >= 0) || !Number.isFinite(msecs)) throw invalidArgValue(`Expected a non-negative number for msecs but received ${String(msecs)}`);
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (msecs === 0) {
      if (callback) this.removeListener('timeout', callback);
      return this;
    }
    if (callback) this.once('timeout', callback);
    if (!this.destroyed) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.emit('timeout');
      }, msecs);
      this.#timer.unref();
    }
    return this;
  }

  /** Restarts the idle timer; called on every read and every accepted write. */
  protected activity(): void {
    this.#timer?.refresh();
  }

  /** As `net.Socket#setKeepAlive`: `SO_KEEPALIVE`, and `TCP_KEEPIDLE` from `initialDelay` ms when given. */
  setKeepAlive(enable = false, initialDelay = 0): this {
    const b = loadBinding().binding;
    if (!b || this.fd < 0) return this;
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
}
