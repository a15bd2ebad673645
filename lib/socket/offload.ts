/**
 * Who protects a connection's records, per direction, as the kernel reports
 * it: sock_diag's `TLS_INFO` (`TXCONF`/`RXCONF`: software, or a NIC) and the
 * `SOL_TLS` options in force. See {@link KtlsSocket.offload}.
 * @packageDocumentation
 */
import type { Binding } from '../native/binding.js';
import { errnoName } from '../native/errors.js';

/**
 * Who seals (TX) or opens (RX) the records of one direction:
 * - `'kernel-sw'`: the kernel, in software (kTLS's own crypto);
 * - `'kernel-hw'`: the kernel with the NIC doing the crypto (`TLS_HW`, `TLS_HW_RECORD`);
 * - `'kernel'`: the kernel, which would not say which (6.1's sock_diag shows
 *   the TLS offload only to processes with `CAP_NET_ADMIN`; 7.2's to any);
 * - `'userspace'`: this process (ktls's record layer, or node:tls);
 * - `'none'`: no records (plain TCP from `ktls.adopt()`, or a closed socket).
 */
export type OffloadKind = 'kernel-sw' | 'kernel-hw' | 'kernel' | 'userspace' | 'none';

/** {@link KtlsSocket.offload}: what protects this connection's records. */
export interface Offload {
  /** Who seals records sent. */
  readonly tx: OffloadKind;
  /** Who opens records received. */
  readonly rx: OffloadKind;
  /** Why a direction is not `'kernel-sw'`/`'kernel-hw'` (the `KTLS_FALLBACK` warning's reason, or why the kernel did not say which). */
  readonly reason?: string;
  /** Where `tx`/`rx` were read: `'sock_diag'` (the kernel's `TLS_INFO`) or `'ktls'` (which keys ktls installed where). */
  readonly source: 'sock_diag' | 'ktls';
  /** `TLS_TX_ZEROCOPY_RO` is on: `sendFile()` pages go to the NIC without a copy (set only where TX is `'kernel-hw'`). */
  readonly zeroCopySendfile: boolean;
  /** `TLS_RX_EXPECT_NO_PAD` is on (TLS 1.3 under kernel RX, Linux 6.0+; option `rxExpectNoPad`). */
  readonly rxExpectNoPad: boolean;
}

/** What a socket knows of itself, for {@link readOffload}. */
export interface OffloadFacts {
  binding: Binding;
  /** The kTLS socket's fd (-1 once closed). */
  fd: number;
  kernelDirections: { tx: boolean; rx: boolean };
  /** node:tls carries the records (a Duplex or Unix-domain socket). */
  nodeTls: boolean;
  /** Plain TCP without records (`ktls.adopt()`). */
  plain: boolean;
  fallbackReason: string | undefined;
}

const HIDDEN = 'this kernel shows whether a NIC does the crypto (sock_diag TLS_INFO) only to processes with CAP_NET_ADMIN';

/** An `SOL_TLS` option's value (false where the kernel lacks it). */
function tlsOption(b: Binding, fd: number, name: number): boolean {
  return b.getsockoptInt(fd, b.constants.SOL_TLS, name) > 0;
}

/** Reads what protects each direction now; one sock_diag request when a direction is the kernel's. */
export function readOffload(f: OffloadFacts): Offload {
  if (f.fd < 0) return { tx: 'none', rx: 'none', reason: 'the socket is closed', source: 'ktls', zeroCopySendfile: false, rxExpectNoPad: false };
  if (f.plain)
    return { tx: 'none', rx: 'none', reason: 'plain TCP (ktls.adopt()): no TLS records', source: 'ktls', zeroCopySendfile: false, rxExpectNoPad: false };
  const user = f.fallbackReason ?? (f.nodeTls ? "node:tls carries this connection's records" : 'kernel TLS is not available');
  if (f.nodeTls || (!f.kernelDirections.tx && !f.kernelDirections.rx))
    return { tx: 'userspace', rx: 'userspace', reason: user, source: 'ktls', zeroCopySendfile: false, rxExpectNoPad: false };
  const b = f.binding;
  const k = b.constants;
  const d = b.tlsDiag(f.fd);
  const reasons: string[] = [];
  let source: Offload['source'] = 'ktls';
  const kind = (dir: 'tx' | 'rx'): OffloadKind => {
    if (!f.kernelDirections[dir]) {
      if (!reasons.includes(user)) reasons.push(user);
      return 'userspace';
    }
    const conf = typeof d === 'number' || d.ulp !== 'tls' ? 0 : dir === 'tx' ? d.txConf : d.rxConf;
    if (conf === k.TLS_CONF_SW) return 'kernel-sw';
    if (conf === k.TLS_CONF_HW || conf === k.TLS_CONF_HW_RECORD) return 'kernel-hw';
    const why = typeof d === 'number' ? `sock_diag failed (${errnoName(d)})` : HIDDEN;
    if (!reasons.includes(why)) reasons.push(why);
    return 'kernel';
  };
  const tx = kind('tx');
  const rx = kind('rx');
  if (tx.startsWith('kernel-') || rx.startsWith('kernel-')) source = 'sock_diag';
  return {
    tx,
    rx,
    ...(reasons.length ? { reason: reasons.join('; ') } : {}),
    source,
    zeroCopySendfile: f.kernelDirections.tx && tlsOption(b, f.fd, k.TLS_TX_ZEROCOPY_RO),
    rxExpectNoPad: f.kernelDirections.rx && tlsOption(b, f.fd, k.TLS_RX_EXPECT_NO_PAD),
  };
}
