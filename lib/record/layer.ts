/**
 * A userspace TLS record layer on `node:crypto`, byte-exact with what the Linux
 * kernel's software kTLS (net/tls/tls_sw.c) puts on the wire. It is the
 * fallback where the kernel has no kTLS, the independent reference tests check
 * the kernel's bytes against, and the way to open records that were read from
 * a socket before the kernel had its keys.
 * @packageDocumentation
 */
import * as crypto from 'node:crypto';
import { CIPHER_NAMES, VERSIONS, cipherSpec, constants, type CipherName, type CipherSpec, type TlsVersion } from '../native/constants.js';
import { ALERT, KtlsAlertError, KtlsError, invalidArgType, invalidArgValue } from '../native/errors.js';
import { unpooled } from './unpooled.js';

/** One direction's traffic keys, as the kernel takes them. */
export interface DirectionKeys {
  /** The AEAD key: `cipherSpec(cipher).keySize` bytes. */
  key: Buffer;
  /** 12 bytes: salt(4) + nonce(8) for AES-GCM/CCM, the whole nonce base for ChaCha20-Poly1305. */
  iv: Buffer;
  /** Sequence number of the first record, in [0, 2^64). */
  seq: bigint;
}

/** A record opened by {@link RecordOpener.next}. */
export interface OpenedRecord {
  /** Content type (20..23); for TLS 1.3 the inner type. */
  type: number;
  /** The plaintext, without TLS 1.3's type byte and padding. */
  data: Buffer;
}

const HEADER_SIZE = 5;
const LEGACY_VERSION = 0x0303; // both versions put TLS 1.2's number in the header
const SEQ_END = 1n << 64n;
// An empty view with a real data pointer: given a NULL one, OpenSSL's CCM skips the
// payload step, then cannot make the tag, or accepts any tag when opening
// (nodejs/node#62342, openssl/openssl#32253).
const EMPTY = Buffer.alloc(1).subarray(0, 0);

type AeadCipher = crypto.CipherGCM | crypto.CipherCCM | crypto.CipherChaCha20Poly1305;
type AeadDecipher = crypto.DecipherGCM | crypto.DecipherCCM | crypto.DecipherChaCha20Poly1305;

function uintBytes(value: bigint, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = size - 1; i >= 0; i--, value >>= 8n) out[i] = Number(value & 0xffn);
  return out;
}

const header = (type: number, length: number): Buffer => Buffer.from([type, LEGACY_VERSION >> 8, LEGACY_VERSION & 0xff, length >> 8, length & 0xff]);
const alert = (code: number): KtlsAlertError => new KtlsAlertError(code, true);
/** Smallest record size limit RFC 8449 allows. */
export const MIN_RECORD_SIZE = 64;

/** Validates a record size limit (RFC 8449: 64 to 2^14 bytes of plaintext); `name` is the option named in the error. */
export function checkRecordSize(size: number, name: string): void {
  const max = constants().MAX_PLAINTEXT;
  if (typeof size !== 'number' || !Number.isInteger(size) || size < MIN_RECORD_SIZE || size > max)
    throw invalidArgValue(`Expected an integer from ${MIN_RECORD_SIZE} to ${max} for ${name} but received ${String(size)}`);
}

const exhausted = (): KtlsError => new KtlsError('ERR_KTLS_SEQ_EXHAUSTED', 'the record sequence number would pass 2^64 - 1; rekey the connection');

/** Keys and nonce rules of one direction; shared by the sealer and the opener. */
class Protection {
  readonly spec: CipherSpec;
  readonly tls13: boolean;
  readonly explicitSize: number; // TLS 1.2 AES-GCM/CCM only (RFC 5288, RFC 6655)
  readonly tagSize: number;
  seq: bigint;
  readonly #key: Buffer;
  readonly #iv: Buffer;
  #nonce: Buffer | null = null;
  #wiped = false;

  constructor(version: TlsVersion, cipher: CipherName, keys: DirectionKeys) {
    if (!VERSIONS.includes(version)) throw invalidArgValue(`Expected version to be one of ${VERSIONS.join(', ')} but received ${String(version)}`);
    if (!CIPHER_NAMES.includes(cipher)) throw invalidArgValue(`Expected cipher to be one of ${CIPHER_NAMES.join(', ')} but received ${String(cipher)}`);
    this.spec = cipherSpec(cipher);
    for (const [name, size] of [
      ['key', this.spec.keySize],
      ['iv', this.spec.nonceSize],
    ] as const) {
      const b: unknown = keys[name];
      if (!Buffer.isBuffer(b)) throw invalidArgType(`Expected a Buffer for ${name}`);
      if (b.length !== size) throw invalidArgValue(`Expected a ${size}-byte Buffer for ${name} but received ${b.length} bytes`);
    }
    if (typeof keys.seq !== 'bigint') throw invalidArgType('Expected a bigint for seq');
    if (keys.seq < 0n || keys.seq >= SEQ_END) throw invalidArgValue(`Expected seq in [0, 2^64) but received ${keys.seq}`);
    this.tls13 = version === 'TLSv1.3';
    this.explicitSize = !this.tls13 && cipher !== 'chacha20-poly1305' ? this.spec.ivSize : 0;
    this.tagSize = this.spec.tagSize;
    this.seq = keys.seq;
    this.#key = unpooled(keys.key);
    this.#iv = unpooled(keys.iv);
  }

  wipe(): void {
    this.#key.fill(0);
    this.#iv.fill(0);
    this.#nonce?.fill(0);
    this.#wiped = true;
  }

  /** Replaces the key and iv (same sizes) and the sequence number: TLS 1.3 KeyUpdate. */
  rekey(keys: DirectionKeys): void {
    if (keys.key.length !== this.#key.length || keys.iv.length !== this.#iv.length) throw invalidArgValue('Expected new keys of the same sizes');
    this.#key.set(keys.key);
    this.#iv.set(keys.iv);
    this.seq = keys.seq;
    this.#wiped = false;
  }

  /** Throws once wiped: sealing under an all-zero key would send readable data. */
  check(): void {
    if (this.#wiped) throw new KtlsError('ERR_KTLS_WIPED', 'the keys of this record layer have been wiped');
  }

  /** The kernel's first TLS 1.2 explicit nonce: the iv's bytes after the salt. */
  initialExplicit(): bigint {
    return this.#iv.subarray(this.spec.saltSize).reduce((v, b) => (v << 8n) | BigInt(b), 0n);
  }

  /**
   * TLS 1.2 AES-GCM/CCM: salt || explicit nonce. TLS 1.3 and ChaCha20-Poly1305
   * (RFC 8446 §5.3, RFC 7905): iv XOR the left-padded sequence number. In one unpooled
   * buffer per layer, overwritten per record (the cipher copies it) and zeroed by wipe().
   */
  nonce(seq: bigint, explicit?: Buffer): Buffer {
    const n = (this.#nonce ??= Buffer.allocUnsafeSlow(this.#iv.length));
    if (explicit) {
      this.#iv.copy(n, 0, 0, this.spec.saltSize);
      return n.subarray(0, this.spec.saltSize + explicit.copy(n, this.spec.saltSize));
    }
    this.#iv.copy(n);
    const s = uintBytes(seq, this.spec.recSeqSize);
    for (let i = 0; i < s.length; i++) n[n.length - s.length + i] ^= s[i];
    return n;
  }

  /** TLS 1.2 AAD (RFC 5246 §6.2.3.3): seq || type || version || plaintext length. */
  aad12(seq: bigint, type: number, plaintextLength: number): Buffer {
    return Buffer.concat([uintBytes(seq, this.spec.recSeqSize), header(type, plaintextLength)]);
  }

  encrypt(nonce: Buffer, aad: Buffer, plaintext: Buffer): Buffer[] {
    const options = { authTagLength: this.tagSize };
    const c: AeadCipher =
      this.spec.name === 'aes-128-ccm'
        ? crypto.createCipheriv(this.spec.name, this.#key, nonce, options)
        : this.spec.name === 'chacha20-poly1305'
          ? crypto.createCipheriv(this.spec.name, this.#key, nonce, options)
          : crypto.createCipheriv(this.spec.name, this.#key, nonce, options);
    c.setAAD(aad, { plaintextLength: plaintext.length });
    return [c.update(plaintext.length > 0 ? plaintext : EMPTY), c.final(), c.getAuthTag()];
  }

  /** The plaintext, or null when authentication fails. */
  decrypt(nonce: Buffer, aad: Buffer, ciphertext: Buffer, tag: Buffer): Buffer | null {
    const options = { authTagLength: this.tagSize };
    try {
      const d: AeadDecipher =
        this.spec.name === 'aes-128-ccm'
          ? crypto.createDecipheriv(this.spec.name, this.#key, nonce, options)
          : this.spec.name === 'chacha20-poly1305'
            ? crypto.createDecipheriv(this.spec.name, this.#key, nonce, options)
            : crypto.createDecipheriv(this.spec.name, this.#key, nonce, options);
      d.setAuthTag(tag);
      d.setAAD(aad, { plaintextLength: ciphertext.length });
      const out = d.update(ciphertext.length > 0 ? ciphertext : EMPTY);
      d.final();
      return out;
    } catch {
      return null;
    }
  }
}

/** Seals plaintext into TLS records exactly as the kernel's TLS_TX does. */
export class RecordSealer {
  readonly #p: Protection;
  #explicit: bigint; // TLS 1.2 AES-GCM/CCM: the next record's explicit nonce

  /** Copies `keys.key` and `keys.iv`; throws `ERR_INVALID_ARG_VALUE` on wrong sizes or a seq outside [0, 2^64). */
  constructor(version: TlsVersion, cipher: CipherName, keys: DirectionKeys) {
    this.#p = new Protection(version, cipher, keys);
    this.#explicit = this.#p.initialExplicit();
  }

  /** Sequence number of the next record (2^64 once the last one has been used). */
  get seq(): bigint {
    return this.#p.seq;
  }

  /** Switches to new keys from sequence `keys.seq` (TLS 1.3 KeyUpdate); the copies are taken. */
  rekey(keys: DirectionKeys): void {
    this.#p.rekey(keys);
    this.#explicit = this.#p.initialExplicit();
  }

  /**
   * Seals `data` as records of content type `type` (20..23), each with at most
   * `maxPlaintext` bytes (default 16384); empty data gives one empty record.
   * Returns complete records (5-byte header + ciphertext + tag), one Buffer per
   * record. Throws `ERR_KTLS_SEQ_EXHAUSTED`, sealing nothing, when the records
   * would need a sequence number past 2^64 - 1.
   */
  seal(type: number, data: Buffer, maxPlaintext?: number): Buffer[] {
    const k = constants();
    const p = this.#p;
    p.check();
    if (!Buffer.isBuffer(data)) throw invalidArgType('Expected a Buffer for data');
    if (!Number.isInteger(type) || type < k.RECORD_CHANGE_CIPHER_SPEC || type > k.RECORD_APPLICATION_DATA)
      throw invalidArgValue(`Expected a record type in [${k.RECORD_CHANGE_CIPHER_SPEC}, ${k.RECORD_APPLICATION_DATA}] but received ${type}`);
    // RFC 8446 §5: TLS 1.3 never protects change_cipher_spec, and peers reject it.
    if (p.tls13 && type === k.RECORD_CHANGE_CIPHER_SPEC) throw invalidArgValue('TLS 1.3 sends change_cipher_spec only unprotected');
    const max = maxPlaintext ?? k.MAX_PLAINTEXT;
    if (!Number.isInteger(max) || max < 1 || max > k.MAX_PLAINTEXT)
      throw invalidArgValue(`Expected maxPlaintext in [1, ${k.MAX_PLAINTEXT}] but received ${max}`);
    const count = Math.max(1, Math.ceil(data.length / max));
    if (p.seq + BigInt(count) > SEQ_END) throw exhausted();

    const records: Buffer[] = [];
    for (let i = 0; i === 0 || i < data.length; i += max, p.seq++) {
      const chunk = data.subarray(i, i + max);
      records.push(p.tls13 ? this.#seal13(k.RECORD_APPLICATION_DATA, type, chunk) : this.#seal12(type, chunk));
    }
    return records;
  }

  /** Overwrites this sealer's copies of the key and iv with zeros; later seal() calls throw `ERR_KTLS_WIPED`. */
  wipe(): void {
    this.#p.wipe();
  }

  #seal13(outerType: number, type: number, chunk: Buffer): Buffer {
    const p = this.#p;
    const inner = Buffer.concat([chunk, Buffer.of(type)]); // no padding, as the kernel
    const h = header(outerType, inner.length + p.tagSize);
    return Buffer.concat([h, ...p.encrypt(p.nonce(p.seq), h, inner)]);
  }

  #seal12(type: number, chunk: Buffer): Buffer {
    const p = this.#p;
    const aad = p.aad12(p.seq, type, chunk.length);
    const h = header(type, p.explicitSize + chunk.length + p.tagSize);
    if (p.explicitSize === 0) return Buffer.concat([h, ...p.encrypt(p.nonce(p.seq), aad, chunk)]);
    // The kernel does not derive the explicit nonce from the sequence number: it
    // sends the iv's last 8 bytes and increments them per record, wrapping mod 2^64
    // (tls_fill_prepend / tls_advance_record_sn).
    const explicit = uintBytes(this.#explicit, p.explicitSize);
    this.#explicit = (this.#explicit + 1n) % (1n << BigInt(8 * p.explicitSize));
    return Buffer.concat([h, explicit, ...p.encrypt(p.nonce(p.seq, explicit), aad, chunk)]);
  }
}

/** Opens TLS records from raw wire bytes, accepting what the kernel's TLS_RX accepts. */
export class RecordOpener {
  readonly #p: Protection;
  #chunks: Buffer[] = [];
  #total = 0;
  #failure: KtlsError | null = null;

  /** Copies `keys.key` and `keys.iv`; throws `ERR_INVALID_ARG_VALUE` on wrong sizes or a seq outside [0, 2^64). */
  constructor(version: TlsVersion, cipher: CipherName, keys: DirectionKeys) {
    this.#p = new Protection(version, cipher, keys);
  }

  /** Sequence number of the next record to open. */
  get seq(): bigint {
    return this.#p.seq;
  }

  /** Switches to new keys from sequence `keys.seq` (TLS 1.3 KeyUpdate) for the records after the current one. */
  rekey(keys: DirectionKeys): void {
    this.#p.rekey(keys);
  }

  /** Appends raw wire bytes, in any chunking; they are copied. */
  push(bytes: Buffer): void {
    if (!Buffer.isBuffer(bytes)) throw invalidArgType('Expected a Buffer for bytes');
    if (bytes.length === 0) return;
    this.#chunks.push(Buffer.from(bytes));
    this.#total += bytes.length;
  }

  /** Raw bytes held that are not yet a complete record (complete records waiting for {@link next} are not counted). */
  get buffered(): number {
    return this.#total - this.#tail().start;
  }

  /**
   * Bytes still needed to complete the record currently buffered: 0 when the
   * buffer is empty (at a record boundary); when fewer than 5 header bytes are
   * held, the header bytes missing; otherwise the remaining bytes of that record.
   * Complete records waiting for {@link next} are skipped, so 0 means the held
   * bytes end exactly at a record boundary.
   */
  needed(): number {
    return this.#tail().missing;
  }

  /**
   * Opens the next complete record, or returns null if none is complete.
   * Throws `KtlsAlertError` (code `ERR_KTLS_BAD_RECORD`) for a record that fails:
   * `bad_record_mac`, `record_overflow`, `unexpected_message` or `decode_error`;
   * after any throw the opener stays failed and every later call throws the same error.
   */
  next(): OpenedRecord | null {
    if (this.#failure) throw this.#failure;
    this.#p.check();
    try {
      return this.#open();
    } catch (err) {
      if (err instanceof KtlsError) this.#failure = err;
      throw err;
    }
  }

  /** Overwrites this opener's copies of the key and iv with zeros and drops buffered bytes; later next() calls throw `ERR_KTLS_WIPED`. */
  wipe(): void {
    this.#p.wipe();
    this.#chunks = [];
    this.#total = 0;
  }

  #open(): OpenedRecord | null {
    const k = constants();
    const p = this.#p;
    if (this.#total < HEADER_SIZE) return null;
    const h = this.#peek(HEADER_SIZE);
    const type = h[0];
    const length = h.readUInt16BE(3);
    // RFC 8446 §5: a peer may send the unencrypted compatibility ChangeCipherSpec.
    if (p.tls13 && type === k.RECORD_CHANGE_CIPHER_SPEC) {
      if (length !== 1 || h.readUInt16BE(1) !== LEGACY_VERSION) throw alert(ALERT.unexpected_message);
      if (this.#total < HEADER_SIZE + 1) return null;
      const body = this.#take(HEADER_SIZE + 1).subarray(HEADER_SIZE);
      if (body[0] !== 1) throw alert(ALERT.unexpected_message);
      return { type, data: body };
    }
    // Same checks, in the same order, as the kernel's tls_rx_msg_size(): the
    // limit is 2^14 plaintext bytes (+1 type byte for TLS 1.3) plus overhead,
    // which also keeps every record within RFC 8446's 2^14 + 256.
    const overhead = p.explicitSize + p.tagSize;
    if (length > k.MAX_PLAINTEXT + overhead + (p.tls13 ? 1 : 0)) throw alert(ALERT.record_overflow);
    if (length < overhead) throw alert(ALERT.bad_record_mac);
    if (h.readUInt16BE(1) !== LEGACY_VERSION) throw alert(p.tls13 ? ALERT.decode_error : ALERT.protocol_version);
    if (p.tls13 ? type !== k.RECORD_APPLICATION_DATA : type < k.RECORD_CHANGE_CIPHER_SPEC || type > k.RECORD_APPLICATION_DATA)
      throw alert(ALERT.unexpected_message);
    if (this.#total < HEADER_SIZE + length) return null;
    if (p.seq >= SEQ_END) throw exhausted();

    const record = this.#take(HEADER_SIZE + length);
    const body = record.subarray(HEADER_SIZE + p.explicitSize, record.length - p.tagSize);
    const tag = record.subarray(record.length - p.tagSize);
    const nonce = p.nonce(p.seq, p.explicitSize > 0 ? record.subarray(HEADER_SIZE, HEADER_SIZE + p.explicitSize) : undefined);
    const aad = p.tls13 ? record.subarray(0, HEADER_SIZE) : p.aad12(p.seq, type, body.length);
    const plain = p.decrypt(nonce, aad, body, tag);
    if (!plain) throw alert(ALERT.bad_record_mac);
    p.seq++;
    if (!p.tls13) return { type, data: plain };

    // RFC 8446 §5.4: strip zero padding; the last non-zero byte is the real type.
    let end = plain.length - 1;
    while (end >= 0 && plain[end] === 0) end--;
    if (end < 0) throw alert(ALERT.unexpected_message);
    const inner = plain[end];
    if (inner < k.RECORD_ALERT || inner > k.RECORD_APPLICATION_DATA) throw alert(ALERT.unexpected_message);
    return { type: inner, data: plain.subarray(0, end) };
  }

  /** Where the trailing incomplete record starts, and how many bytes it lacks. */
  #tail(): { start: number; missing: number } {
    for (let start = 0; ;) {
      const rest = this.#total - start;
      if (rest < HEADER_SIZE) return { start, missing: rest === 0 ? 0 : HEADER_SIZE - rest };
      const end = start + HEADER_SIZE + this.#peek(start + HEADER_SIZE).readUInt16BE(start + 3);
      if (end > this.#total) return { start, missing: end - this.#total };
      start = end;
    }
  }

  /** The first `n` bytes (n <= total), merging leading chunks only as far as needed. */
  #peek(n: number): Buffer {
    if (this.#chunks[0].length < n) {
      let count = 0;
      for (let have = 0; have < n; count++) have += this.#chunks[count].length;
      this.#chunks.splice(0, count, Buffer.concat(this.#chunks.slice(0, count)));
    }
    return this.#chunks[0].subarray(0, n);
  }

  #take(n: number): Buffer {
    const out = this.#peek(n);
    this.#chunks[0] = this.#chunks[0].subarray(n);
    if (this.#chunks[0].length === 0) this.#chunks.shift();
    this.#total -= n;
    return out;
  }
}
