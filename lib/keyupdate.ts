/**
 * TLS 1.3 KeyUpdate (RFC 8446 §4.6.3): the next traffic secrets, the new keys
 * for the kernel (Linux 6.14+ accepts a second TLS_TX/TLS_RX) or the userspace
 * record layer, and the KeyUpdate message as a write-queue entry so it goes out
 * after everything written before it and before anything written after it.
 * @packageDocumentation
 */
import * as os from 'node:os';
import { cipherSpec, constants, versionNumber, type CipherName } from './constants.js';
import { nextTrafficSecret, tls13Keys, type SuiteHash } from './derive.js';
import { KtlsError } from './errors.js';
import type { RecordOpener, RecordSealer } from './record.js';
import { seqBytes } from './secrets.js';
import { consume, type StepResult, type TxContext, type WriteOp } from './zerocopy.js';

const E = os.constants.errno;
const HANDSHAKE_KEY_UPDATE = 24;

/** A KeyUpdate handshake message (RFC 8446 §4.6.3). */
export function keyUpdateMessage(requestUpdate: boolean): Buffer {
  return Buffer.from([HANDSHAKE_KEY_UPDATE, 0, 0, 1, requestUpdate ? 1 : 0]);
}

/** The TLS 1.3 suite hash of a cipher: only AES-256-GCM uses SHA-384. */
export function hashOf(cipher: CipherName): SuiteHash {
  return cipher === 'aes-256-gcm' ? 'sha384' : 'sha256';
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

/** Holds one connection's traffic secrets (private fields: never inspected or logged). */
export class KeySchedule {
  #tx: Buffer | null;
  #rx: Buffer | null;
  readonly #cipher: CipherName;

  constructor(cipher: CipherName, secrets: { tx?: Buffer | undefined; rx?: Buffer | undefined }) {
    this.#cipher = cipher;
    this.#tx = secrets.tx ? Buffer.from(secrets.tx) : null;
    this.#rx = secrets.rx ? Buffer.from(secrets.rx) : null;
  }

  /** Advances one direction's secret and returns the new key and iv. */
  next(direction: 'tx' | 'rx'): { key: Buffer; iv: Buffer } {
    const current = direction === 'tx' ? this.#tx : this.#rx;
    if (!current) throw new KtlsRekeyError('ERR_KTLS_REKEY_NO_SECRET', `the ${direction} traffic secret is unknown (upgrade() was given keys, not secrets): cannot follow a KeyUpdate`);
    const next = nextTrafficSecret(hashOf(this.#cipher), current);
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

/** Installs keys with a second setsockopt(TLS_TX/TLS_RX): seq 0, as after every KeyUpdate. */
export function installKernelKeys(ctx: Pick<TxContext, 'binding'>, fd: number, direction: 'tx' | 'rx', cipher: CipherName, keys: { key: Buffer; iv: Buffer }): void {
  const b = ctx.binding;
  const k = constants();
  const spec = cipherSpec(cipher);
  const rc = b.setKeys(fd, direction === 'tx' ? k.TLS_TX : k.TLS_RX, versionNumber('TLSv1.3'), spec.id, keys.key, keys.iv, seqBytes(0n));
  if (rc === 0) return;
  const name = direction === 'tx' ? 'TLS_TX' : 'TLS_RX';
  if (rc === -E.EBUSY || rc === -E.EINVAL || rc === -E.ENOPROTOOPT)
    throw new KtlsRekeyError('ERR_KTLS_REKEY_UNSUPPORTED', `the peer updated its keys (TLS 1.3 KeyUpdate) but this kernel cannot install new ${name} keys on a kTLS socket (rekey needs Linux 6.14 or later)`, rc, `setsockopt(${name})`);
  throw new KtlsRekeyError('ERR_KTLS_REKEY_FAILED', `setsockopt(${name}) failed during a KeyUpdate`, rc, `setsockopt(${name})`);
}

/** Rekeys a userspace opener or sealer in place. */
export function rekeyUserspace(layer: RecordOpener | RecordSealer, keys: { key: Buffer; iv: Buffer }): void {
  layer.rekey({ key: keys.key, iv: keys.iv, seq: 0n });
  keys.key.fill(0);
  keys.iv.fill(0);
}

/** Sends a KeyUpdate record with the current keys, then switches TX to the next ones. */
export class KeyUpdateOp implements WriteOp {
  readonly sent = 0;
  committed = false;
  #msg: Buffer;
  #wire: Buffer[] | null = null;
  #schedule: KeySchedule;
  #cipher: CipherName;
  #keys: { key: Buffer; iv: Buffer } | undefined;

  constructor(schedule: KeySchedule, cipher: CipherName, requestUpdate: boolean) {
    this.#schedule = schedule;
    this.#cipher = cipher;
    this.#msg = keyUpdateMessage(requestUpdate);
  }

  step(ctx: TxContext): StepResult {
    const k = constants();
    // Derived before anything is sent: without the secret nothing goes out and the connection goes on.
    const keys = (this.#keys ??= this.#schedule.next('tx'));
    if (ctx.sealer) {
      this.#wire ??= ctx.sealer.seal(k.RECORD_HANDSHAKE, this.#msg);
      while (this.#wire.length > 0) {
        const n = ctx.handle.send(this.#wire, 0);
        if (n === -E.EAGAIN || n === -E.EINTR) return 'blocked';
        if (n < 0) throw new KtlsRekeyError('ERR_KTLS_REKEY_FAILED', 'sending the KeyUpdate failed', n, 'sendmsg');
        this.committed = true;
        consume(this.#wire, n);
      }
      rekeyUserspace(ctx.sealer, keys);
      return 'done';
    }
    const n = ctx.handle.send([this.#msg], k.RECORD_HANDSHAKE);
    if (n === -E.EAGAIN || n === -E.EINTR) return 'blocked';
    if (n < 0) throw new KtlsRekeyError('ERR_KTLS_REKEY_FAILED', 'sending the KeyUpdate failed', n, 'sendmsg');
    this.committed = true;
    ctx.accepted(n);
    ctx.txRekeying();
    try {
      installKernelKeys(ctx, ctx.handle.fd, 'tx', this.#cipher, keys);
    } finally {
      keys.key.fill(0);
      keys.iv.fill(0);
    }
    return 'done';
  }

  release(): void {
    this.#keys?.key.fill(0);
    this.#keys?.iv.fill(0);
  }
}
