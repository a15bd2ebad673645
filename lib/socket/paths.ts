/**
 * How each direction of a KtlsSocket's records is protected (the kernel, the
 * userspace record layer, node:tls beyond a socketpair, or nothing), as
 * `upgrade()` and the hand-over build it.
 * @packageDocumentation
 */
import * as os from 'node:os';
import type { Binding, NativeHandle } from '../native/binding.js';
import { cipherSpec, constants, type CipherName, type TlsVersion } from '../native/constants.js';
import { KtlsError, KtlsSystemError } from '../native/errors.js';
import type { OpenedRecord, RecordOpener, RecordSealer } from '../record/layer.js';
import type { SequenceNumbers } from './options.js';

/** A record opened before the switch; a KeyUpdate among them whose new RX keys `upgrade()` already installed is marked. */
export type EarlyRecord = OpenedRecord & { keyUpdateFollowed?: boolean };

/** How each direction's records are protected; built by `upgrade()`. */
export interface RecordPaths {
  binding: Binding;
  handle: NativeHandle;
  out: Int32Array;
  version: TlsVersion;
  cipher: CipherName;
  /** Kernel sends (TLS_TX installed), userspace sealer, plain bytes to a record layer beyond the fd (node:tls), or no TX keys. */
  tx: 'kernel' | 'plain' | RecordSealer | null;
  /** Kernel receives (TLS_RX installed), userspace opener, or neither. */
  rx: 'kernel' | RecordOpener | null;
  /** Our side of the handshake, when known (it decides which post-handshake messages the peer may send). */
  role?: 'client' | 'server';
  /** Records taken off the wire before the switch, already opened, delivered first. */
  early: EarlyRecord[];
  /** TLS 1.3 application traffic secrets, for following KeyUpdates (copied, then wiped by the caller). */
  trafficSecrets?: { tx?: Buffer | undefined; rx?: Buffer | undefined };
  /** For kernel TX: bytes that had entered TCP, and the TX seq, when the keys were installed. */
  txStart?: { entered: number; seq: bigint };
  remote: { address?: string; port?: number; family?: string };
  local: { address?: string; port?: number };
  /** The TCP connection's fd when it is not `handle.fd` (records carried by node:tls over a socketpair). */
  tcpFd?: number;
  /** `rx`/`tx` 'kernel' without the TLS ULP: plain TCP through the same machinery (no records at all). */
  plainTcp?: boolean;
  /**
   * Kernel RX only, set at the first spliceTo(): the kernel's splice(2) from kTLS is defective
   * (`native/defects.ts`; the defect, described), so spliceTo() copies through recvmsg; false: it is not.
   */
  spliceCopies?: string | false;
  /** Why a direction's records are not the kernel's (no tls module, a cipher it lacks, a known kernel defect...). */
  fallbackReason?: string;
  /** false: key usage limits are not enforced (`options.keyUsageLimits`). */
  keyUsageLimits?: boolean;
  /** Set when node:tls carries the records (a suite neither kTLS nor the userspace layer has): its protocol name. */
  nodeTls?: { protocol: string };
}

/** Wire bytes a record adds to its plaintext: header, tag, TLS 1.2's explicit nonce, TLS 1.3's inner type. */
export function recordOverhead(version: TlsVersion, cipher: CipherName): number {
  const spec = cipherSpec(cipher);
  return 5 + spec.tagSize + (version === 'TLSv1.3' ? 1 : spec.saltSize > 0 ? spec.ivSize : 0);
}

/** Sets the largest plaintext per record the TX path sends: the kernel's `TLS_TX_MAX_PAYLOAD_LEN` (6.8+), nothing to do for the userspace layer. */
export function applyRecordSize(p: RecordPaths, fd: number, size: number): void {
  if (p.tx === 'plain') throw new KtlsError('ERR_KTLS_UNSUPPORTED', "node:tls carries this connection's records and has no record size limit setting");
  if (p.tx !== 'kernel') return;
  const rc = p.binding.setRecordSize(fd, size);
  const syscall = 'setsockopt(TLS_TX_MAX_PAYLOAD_LEN)';
  if (rc === -os.constants.errno.ENOPROTOOPT) {
    const why = 'this kernel has no TLS_TX_MAX_PAYLOAD_LEN (record size limit); it always sends records of up to 16384 bytes';
    throw Object.assign(new KtlsError('ERR_KTLS_UNSUPPORTED', why), { errno: rc, syscall });
  }
  if (rc < 0) throw new KtlsSystemError(rc, syscall);
}

/** The next record sequence numbers of each direction: the kernel's read live (`getsockopt(SOL_TLS, TLS_TX/TLS_RX)`). */
export function sequenceNumbers(p: RecordPaths, fd: number): SequenceNumbers {
  const k = constants();
  const read = (path: RecordPaths['tx'] | RecordPaths['rx'], dir: number, name: string): bigint | null => {
    if (path === null || path === 'plain') return null;
    if (path !== 'kernel') return path.seq;
    const v = p.binding.getSeq(fd, dir);
    if (typeof v === 'number') throw new KtlsSystemError(v, `getsockopt(${name})`);
    return v;
  };
  return { tx: read(p.tx, k.TLS_TX, 'TLS_TX'), rx: read(p.rx, k.TLS_RX, 'TLS_RX') };
}
