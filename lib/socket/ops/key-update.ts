/**
 * TLS 1.3 KeyUpdate on a socket: new keys into the kernel (Linux 6.14+ accepts
 * a second TLS_TX/TLS_RX) or the userspace record layer, and the KeyUpdate
 * message as a write-queue entry so it goes out after everything written before
 * it and before anything written after it.
 * @packageDocumentation
 */
import * as os from 'node:os';
import { cipherSpec, constants, versionNumber, type CipherName } from '../../native/constants.js';
import { KtlsRekeyError } from '../../native/errors.js';
import { keyUpdateMessage, type KeySchedule } from '../../record/key-schedule.js';
import type { RecordOpener, RecordSealer } from '../../record/layer.js';
import { seqBytes } from '../../record/secrets.js';
import { sendOnce, type StepResult, type TxContext, type WriteOp } from './op.js';
import { countKeyUpdate } from '../counters.js';

const E = os.constants.errno;

/** Installs keys with a second setsockopt(TLS_TX/TLS_RX): seq 0, as after every KeyUpdate. */
export function installKernelKeys(
  ctx: Pick<TxContext, 'binding'>,
  fd: number,
  direction: 'tx' | 'rx',
  cipher: CipherName,
  keys: { key: Buffer; iv: Buffer },
): void {
  const b = ctx.binding;
  const k = constants();
  const spec = cipherSpec(cipher);
  const rc = b.setKeys(fd, direction === 'tx' ? k.TLS_TX : k.TLS_RX, versionNumber('TLSv1.3'), spec.id, keys.key, keys.iv, seqBytes(0n));
  if (rc === 0) return;
  const name = direction === 'tx' ? 'TLS_TX' : 'TLS_RX';
  if (rc === -E.EBUSY || rc === -E.EINVAL || rc === -E.ENOPROTOOPT)
    throw new KtlsRekeyError(
      'ERR_KTLS_REKEY_UNSUPPORTED',
      `the peer updated its keys (TLS 1.3 KeyUpdate) but this kernel cannot install new ${name} keys on a kTLS socket (rekey needs Linux 6.14 or later)`,
      rc,
      `setsockopt(${name})`,
    );
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
        const n = sendOnce(ctx.handle, this.#wire);
        if (n === -E.EAGAIN || n === -E.EINTR) return 'blocked';
        if (n < 0) throw new KtlsRekeyError('ERR_KTLS_REKEY_FAILED', 'sending the KeyUpdate failed', n, 'sendmsg');
        this.committed = true;
      }
      rekeyUserspace(ctx.sealer, keys);
      countKeyUpdate('sent');
      return 'done';
    }
    const n = ctx.handle.send([this.#msg], k.RECORD_HANDSHAKE);
    if (n === -E.EAGAIN || n === -E.EINTR) return 'blocked';
    if (n < 0) throw new KtlsRekeyError('ERR_KTLS_REKEY_FAILED', 'sending the KeyUpdate failed', n, 'sendmsg');
    this.committed = true;
    countKeyUpdate('sent');
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
