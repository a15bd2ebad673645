/**
 * What the handshake negotiated and the TCP counters around it, as a KtlsSocket
 * reports them: the types `tls.TLSSocket`'s getters answer from.
 * @packageDocumentation
 */
import type * as tls from 'node:tls';
import type { Binding, NativeTcpInfo } from '../native/binding.js';
import { constants } from '../native/constants.js';
import { KtlsSystemError } from '../native/errors.js';
import type { KeyingExporter } from '../record/exporter.js';

/** TCP_INFO counters of a connection at the switch to kTLS. */
export interface HandshakeTcp {
  /** Segments sent (SYN/SYN-ACK and pure ACKs included). */
  segmentsOut: number;
  /** Segments received. */
  segmentsIn: number;
  /** Segments sent that carried data: the handshake flights. */
  dataSegmentsOut: number;
}

/** What node:tls knew about the session, kept for the KtlsSocket. */
export interface TlsInfo {
  /** TCP segments each way up to the switch (from `TCP_INFO`), when the kernel reports them. */
  handshakeTcp?: HandshakeTcp;
  /** Negotiated ALPN protocol, or false. */
  alpnProtocol: string | false | null;
  /** SNI server name (server side: what the client asked for). */
  servername: string | false | null | undefined;
  /** Whether the peer certificate was verified. */
  authorized: boolean;
  /** Why it was not, if it was not. */
  authorizationError: Error | null;
  /** `getPeerCertificate(true)` at the switch. */
  peerCertificate: tls.DetailedPeerCertificate | Record<string, never>;
  /** `getFinished()` / `getPeerFinished()`: the Finished messages' verify_data. */
  finished?: Buffer | undefined;
  peerFinished?: Buffer | undefined;
  /** `getEphemeralKeyInfo()`. */
  ephemeralKeyInfo?: tls.EphemeralKeyInfo | object | null;
  /** `getSharedSigalgs()`. */
  sharedSigalgs?: string[];
  /** Keying material exporter (RFC 5705 / RFC 8446 §7.5); wiped at close. */
  exporter?: KeyingExporter;
  /** `getSession()` at the switch (client side; a server keeps none); later `'session'` events replace it. */
  session: Buffer | undefined;
  /** Our own certificate (DER), for `getCertificate()`/`getX509Certificate()`; undefined without one. */
  certificate?: Buffer | undefined;
  /** `isSessionReused()`. */
  sessionReused: boolean;
  /** `getProtocol()`. */
  protocol: string | null;
  /** `getCipher()`. */
  cipher: tls.CipherNameAndProtocol;
}

/** `TCP_INFO` as `getTcpInfo()` reports it. */
export interface TcpInfo extends NativeTcpInfo {
  /** The SYN carried data (TCP Fast Open), sent or received. */
  readonly synData: boolean;
}

/** `TCP_INFO` of a TCP fd. @internal */
export function tcpInfoOf(binding: Binding, fd: number): TcpInfo {
  const info = binding.tcpInfo(fd);
  if (typeof info === 'number') throw new KtlsSystemError(info, 'getsockopt(TCP_INFO)');
  return { ...info, synData: (info.options & constants().TCPI_OPT_SYN_DATA) !== 0 };
}
