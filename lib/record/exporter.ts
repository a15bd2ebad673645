/**
 * Keying material exporters: RFC 5705 (TLS 1.2) and RFC 8446 §7.5 (TLS 1.3),
 * from the secrets node:tls logged during the handshake, so
 * `exportKeyingMaterial()` answers after the switch exactly as OpenSSL would.
 * @packageDocumentation
 */
import { createHash } from 'node:crypto';
import { KtlsError, invalidArgType, invalidArgValue } from '../native/errors.js';
import { hashSize, hkdfExpandLabel, prf12, type SuiteHash } from './derive.js';
import { unpooled } from './unpooled.js';

/** What `KtlsSocket#exportKeyingMaterial` asks of the session. @internal */
export interface KeyingExporter {
  /** `length` bytes of keying material for `label` (and `context`, if given). */
  export(length: number, label: string, context?: Buffer): Buffer;
  /** Zeroes the secrets it holds; later exports throw. */
  wipe(): void;
}

// RFC 5705 §4: TLS 1.2's own PRF labels, which OpenSSL refuses as exporter labels.
const RESERVED_TLS12 = ['client finished', 'server finished', 'master secret', 'extended master secret', 'key expansion'];
/** RFC 8446 §7.1: HkdfLabel's label is at most 255 bytes, "tls13 " included. */
const MAX_TLS13_LABEL = 255 - 'tls13 '.length;

/** OpenSSL's refusal of a label, with the code node:tls gives it. */
function illegalLabel(why: string): Error & { code: string } {
  return Object.assign(new Error(`illegal exporter label: ${why}`), { code: 'ERR_SSL_TLS_ILLEGAL_EXPORTER_LABEL' });
}

/** Checks `exportKeyingMaterial` arguments as node:tls does, with messages naming the argument. @internal */
export function checkExportArgs(length: unknown, label: unknown, context: unknown): asserts length is number {
  if (typeof length !== 'number') throw invalidArgType(`Expected a number for length but received ${typeof length}`);
  if (!Number.isInteger(length) || length < 1 || length > 0xffff)
    throw invalidArgValue(`Expected an integer from 1 to 65535 for length but received ${length}`);
  if (typeof label !== 'string') throw invalidArgType(`Expected a string for label but received ${typeof label}`);
  if (context !== undefined && !Buffer.isBuffer(context)) throw invalidArgType(`Expected a Buffer for context but received ${typeof context}`);
}

class SecretExporter implements KeyingExporter {
  readonly #version: 'TLSv1.2' | 'TLSv1.3';
  readonly #hash: SuiteHash;
  readonly #secret: Buffer;
  readonly #randoms: Buffer;
  #wiped = false;

  constructor(version: 'TLSv1.2' | 'TLSv1.3', hash: SuiteHash, secret: Buffer, randoms: Buffer) {
    this.#version = version;
    this.#hash = hash;
    // Unpooled copies: they live as long as the connection and are zeroed at its close.
    this.#secret = Buffer.allocUnsafeSlow(secret.length);
    secret.copy(this.#secret);
    this.#randoms = Buffer.allocUnsafeSlow(randoms.length);
    randoms.copy(this.#randoms);
  }

  export(length: number, label: string, context?: Buffer): Buffer {
    checkExportArgs(length, label, context);
    if (this.#wiped) throw new KtlsError('ERR_SOCKET_CLOSED', 'the socket is closed: its exporter secret is gone');
    if (this.#version === 'TLSv1.3') {
      if (length > 255 * hashSize(this.#hash))
        throw invalidArgValue(`Expected at most ${255 * hashSize(this.#hash)} bytes for length (HKDF's limit) but received ${length}`);
      const bytes = Buffer.byteLength(label, 'utf8');
      if (bytes > MAX_TLS13_LABEL) throw illegalLabel(`${bytes} bytes of UTF-8, more than TLS 1.3's ${MAX_TLS13_LABEL}`);
      // TLS-Exporter(label, context, length) = HKDF-Expand-Label(Derive-Secret(exporter_secret, label, ""), "exporter", Hash(context), length)
      const empty = createHash(this.#hash).digest();
      const derived = hkdfExpandLabel(this.#hash, this.#secret, label, empty, hashSize(this.#hash));
      const out = hkdfExpandLabel(
        this.#hash,
        derived,
        'exporter',
        createHash(this.#hash)
          .update(context ?? Buffer.alloc(0))
          .digest(),
        length,
      );
      derived.fill(0);
      return out;
    }
    if (RESERVED_TLS12.some((r) => label.startsWith(r))) throw illegalLabel(`'${label}' is a label TLS 1.2 uses itself (RFC 5705 §4)`);
    // PRF(master_secret, label, client_random + server_random [+ uint16 length + context])
    const seed = context === undefined ? this.#randoms : Buffer.concat([this.#randoms, Buffer.from([context.length >> 8, context.length & 0xff]), context]);
    return prf12(this.#hash, this.#secret, label, seed, length);
  }

  wipe(): void {
    this.#wiped = true;
    this.#secret.fill(0);
    this.#randoms.fill(0);
  }
}

/** TLS 1.3: from the `EXPORTER_SECRET` node:tls logged. @internal */
export function tls13Exporter(hash: SuiteHash, exporterSecret: Buffer): KeyingExporter {
  return new SecretExporter('TLSv1.3', hash, exporterSecret, Buffer.alloc(0));
}

/** TLS 1.2: from the master secret and both randoms. @internal */
export function tls12Exporter(hash: SuiteHash, masterSecret: Buffer, clientRandom: Buffer, serverRandom: Buffer): KeyingExporter {
  return new SecretExporter('TLSv1.2', hash, masterSecret, unpooled(clientRandom, serverRandom));
}
