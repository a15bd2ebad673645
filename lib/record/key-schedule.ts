/**
 * The TLS 1.3 key schedule after the handshake (RFC 8446 §4.6.3, §7.2): one
 * connection's traffic secrets, the next keys at each KeyUpdate, and the
 * KeyUpdate message itself. Installing the keys is the socket's job
 * (socket/ops/key-update.ts).
 * @packageDocumentation
 */
import type { CipherName } from '../native/constants.js';
import { hashOf, nextTrafficSecret, tls13Keys } from './derive.js';
import { KtlsRekeyError } from '../native/errors.js';
import { unpooled } from './unpooled.js';

const HANDSHAKE_KEY_UPDATE = 24;

/** A KeyUpdate handshake message (RFC 8446 §4.6.3). */
export function keyUpdateMessage(requestUpdate: boolean): Buffer {
  return Buffer.from([HANDSHAKE_KEY_UPDATE, 0, 0, 1, requestUpdate ? 1 : 0]);
}

const own = (b: Buffer): Buffer => unpooled(b);

/** Holds one connection's traffic secrets (private fields: never inspected or logged). */
export class KeySchedule {
  #tx: Buffer | null;
  #rx: Buffer | null;
  readonly #cipher: CipherName;

  constructor(cipher: CipherName, secrets: { tx?: Buffer | undefined; rx?: Buffer | undefined }) {
    this.#cipher = cipher;
    this.#tx = secrets.tx ? own(secrets.tx) : null;
    this.#rx = secrets.rx ? own(secrets.rx) : null;
  }

  /** Advances one direction's secret and returns the new key and iv. */
  next(direction: 'tx' | 'rx'): { key: Buffer; iv: Buffer } {
    const current = direction === 'tx' ? this.#tx : this.#rx;
    if (!current)
      throw new KtlsRekeyError(
        'ERR_KTLS_REKEY_NO_SECRET',
        `the ${direction} traffic secret is unknown (upgrade() was given keys, not secrets): cannot follow a KeyUpdate`,
      );
    const derived = nextTrafficSecret(hashOf(this.#cipher), current);
    const next = own(derived);
    derived.fill(0);
    current.fill(0);
    if (direction === 'tx') this.#tx = next;
    else this.#rx = next;
    return tls13Keys(this.#cipher, hashOf(this.#cipher), next);
  }

  wipe(): void {
    this.#tx?.fill(0);
    this.#rx?.fill(0);
    this.#tx = this.#rx = null;
  }
}
