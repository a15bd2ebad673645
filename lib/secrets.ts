/**
 * The keys of one TLS session: their shape, their validation, and a redacting
 * container so that logging a secrets object never prints key bytes.
 * @packageDocumentation
 */
import * as util from 'node:util';
import { CIPHER_NAMES, VERSIONS, cipherSpec, type CipherName, type TlsVersion } from './constants.js';
import { invalidArgType, invalidArgValue } from './errors.js';

/** Keys for one direction of a TLS connection. */
export interface DirectionSecrets {
  /** The traffic key (16 bytes for AES-128, 32 for AES-256 and ChaCha20). */
  key: Buffer;
  /** 12 bytes: for GCM/CCM the 4-byte salt then the 8-byte nonce; for ChaCha20 the 12-byte IV. */
  iv: Buffer;
  /** Sequence number of the next record in this direction. */
  seq: bigint | number;
}

/** What `upgrade()` needs to take over a TLS session. At least one of `tx`, `rx`. */
export interface TlsSecrets {
  /** The negotiated protocol version. */
  version: TlsVersion;
  /** The negotiated AEAD cipher. */
  cipher: CipherName;
  /** Keys for records we send. */
  tx?: DirectionSecrets;
  /** Keys for records we receive. */
  rx?: DirectionSecrets;
}

/** Validated keys for one direction; owns copies of the caller's buffers. */
export interface NormalizedDirection {
  readonly key: Buffer;
  readonly iv: Buffer;
  readonly seq: bigint;
}

const MAX_SEQ = (1n << 64n) - 1n;

/**
 * A {@link TlsSecrets} whose `util.inspect` and `JSON.stringify` show sizes and
 * sequence numbers but never key bytes. `upgrade()` accepts it like a plain object.
 */
export class Secrets implements TlsSecrets {
  /** The negotiated protocol version. */
  readonly version: TlsVersion;
  /** The negotiated AEAD cipher. */
  readonly cipher: CipherName;
  /** Keys for records we send. */
  readonly tx?: DirectionSecrets;
  /** Keys for records we receive. */
  readonly rx?: DirectionSecrets;

  /** Wraps (without copying) the given secrets. */
  constructor(secrets: TlsSecrets) {
    this.version = secrets.version;
    this.cipher = secrets.cipher;
    if (secrets.tx) this.tx = redacting(secrets.tx);
    if (secrets.rx) this.rx = redacting(secrets.rx);
  }

  /** Overwrites the key and IV bytes with zeros. */
  wipe(): void {
    for (const d of [this.tx, this.rx]) {
      d?.key.fill(0);
      d?.iv.fill(0);
    }
  }

  /** JSON shows no key material. */
  toJSON(): object {
    return { version: this.version, cipher: this.cipher, tx: describe(this.tx), rx: describe(this.rx) };
  }

  /** `util.inspect` shows no key material. */
  [util.inspect.custom](): string {
    return `Secrets ${util.inspect(this.toJSON())}`;
  }
}

function describe(d: DirectionSecrets | undefined): object | undefined {
  if (!d) return undefined;
  return { key: `<${d.key.length} bytes redacted>`, iv: `<${d.iv.length} bytes redacted>`, seq: String(d.seq) };
}

function redacting(d: DirectionSecrets): DirectionSecrets {
  const out = { key: d.key, iv: d.iv, seq: d.seq };
  Object.defineProperty(out, util.inspect.custom, { value: () => util.inspect(describe(out)), enumerable: false });
  Object.defineProperty(out, 'toJSON', { value: () => describe(out), enumerable: false });
  return out;
}

function checkBuffer(value: unknown, field: string, size: number): Buffer {
  if (!Buffer.isBuffer(value)) {
    throw invalidArgType(`Expected a ${size}-byte Buffer for ${field} but received ${value === null ? 'null' : typeof value}`);
  }
  if (value.length !== size) {
    throw invalidArgValue(`Expected a ${size}-byte Buffer for ${field} but received ${value.length} bytes`);
  }
  return Buffer.from(value); // our own copy: wiped once the kernel has it
}

function checkSeq(value: unknown, field: string): bigint {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw invalidArgValue(`Expected a non-negative safe integer or bigint for ${field} but received ${value}`);
    }
    return BigInt(value);
  }
  if (typeof value === 'bigint') {
    if (value < 0n || value > MAX_SEQ) throw invalidArgValue(`Expected ${field} in [0, 2^64) but received ${value}`);
    return value;
  }
  throw invalidArgType(`Expected a bigint or number for ${field} but received ${typeof value}`);
}

/** Validated secrets, with the library's own copies of every key. */
export interface NormalizedSecrets {
  readonly version: TlsVersion;
  readonly cipher: CipherName;
  readonly tx?: NormalizedDirection;
  readonly rx?: NormalizedDirection;
}

/**
 * Checks every field of `secrets` and returns copies the library owns.
 * Throws `TypeError`/`RangeError` with `ERR_INVALID_ARG_TYPE`/`ERR_INVALID_ARG_VALUE`
 * naming the field and the expected size.
 */
export function normalizeSecrets(secrets: unknown): NormalizedSecrets {
  if (typeof secrets !== 'object' || secrets === null) {
    throw invalidArgType(`Expected an object for secrets but received ${secrets === null ? 'null' : typeof secrets}`);
  }
  const s = secrets as Partial<Record<keyof TlsSecrets, unknown>>;
  if (!VERSIONS.includes(s.version as TlsVersion)) {
    throw invalidArgValue(`Expected secrets.version to be one of ${VERSIONS.join(', ')} but received ${String(s.version)}`);
  }
  if (!CIPHER_NAMES.includes(s.cipher as CipherName)) {
    throw invalidArgValue(`Expected secrets.cipher to be one of ${CIPHER_NAMES.join(', ')} but received ${String(s.cipher)}`);
  }
  const version = s.version as TlsVersion;
  const cipher = s.cipher as CipherName;
  const spec = cipherSpec(cipher);
  const direction = (name: 'tx' | 'rx'): NormalizedDirection | undefined => {
    const d = s[name];
    if (d === undefined) return undefined;
    if (typeof d !== 'object' || d === null) throw invalidArgType(`Expected an object for secrets.${name} but received ${d === null ? 'null' : typeof d}`);
    const o = d as Partial<Record<keyof DirectionSecrets, unknown>>;
    return {
      key: checkBuffer(o.key, `secrets.${name}.key`, spec.keySize),
      iv: checkBuffer(o.iv, `secrets.${name}.iv`, spec.nonceSize),
      seq: checkSeq(o.seq, `secrets.${name}.seq`),
    };
  };
  const tx = direction('tx');
  const rx = direction('rx');
  if (!tx && !rx) throw invalidArgValue('Expected secrets.tx or secrets.rx (or both) but received neither');
  return { version, cipher, ...(tx ? { tx } : {}), ...(rx ? { rx } : {}) };
}

/** Overwrites the library's copies of key material. */
export function wipeDirection(d: NormalizedDirection | undefined): void {
  d?.key.fill(0);
  d?.iv.fill(0);
}

/** Big-endian 8-byte encoding of a record sequence number, as the kernel's `rec_seq`. */
export function seqBytes(seq: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(seq);
  return b;
}
