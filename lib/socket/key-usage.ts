/**
 * Key usage limits (RFC 8446 §5.5): an AEAD key may protect only so many
 * records before its confidentiality bound is spent. The kernel counts
 * nothing, so the socket reads the sequence numbers as bytes move and, before
 * the limit, rekeys where it can (TLS 1.3: its own KeyUpdate for TX, a request
 * to the peer for RX) and otherwise closes cleanly with a typed error, after a
 * warning. Limits and sources: docs/security.md.
 * @packageDocumentation
 */
import type { CipherName } from '../native/constants.js';
import { KtlsError } from '../native/errors.js';
import { probe } from '../native/probe.js';
import type { SequenceNumbers } from './options.js';

/** Records one key may protect, by cipher (ChaCha20-Poly1305: none within 2^64). */
export const KEY_USAGE_LIMITS: Readonly<Partial<Record<CipherName, number>>> = Object.freeze({
  'aes-128-gcm': Math.floor(2 ** 24.5), // RFC 8446 §5.5
  'aes-256-gcm': Math.floor(2 ** 24.5),
  'aes-128-ccm': Math.floor(2 ** 23.5), // RFC 9147 §4.5.3
});
/** Act this many records before the limit: a rekey (or, where none is possible, a warning). */
export const REKEY_MARGIN = 2 ** 23;
/** Close this many records before the limit where no rekey is possible. */
export const CLOSE_MARGIN = 2 ** 22;
/**
 * Sequence numbers are read once per this many reads/writes (two getsockopts
 * under the kernel). Between checks our TX seals at most 256 writes × 4096
 * records (256 KiB at the 64-byte record floor), 1 Mi records, well inside the
 * margins; RX as many as the peer packs into 256 reads, which is the peer's own
 * key (a peer that sends 1-byte records wastes only its confidentiality bound).
 */
const CHECK_EVERY = 256;

/** What the limit check needs from its socket. @internal */
export interface UsageHost {
  readonly version: string;
  readonly cipher: CipherName | null;
  readonly destroyed: boolean;
  readonly kernelDirections: { tx: boolean; rx: boolean };
  getSequenceNumbers(): SequenceNumbers;
  updateKeys(options?: { requestPeer?: boolean }): Promise<void>;
  end(cb?: () => void): unknown;
  destroy(err?: Error): unknown;
}

let rekeyProbe: Promise<boolean> | undefined;
const kernelRekeys = (): Promise<boolean> =>
  (rekeyProbe ??= probe().then(
    (c) => c.rekey,
    () => false,
  ));

/** One socket's key usage, checked every few reads and writes. @internal */
export class KeyUsage {
  #host: UsageHost;
  #limit: number;
  #calls = CHECK_EVERY; // the first read or write checks: keys may arrive with their sequence far along
  #acting = { tx: false, rx: false };
  #warned = false;

  constructor(host: UsageHost) {
    this.#host = host;
    this.#limit = (host.cipher && KEY_USAGE_LIMITS[host.cipher]) ?? Number.POSITIVE_INFINITY;
  }

  /** One read or write happened. */
  tick(): void {
    if (this.#limit === Number.POSITIVE_INFINITY || ++this.#calls < CHECK_EVERY || this.#host.destroyed) return;
    this.#calls = 0;
    let seq: SequenceNumbers;
    try {
      seq = this.#host.getSequenceNumbers();
    } catch {
      return; // this kernel cannot say (see KERNEL_DEFECTS): nothing to count with
    }
    for (const dir of ['tx', 'rx'] as const) {
      const n = seq[dir];
      if (n !== null && n >= BigInt(this.#limit - REKEY_MARGIN) && !this.#acting[dir]) this.#act(dir, n);
    }
  }

  #act(dir: 'tx' | 'rx', seq: bigint): void {
    const host = this.#host;
    this.#acting[dir] = true;
    const canRekey = host.version === 'TLSv1.3' ? (host.kernelDirections[dir] ? kernelRekeys() : Promise.resolve(true)) : Promise.resolve(false);
    void canRekey.then((yes) => {
      if (host.destroyed) return;
      if (yes) {
        // TX: our KeyUpdate restarts our count. RX: the peer's answer restarts its count.
        host.updateKeys(dir === 'rx' ? { requestPeer: true } : {}).then(
          () => void (this.#acting[dir] = false),
          () => this.#close(dir, seq),
        );
        return;
      }
      this.#close(dir, seq);
    });
  }

  /** No rekey possible: warn once, and close (close_notify first) before the limit. */
  #close(dir: 'tx' | 'rx', seq: bigint): void {
    const host = this.#host;
    if (!this.#warned) {
      this.#warned = true;
      process.emitWarning(
        `a ${host.version} ${host.cipher} connection's ${dir.toUpperCase()} key is at record ${seq} of its ${this.#limit}-record limit and cannot be rekeyed: it will be closed`,
        { code: 'KTLS_KEY_USAGE' },
      );
    }
    if (seq < BigInt(this.#limit - CLOSE_MARGIN)) {
      this.#acting[dir] = false; // checked again as more records go
      return;
    }
    const err = new KtlsError(
      'ERR_KTLS_KEY_LIMIT',
      `the ${dir.toUpperCase()} key reached its usage limit (${this.#limit} records, RFC 8446 §5.5) and cannot be rekeyed`,
    );
    host.end(() => host.destroy(err));
    setTimeout(() => host.destroy(err), 1000).unref(); // a peer that reads nothing does not hold the close
  }
}
