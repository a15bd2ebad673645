/**
 * Typed errors. Every error has a stable `code`; syscall failures also carry
 * `errno` (negative, as Node's own) and `syscall`.
 * @packageDocumentation
 */
import * as os from 'node:os';
import * as util from 'node:util';

/** Base class of every error this package throws. */
export class KtlsError extends Error {
  /** Stable machine-readable code, e.g. `ERR_KTLS_UNAVAILABLE`. */
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The kernel has no kTLS (the `tls` ULP or the requested cipher is missing) or this is not Linux. */
export class KtlsUnavailableError extends KtlsError {
  /** The errno that said so, when a syscall did (e.g. -2 for ENOENT). */
  readonly errno?: number;
  /** The syscall that failed, when one did. */
  readonly syscall?: string;
  /** What the operator can do about it. */
  readonly hint: string;
  constructor(message: string, details: { errno?: number; syscall?: string; cause?: unknown; hint?: string } = {}) {
    const hint =
      details.hint ??
      (process.platform === 'linux'
        ? 'load the kernel module with `modprobe tls` (CONFIG_TLS), or use { fallback: "userspace" }'
        : `kernel TLS is Linux-only, and on ${process.platform} ktls installs without its native addon`);
    super('ERR_KTLS_UNAVAILABLE', `${message}; ${hint}`, { cause: details.cause });
    if (details.errno !== undefined) this.errno = details.errno;
    if (details.syscall !== undefined) this.syscall = details.syscall;
    this.hint = hint;
  }
}

/** A syscall failed; shaped like Node's own system errors. */
export class KtlsSystemError extends KtlsError {
  /** Negative errno, as in Node (`-104` for ECONNRESET). */
  readonly errno: number;
  /** The syscall, e.g. `setsockopt(TLS_TX)`. */
  readonly syscall: string;
  constructor(errno: number, syscall: string, context?: string) {
    const name = errnoName(errno);
    super(name, `${syscall} failed: ${name} (${describe(errno)})${context ? `: ${context}` : ''}`);
    this.errno = errno;
    this.syscall = syscall;
  }
}

/** Codes of a {@link KtlsAlertError} we raise (the peer's alerts are `ERR_KTLS_ALERT`): a bad record, a protocol violation, a post-handshake CertificateRequest. */
export type AlertErrorCode = 'ERR_KTLS_BAD_RECORD' | 'ERR_KTLS_PROTOCOL' | 'ERR_KTLS_POST_HANDSHAKE_AUTH' | 'ERR_KTLS_PEER_LIMIT';

/** The peer sent a fatal alert, or we sent one because a record failed. */
export class KtlsAlertError extends KtlsError {
  /** The alert's RFC 8446 name, e.g. `bad_record_mac`. */
  readonly alert: string;
  /** The alert's numeric description. */
  readonly alertCode: number;
  /** True when we detected the problem (and owe the peer the alert); false when the peer sent it. */
  readonly local: boolean;
  /**
   * For a local error: whether the alert reached the socket. Kernels refuse every
   * send once kTLS RX has failed to authenticate a record, so this can be false.
   */
  alertSent: boolean;
  /** `code` for a local alert: `ERR_KTLS_BAD_RECORD` (default) for a record that failed, `ERR_KTLS_PROTOCOL` for a message that broke the protocol. */
  constructor(alertCode: number, local: boolean, message?: string, code?: AlertErrorCode) {
    const alert = alertName(alertCode);
    super(local ? (code ?? 'ERR_KTLS_BAD_RECORD') : 'ERR_KTLS_ALERT', message ?? (local ? `fatal alert ${alert}` : `peer sent fatal alert ${alert}`));
    this.alert = alert;
    this.alertCode = alertCode;
    this.local = local;
    this.alertSent = false;
  }
}

/** Why a rekey could not be done: the kernel lacks it, or the secrets are unknown. */
export class KtlsRekeyError extends KtlsError {
  /** errno of the refused setsockopt, when the kernel refused. */
  readonly errno: number | undefined;
  /** The syscall that refused. */
  readonly syscall: string | undefined;
  constructor(code: string, message: string, errno?: number, syscall?: string) {
    super(code, message);
    this.errno = errno;
    this.syscall = syscall;
  }
}

/** `errno` name for a negative errno, e.g. -2 -> `ENOENT`. */
export function errnoName(errno: number): string {
  // libuv's table lacks some Linux errnos kTLS uses (EBADMSG, EKEYEXPIRED); os.constants has them.
  const own = ERRNO_NAMES.get(-errno);
  if (own) return own;
  try {
    return util.getSystemErrorName(errno);
  } catch {
    return `E${-errno}`;
  }
}

const ERRNO_NAMES = new Map(Object.entries(os.constants.errno).map(([name, n]) => [n, name]));

/** @internal Names errnos node:os lacks (EKEYEXPIRED): the addon reports their numbers when it loads. */
export function registerErrnoName(name: string, errno: number): void {
  if (errno > 0 && !ERRNO_NAMES.has(errno)) ERRNO_NAMES.set(errno, name);
}

function describe(errno: number): string {
  const entry = util.getSystemErrorMap().get(errno);
  return entry ? entry[1] : `errno ${-errno}`;
}

/** Node's own error for a handshake (here also: a switch to the kernel) that took too long: `ERR_TLS_HANDSHAKE_TIMEOUT`. */
export function handshakeTimeout(): KtlsError {
  return new KtlsError('ERR_TLS_HANDSHAKE_TIMEOUT', 'TLS handshake timeout');
}

/** A `TypeError` with a Node-style `code`, for bad argument types. */
export function invalidArgType(message: string): TypeError & { code: string } {
  return Object.assign(new TypeError(message), { code: 'ERR_INVALID_ARG_TYPE' });
}

/** A `RangeError` with a Node-style `code`, for bad sizes and values. */
export function invalidArgValue(message: string): RangeError & { code: string } {
  return Object.assign(new RangeError(message), { code: 'ERR_INVALID_ARG_VALUE' });
}

/** A `RangeError` with code `ERR_OUT_OF_RANGE` worded as Node's own: `The value of "name" is out of range. It must be …`. */
export function outOfRange(name: string, range: string, received: unknown): RangeError & { code: string } {
  return Object.assign(new RangeError(`The value of "${name}" is out of range. It must be ${range}. Received ${String(received)}`), {
    code: 'ERR_OUT_OF_RANGE',
  });
}

/** Throws a {@link KtlsSystemError} when a native result is a negative errno. */
export function check(rc: number, syscall: string, context?: string): number {
  if (rc < 0) throw new KtlsSystemError(rc, syscall, context);
  return rc;
}

/** The errno constant (positive) for a name, e.g. `EAGAIN` -> 11. */
export function errnoOf(name: keyof typeof os.constants.errno): number {
  return os.constants.errno[name];
}

const ALERTS: Readonly<Record<number, string>> = {
  0: 'close_notify',
  10: 'unexpected_message',
  20: 'bad_record_mac',
  22: 'record_overflow',
  40: 'handshake_failure',
  42: 'bad_certificate',
  43: 'unsupported_certificate',
  44: 'certificate_revoked',
  45: 'certificate_expired',
  46: 'certificate_unknown',
  47: 'illegal_parameter',
  48: 'unknown_ca',
  49: 'access_denied',
  50: 'decode_error',
  51: 'decrypt_error',
  70: 'protocol_version',
  71: 'insufficient_security',
  80: 'internal_error',
  86: 'inappropriate_fallback',
  90: 'user_canceled',
  100: 'no_renegotiation',
  109: 'missing_extension',
  110: 'unsupported_extension',
  112: 'unrecognized_name',
  113: 'bad_certificate_status_response',
  115: 'unknown_psk_identity',
  116: 'certificate_required',
  120: 'no_application_protocol',
};

/** RFC 8446 §6 alert description codes by name. */
export const ALERT = {
  close_notify: 0,
  unexpected_message: 10,
  bad_record_mac: 20,
  record_overflow: 22,
  illegal_parameter: 47,
  decode_error: 50,
  protocol_version: 70,
  internal_error: 80,
  user_canceled: 90,
  no_renegotiation: 100,
} as const;

/** RFC 8446 / RFC 5246 name of an alert description, or `alert_<n>`. */
export function alertName(code: number): string {
  return ALERTS[code] ?? `alert_${code}`;
}
