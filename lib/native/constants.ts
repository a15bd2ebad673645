/**
 * Cipher and protocol constants. Numbers come from the addon (and so from
 * `<linux/tls.h>`); this module only names them.
 * @packageDocumentation
 */
import { requireBinding, type NativeCipher, type NativeConstants } from './binding.js';

/** TLS versions kTLS supports. */
export type TlsVersion = 'TLSv1.2' | 'TLSv1.3';
/** Ciphers this package supports, named as `node:crypto` names them. */
export type CipherName = 'aes-128-gcm' | 'aes-256-gcm' | 'chacha20-poly1305' | 'aes-128-ccm';

/** Every supported version. */
export const VERSIONS: readonly TlsVersion[] = ['TLSv1.2', 'TLSv1.3'];
/** Every supported cipher. */
export const CIPHER_NAMES: readonly CipherName[] = ['aes-128-gcm', 'aes-256-gcm', 'chacha20-poly1305', 'aes-128-ccm'];

/** A cipher's kernel id and field sizes, plus its name. */
export interface CipherSpec extends NativeCipher {
  readonly name: CipherName;
  /** salt + iv: the 12-byte per-direction nonce base the API calls `iv`. */
  readonly nonceSize: number;
}

function native(): { constants: NativeConstants; ciphers: Readonly<Record<string, NativeCipher>> } {
  return requireBinding();
}

/** The addon's numeric constants; throws `ERR_KTLS_UNAVAILABLE` where the addon cannot load. */
export function constants(): NativeConstants {
  return native().constants;
}

/** Field sizes of a supported cipher; throws `ERR_KTLS_UNAVAILABLE` where the addon cannot load. */
export function cipherSpec(name: CipherName): CipherSpec {
  const c = native().ciphers[name];
  if (!c) throw new RangeError(`unknown cipher ${name}`);
  return { ...c, name, nonceSize: c.saltSize + c.ivSize };
}

/** The kernel's version number (`TLS_1_2_VERSION` / `TLS_1_3_VERSION`). */
export function versionNumber(version: TlsVersion): number {
  const k = constants();
  return version === 'TLSv1.2' ? k.TLS_1_2_VERSION : k.TLS_1_3_VERSION;
}
