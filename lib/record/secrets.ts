/**
 * The keys of one TLS session: their shape, their validation, and a redacting
 * container so that logging a secrets object never prints key bytes.
 * @packageDocumentation
 */
import * as util from 'node:util';
import { CIPHER_NAMES, VERSIONS, cipherSpec, type CipherName, type TlsVersion } from '../native/constants.js';
import { invalidArgType, invalidArgValue } from '../native/errors.js';

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
    // Each field read once: upgrade() validates what was read, and a getter cannot change it afterwards.
    const { version, cipher, tx, rx } = secrets;
    this.version = version;
    this.cipher = cipher;
    // Anything else is kept as given, for normalizeSecrets() to refuse with a typed error.
    if (tx !== undefined) this.tx = typeof tx === 'object' && tx !== null ? redacting(tx) : tx;
    if (rx !== undefined) this.rx = typeof rx === 'object' && rx !== null ? redacting(rx) : rx;
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

// eslint-disable-next-line @typescript-eslint/unbound-method -- always called with .call(view)
const byteLength = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype) as object, 'byteLength')!.get!;

/** What a value is, for a message, without calling anything of it (a user object's toString may throw). */
function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean' || value === undefined) return String(value);
  return typeof value;
}

/** Reads `o[key]` once; a getter or proxy that throws is a bad argument, not a crash. */
function field(o: object, key: string, name: string): unknown {
  try {
    return (o as Record<string, unknown>)[key];
  } catch (cause) {
    throw Object.assign(invalidArgType(`Could not read ${name}`), { cause });
  }
}

function checkBuffer(value: unknown, name: string, size: number): Buffer {
  // A real Uint8Array (checked by its internal slot, so no proxy or prototype trick passes), measured by the intrinsic getter.
  if (!Buffer.isBuffer(value) || !util.types.isUint8Array(value)) {
    throw invalidArgType(`Expected a ${size}-byte Buffer for ${name} but received ${kindOf(value)}`);
  }
  const length = byteLength.call(value) as number;
  if (length !== size) throw invalidArgValue(`Expected a ${size}-byte Buffer for ${name} but received ${length} bytes`);
  const copy = Buffer.alloc(length); // our own copy: wiped once the kernel has it
  copy.set(value);
  return copy;
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
  throw invalidArgType(`Expected a bigint or number for ${field} but received ${kindOf(value)}`);
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
    throw invalidArgType(`Expected an object for secrets but received ${kindOf(secrets)}`);
  }
  // Every field is read exactly once: a getter cannot pass a check and then change.
  const versionIn = field(secrets, 'version', 'secrets.version');
  const cipherIn = field(secrets, 'cipher', 'secrets.cipher');
  if (!VERSIONS.includes(versionIn as TlsVersion)) {
    throw invalidArgValue(`Expected secrets.version to be one of ${VERSIONS.join(', ')} but received ${kindOf(versionIn)}`);
  }
  if (!CIPHER_NAMES.includes(cipherIn as CipherName)) {
    throw invalidArgValue(`Expected secrets.cipher to be one of ${CIPHER_NAMES.join(', ')} but received ${kindOf(cipherIn)}`);
  }
  const version = versionIn as TlsVersion;
  const cipher = cipherIn as CipherName;
  const spec = cipherSpec(cipher);
  const direction = (name: 'tx' | 'rx'): NormalizedDirection | undefined => {
    const d = field(secrets, name, `secrets.${name}`);
    if (d === undefined) return undefined;
    if (typeof d !== 'object' || d === null) throw invalidArgType(`Expected an object for secrets.${name} but received ${kindOf(d)}`);
    return {
      key: checkBuffer(field(d, 'key', `secrets.${name}.key`), `secrets.${name}.key`, spec.keySize),
      iv: checkBuffer(field(d, 'iv', `secrets.${name}.iv`), `secrets.${name}.iv`, spec.nonceSize),
      seq: checkSeq(field(d, 'seq', `secrets.${name}.seq`), `secrets.${name}.seq`),
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
