/**
 * Traffic keys from TLS secrets: TLS 1.3 HKDF-Expand-Label (RFC 8446 §7.1, §7.3)
 * and the TLS 1.2 PRF key block (RFC 5246 §5, §6.3).
 * @packageDocumentation
 */
import { createHmac } from 'node:crypto';
import { cipherSpec, type CipherName } from '../native/constants.js';
import { unpooled } from './unpooled.js';

/** Hash of a cipher suite's PRF/HKDF. */
export type SuiteHash = 'sha256' | 'sha384';

/** The TLS 1.3 suite hash of a cipher: only AES-256-GCM uses SHA-384. */
export function hashOf(cipher: CipherName): SuiteHash {
  return cipher === 'aes-256-gcm' ? 'sha384' : 'sha256';
}

/** Bytes of a `hash` output, and so of a TLS 1.3 traffic secret. */
export function hashSize(hash: SuiteHash): number {
  return hash === 'sha384' ? 48 : 32;
}

/** HKDF-Expand (RFC 5869 §2.3). */
export function hkdfExpand(hash: SuiteHash, prk: Buffer, info: Buffer, length: number): Buffer {
  const out: Buffer[] = [];
  let prev = Buffer.alloc(0);
  for (let i = 1, got = 0; got < length; i++) {
    prev = createHmac(hash, prk)
      .update(Buffer.concat([prev, info, Buffer.from([i])]))
      .digest();
    out.push(prev);
    got += prev.length;
  }
  const whole = unpooled(...out);
  for (const b of out) b.fill(0);
  return whole.length === length ? whole : whole.subarray(0, length);
}

/** HKDF-Expand-Label(secret, label, context, length) with the "tls13 " prefix. */
export function hkdfExpandLabel(hash: SuiteHash, secret: Buffer, label: string, context: Buffer, length: number): Buffer {
  const full = Buffer.from(`tls13 ${label}`, 'utf8');
  const info = Buffer.concat([Buffer.from([length >> 8, length & 0xff, full.length]), full, Buffer.from([context.length]), context]);
  return hkdfExpand(hash, secret, info, length);
}

/** TLS 1.3 write key and IV from a traffic secret. */
export function tls13Keys(cipher: CipherName, hash: SuiteHash, trafficSecret: Buffer): { key: Buffer; iv: Buffer } {
  const spec = cipherSpec(cipher);
  return {
    key: hkdfExpandLabel(hash, trafficSecret, 'key', Buffer.alloc(0), spec.keySize),
    iv: hkdfExpandLabel(hash, trafficSecret, 'iv', Buffer.alloc(0), spec.nonceSize),
  };
}

/** The next traffic secret after a KeyUpdate (RFC 8446 §7.2). */
export function nextTrafficSecret(hash: SuiteHash, secret: Buffer): Buffer {
  return hkdfExpandLabel(hash, secret, 'traffic upd', Buffer.alloc(0), secret.length);
}

/** TLS 1.2 PRF: P_hash(secret, label + seed). */
export function prf12(hash: SuiteHash, secret: Buffer, label: string, seed: Buffer, length: number): Buffer {
  const labelSeed = Buffer.concat([Buffer.from(label, 'utf8'), seed]);
  const out: Buffer[] = [];
  let a = labelSeed;
  for (let got = 0; got < length;) {
    a = createHmac(hash, secret).update(a).digest();
    const block = createHmac(hash, secret)
      .update(Buffer.concat([a, labelSeed]))
      .digest();
    out.push(block);
    got += block.length;
  }
  const whole = unpooled(...out);
  for (const b of out) b.fill(0);
  return whole.length === length ? whole : whole.subarray(0, length);
}

/**
 * TLS 1.2 AEAD write keys for both sides from the master secret. The IVs are
 * 12 bytes as the API expects: for GCM/CCM the 4-byte implicit salt followed by
 * 8 zero bytes (the caller puts the first explicit nonce there); for ChaCha20
 * the 12-byte IV.
 */
export function tls12Keys(
  cipher: CipherName,
  hash: SuiteHash,
  masterSecret: Buffer,
  clientRandom: Buffer,
  serverRandom: Buffer,
): { client: { key: Buffer; iv: Buffer }; server: { key: Buffer; iv: Buffer } } {
  const spec = cipherSpec(cipher);
  const fixedIv = spec.saltSize > 0 ? spec.saltSize : spec.nonceSize;
  const block = prf12(hash, masterSecret, 'key expansion', Buffer.concat([serverRandom, clientRandom]), 2 * spec.keySize + 2 * fixedIv);
  // Each key and IV in a buffer of its own, so wiping one wipes it all; the block is zeroed.
  const iv = (b: Buffer): Buffer => unpooled(b, Buffer.alloc(spec.nonceSize - fixedIv));
  const out = {
    client: { key: unpooled(block.subarray(0, spec.keySize)), iv: iv(block.subarray(2 * spec.keySize, 2 * spec.keySize + fixedIv)) },
    server: {
      key: unpooled(block.subarray(spec.keySize, 2 * spec.keySize)),
      iv: iv(block.subarray(2 * spec.keySize + fixedIv, 2 * spec.keySize + 2 * fixedIv)),
    },
  };
  block.fill(0);
  return out;
}

/** Maps a negotiated suite's IANA name to our cipher and its hash, or null when kTLS has no such cipher. */
export function suiteOf(standardName: string): { cipher: CipherName; hash: SuiteHash } | null {
  const hash: SuiteHash = standardName.endsWith('SHA384') ? 'sha384' : 'sha256';
  if (/AES_128_GCM/.test(standardName)) return { cipher: 'aes-128-gcm', hash };
  if (/AES_256_GCM/.test(standardName)) return { cipher: 'aes-256-gcm', hash };
  if (/CHACHA20_POLY1305/.test(standardName)) return { cipher: 'chacha20-poly1305', hash };
  if (/AES_128_CCM(?!_8)/.test(standardName)) return { cipher: 'aes-128-ccm', hash };
  return null;
}
