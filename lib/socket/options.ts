/**
 * What a KtlsSocket and its operations accept, and how those options are checked.
 * @packageDocumentation
 */
import { invalidArgType, outOfRange } from '../native/errors.js';
import type { PeerLimits } from './peer-limits.js';

/** Options of a {@link KtlsSocket}. */
export interface KtlsSocketOptions {
  /** Keep the writable side open after the peer's close_notify (default false, like `net.Socket`). */
  allowHalfOpen?: boolean;
  /**
   * Accept a TCP FIN without a preceding close_notify as a normal end of stream.
   * Default true, as node:tls does (Node's own TLS 1.3 server ends without one).
   * `false`: such an EOF destroys the socket with `ERR_KTLS_TRUNCATED`, for
   * protocols whose messages do not say where they end, where an attacker
   * cutting the connection short must not pass for its end.
   * `socket.closeNotifyReceived` says which ending a stream had. A FIN in the
   * middle of a record is an error either way.
   */
  allowTruncation?: boolean;
  /**
   * Largest plaintext per record sent (64..16384); see {@link KtlsSocket.maxRecordSize}.
   * Under kernel TX it needs `TLS_TX_MAX_PAYLOAD_LEN`: `ERR_KTLS_UNSUPPORTED` (and
   * the connection closed) on kernels without it.
   */
  maxRecordSize?: number;
  /**
   * TLS 1.3 under kernel RX: set `TLS_RX_EXPECT_NO_PAD` (Linux 6.0+; default
   * true), so the kernel decrypts each record straight into the read buffer,
   * trusting that the peer does not pad records (OpenSSL, BoringSSL, Go and
   * node:tls don't). A peer that does pad still gets correct data: the kernel
   * decrypts that record again (`TlsDecryptRetry`, `TlsRxNoPadViolation` in
   * `ktls.stats().host`). `false` leaves it off. See {@link KtlsSocket.offload}.
   */
  rxExpectNoPad?: boolean;
  /** Readable/writable high-water mark in bytes. */
  highWaterMark?: number;
  /**
   * How many KeyUpdates, empty records and TLS 1.2 warning alerts the peer may
   * send per window before it gets `unexpected_message` and the socket is
   * destroyed with `ERR_KTLS_PEER_LIMIT`. Defaults: OpenSSL's caps (32, 32, 5) per second.
   */
  peerLimits?: PeerLimits;
  /**
   * Enforce RFC 8446 §5.5 key usage limits (default true): rekey before a key
   * has protected its cipher's limit of records, or warn and close where that is
   * impossible. false is for tools and tests that install synthetic sequence
   * numbers: a real connection's sequence number counts the records its key protected.
   */
  keyUsageLimits?: boolean;
}

/** Sequence numbers of the next record in each direction (`null` where no keys are installed). */
export interface SequenceNumbers {
  /** Next record we send. */
  tx: bigint | null;
  /** Next record we expect. */
  rx: bigint | null;
}

/** Options of {@link KtlsSocket.sendFile}. */
export interface SendFileOptions {
  /** First byte of the file to send (default 0). */
  offset?: number;
  /** Bytes to send (default: to the end of the file). */
  length?: number;
}

/** Options of {@link KtlsSocket.spliceFrom} and {@link KtlsSocket.spliceTo}. */
export interface SpliceOptions {
  /** Stop after this many bytes (default: until end of input). */
  length?: number;
}

/** Validates an optional byte count or offset as Node validates its own (`ERR_INVALID_ARG_TYPE`, `ERR_OUT_OF_RANGE`). @internal */
export function checkLength(name: string, v: unknown): void {
  if (v === undefined) return;
  if (typeof v !== 'number') throw invalidArgType(`The "${name}" argument must be of type number. Received type ${typeof v}`);
  if (!Number.isSafeInteger(v) || v < 0) throw outOfRange(name, `an integer >= 0 && <= ${Number.MAX_SAFE_INTEGER}`, v);
}

/** Validates a file descriptor as Node does (an int32 >= 0), before any native call sees it. @internal */
export function checkFd(name: string, v: unknown): asserts v is number {
  if (typeof v !== 'number') throw invalidArgType(`The "${name}" argument must be of type number. Received type ${typeof v}`);
  if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw outOfRange(name, 'an integer >= 0 && <= 2147483647', v);
}

/** Which side of the record layer runs in the kernel, per direction (`KtlsSocket#kernelDirections`). */
export interface KernelDirections {
  /** The kernel seals what we send. */
  tx: boolean;
  /** The kernel opens what we receive. */
  rx: boolean;
}
