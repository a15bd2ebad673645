/**
 * The `tls.TLSSocket` members of a KtlsSocket that concern the session and the
 * connection rather than the stream: the local certificate, the session ticket,
 * `resetAndDestroy()`, the net.Socket members that follow from being born
 * connected, and the members that only make sense before the
 * handshake ends (each throws a typed error that says why).
 * @packageDocumentation
 */
import { X509Certificate } from 'node:crypto';
import type * as tls from 'node:tls';
import { KtlsError, KtlsSystemError, invalidArgType, outOfRange } from '../native/errors.js';
import { ticketOf } from '../record/session.js';
import { KtlsSocketBase } from './base.js';
import type { PendingStart } from './pending.js';
import type { KernelDirections } from './options.js';
import { readOffload, type Offload } from './offload.js';
import type { CipherName } from '../native/constants.js';

/** Largest and smallest `setMaxSendFragment()` sizes OpenSSL accepts (`SSL_set_max_send_fragment`). */
const SEND_FRAGMENT = { min: 512, max: 16384 } as const;

/** A member that configures a handshake, called after it: `ERR_KTLS_AFTER_HANDSHAKE`. */
function afterHandshake(member: string, instead: string): KtlsError {
  return new KtlsError('ERR_KTLS_AFTER_HANDSHAKE', `${member} configures the TLS handshake, which ended before the switch to kernel TLS; ${instead}`);
}

/** node:tls members of a KtlsSocket beyond what the handshake negotiated. */
export abstract class KtlsTlsMembers extends KtlsSocketBase {
  /** Sets the largest plaintext per record sent (the socket's own). */
  abstract setMaxRecordSize(size: number): this;
  /** Which side of the record layer runs in the kernel, per direction. */
  abstract get kernelDirections(): KernelDirections;
  /** The negotiated AEAD cipher (null where node:tls carries the records). */
  abstract get cipher(): CipherName | null;

  /**
   * What protects this connection's records, per direction, read from the
   * kernel now: `'kernel-sw'`, `'kernel-hw'` (the NIC does the crypto),
   * `'kernel'` (the kernel would not say which: some, 6.1 among them, show it only with
   * `CAP_NET_ADMIN`), `'userspace'` or `'none'`, with the `reason` where a
   * direction is not the kernel's (the `KTLS_FALLBACK` warning's), and whether
   * `TLS_TX_ZEROCOPY_RO` and `TLS_RX_EXPECT_NO_PAD` are on. Each read is one
   * sock_diag request (a netlink socket): read it when needed, not per write.
   */
  get offload(): Offload {
    return readOffload({
      binding: this.nativeBinding,
      fd: this.start ? -1 : this.fd,
      kernelDirections: this.kernelDirections,
      nodeTls: this.cipher === null && this.encrypted,
      plain: !this.encrypted,
      fallbackReason: this.fallbackReason,
    });
  }

  /** As `net.Socket#localFamily`: `'IPv4'` or `'IPv6'`. */
  get localFamily(): string | undefined {
    return this.localAddress === undefined ? undefined : this.localAddress.includes(':') ? 'IPv6' : 'IPv4';
  }

  /** As `net.Socket#pending`: true until the TCP connection is made (a socket `connect()` returned). */
  get pending(): boolean {
    return this.connecting;
  }

  /** @internal The TCP connection of a socket `connect()` returned is made (`'connect'` where net.Socket emits it). */
  tcpConnected(remote: PendingStart['remote'], local: PendingStart['local'], emit: boolean): void {
    if (!this.start || this.destroyed) return;
    Object.assign(this.start, { tcpConnected: true, remote, local });
    if (!emit) return;
    this.emit('connect');
    this.emit('ready');
  }

  /** As `net.Socket#connecting`: true until the TCP connection is made (a socket `connect()` returned). */
  get connecting(): boolean {
    return this.start !== null && !this.start.tcpConnected && !this.destroyed;
  }

  /**
   * Our own certificate as `tls.TLSSocket#getCertificate()` returns it: `{}`
   * without one, null once the socket is destroyed.
   */
  getCertificate(): tls.PeerCertificate | object | null {
    if (this.destroyed) return null;
    const der = this.tlsInfo?.certificate;
    return der ? new X509Certificate(der).toLegacyObject() : {};
  }

  /** Our own certificate as an `X509Certificate`, as `tls.TLSSocket#getX509Certificate()`; undefined without one. */
  getX509Certificate(): X509Certificate | undefined {
    const der = this.tlsInfo?.certificate;
    return der ? new X509Certificate(der) : undefined;
  }

  /**
   * The session ticket of the latest session, as `tls.TLSSocket#getTLSTicket()`
   * (client side: tickets that arrive after the switch included); undefined on
   * a server or without one.
   */
  getTLSTicket(): Buffer | undefined {
    const session = this.tlsInfo?.session;
    return session ? ticketOf(session) : undefined;
  }

  /**
   * As `net.Socket#resetAndDestroy()`: closes the TCP connection with a reset
   * (`SO_LINGER` {on, 0}, then close): the peer reads `ECONNRESET`, no
   * close_notify or FIN is sent. On a destroyed socket, destroys with
   * `ERR_SOCKET_CLOSED` as node:net does.
   */
  resetAndDestroy(): this {
    if (this.destroyed || this.fd < 0) return this.destroy(new KtlsError('ERR_SOCKET_CLOSED', 'the socket is closed'));
    const rc = this.nativeBinding.setLinger(this.tcpFd, 1, 0);
    return this.destroy(rc < 0 ? new KtlsSystemError(rc, 'setsockopt(SO_LINGER)') : undefined);
  }

  /**
   * As `tls.TLSSocket#setMaxSendFragment()`: the record size limit
   * (`setMaxRecordSize()`). Returns false for a size outside 512..16384 (as
   * OpenSSL) or where the records cannot be limited (a kernel without
   * `TLS_TX_MAX_PAYLOAD_LEN`, records node:tls carries).
   */
  setMaxSendFragment(size: number): boolean {
    if (typeof size !== 'number') throw invalidArgType(`The "size" argument must be of type number. Received ${typeof size}`);
    // node:tls's validateInt32: a fraction, NaN, Infinity or a size past int32 is a RangeError, not false.
    if (!Number.isInteger(size) || size < -(2 ** 31) || size >= 2 ** 31) throw outOfRange('size', 'an integer >= -2147483648 && <= 2147483647', size);
    if (size < SEND_FRAGMENT.min || size > SEND_FRAGMENT.max) return false;
    try {
      this.setMaxRecordSize(size);
      return true;
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ERR_KTLS_UNSUPPORTED') return false;
      throw err;
    }
  }

  /** Renegotiation is already refused after the switch (a no_renegotiation warning, as OpenSSL's); nothing to disable. */
  disableRenegotiation(): void {
    // HelloRequest/ClientHello after the handshake are answered with no_renegotiation by the read path.
  }

  /** The session is fixed by the handshake. Always throws `ERR_KTLS_AFTER_HANDSHAKE`. */
  setSession(_session: string | Buffer): never {
    throw afterHandshake('setSession()', 'pass the session to ktls.connect({ session }) instead');
  }

  /** SNI was sent in the ClientHello. Always throws `ERR_KTLS_AFTER_HANDSHAKE` (`ERR_INVALID_ARG_TYPE` for a non-string). */
  setServername(name: string): never {
    if (typeof name !== 'string') throw invalidArgType(`The "name" argument must be of type string. Received ${typeof name}`);
    throw afterHandshake('setServername()', 'pass servername to ktls.connect() instead');
  }

  /** Certificates are exchanged in the handshake. Always throws `ERR_KTLS_AFTER_HANDSHAKE`. */
  setKeyCert(_context: tls.SecureContext | tls.SecureContextOptions): never {
    throw afterHandshake('setKeyCert()', 'choose the certificate in the server options or SNICallback');
  }

  /** OpenSSL no longer sees this connection's records: nothing to trace. Always throws `ERR_KTLS_UNSUPPORTED`. */
  enableTrace(): never {
    throw new KtlsError('ERR_KTLS_UNSUPPORTED', 'enableTrace() traces OpenSSL, which no longer handles this connection after the switch to kernel TLS');
  }
}
