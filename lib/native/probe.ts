/**
 * `probe()`: what this kernel's kTLS can do, found by trying on loopback pairs.
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { loadBinding, type Binding } from './binding.js';
import { CIPHER_NAMES, VERSIONS, cipherSpec, versionNumber, type CipherName, type TlsVersion } from './constants.js';
import { errnoName } from './errors.js';
import { handleFd } from './net-handle.js';
import { loopbackPair } from './loopback.js';
import { describeDefect, kernelDefect, kernelDefects, type ConfirmedDefect, type DefectArea } from './defects.js';

export { loopbackPair };

/** Result of trying one version × cipher. */
export interface CipherSupport {
  /** TLS version tried. */
  version: TlsVersion;
  /** Cipher tried. */
  cipher: CipherName;
  /** `TLS_TX` installed. */
  tx: boolean;
  /** `TLS_RX` installed. */
  rx: boolean;
  /** errno name where an install failed, e.g. `ENOENT`. */
  error?: string;
  /** A known kernel defect confirmed for this version × cipher (see `KERNEL_DEFECTS`): it installs, but ktls keeps it on userspace records. */
  defect?: string;
}

/** A known kernel defect this kernel was found to have. */
export interface DefectFound {
  /** The table's id, e.g. `ccm-tls13-nonce`. */
  id: string;
  /** `records`: the version × cipher stays on userspace records; `splice`: spliceTo() copies instead of splice(2). */
  area: DefectArea;
  /** The version × cipher it was confirmed with. */
  version: TlsVersion;
  /** The cipher it was confirmed with. */
  cipher: CipherName;
  /** What the detector saw. */
  observed: string;
  /** What goes wrong. */
  summary: string;
  /** Which change fixed it, and in which version. */
  fixedIn: string;
}

/** What {@link probe} found. */
export interface Capabilities {
  /** `uname -r` of the running kernel. */
  kernelRelease: string;
  /** `setsockopt(TCP_ULP, "tls")` succeeded. */
  ulp: boolean;
  /** errno name of the ULP failure (ENOENT: no tls module). */
  ulpError?: string;
  /** One row per version × cipher. */
  ciphers: CipherSupport[];
  /** `TLS_TX_ZEROCOPY_RO` accepted on a TX socket. */
  txZerocopyRo: boolean;
  /** `TLS_RX_EXPECT_NO_PAD` accepted on a TLS 1.3 RX socket. */
  rxExpectNoPad: boolean;
  /** `TLS_TX_MAX_PAYLOAD_LEN` accepted on a TX socket. */
  txMaxPayloadLen: boolean;
  /** TLS 1.3 rekey (KeyUpdate): a second `TLS_TX` on the same socket is accepted (Linux 6.14+). */
  rekey: boolean;
  /** Known kernel defects confirmed on this kernel (`KERNEL_DEFECTS`; none is looked for on kernels past their ranges). */
  defects: DefectFound[];
  /** `/proc/net/tls_stat` counters, when the file exists. */
  stats: Record<string, number> | null;
}

/** Reads `/proc/net/tls_stat` (kTLS counters), or null where the kernel has none. */
export async function tlsStats(): Promise<Record<string, number> | null> {
  try {
    const text = await readFile('/proc/net/tls_stat', 'utf8');
    const stats: Record<string, number> = {};
    for (const line of text.split('\n')) {
      const m = /^(\S+)\s+(\d+)/.exec(line);
      if (m) stats[m[1]] = Number(m[2]);
    }
    return stats;
  } catch {
    return null;
  }
}

/** Runs `fn` on close-on-exec duplicates of both ends of a fresh loopback pair. */
async function withPair<T>(b: Binding, fn: (a: number, z: number) => T): Promise<T> {
  const [c, s] = await loopbackPair();
  const fds = [b.adopt(handleFd(c)), b.adopt(handleFd(s))];
  try {
    if (fds[0] < 0 || fds[1] < 0) throw new Error(`fcntl(F_DUPFD_CLOEXEC): ${errnoName(Math.min(fds[0], fds[1]))}`);
    return fn(fds[0], fds[1]);
  } finally {
    for (const fd of fds) if (fd >= 0) b.closeFd(fd);
    c.destroy();
    s.destroy();
  }
}

function keys(b: Binding, fd: number, dir: number, version: TlsVersion, cipher: CipherName): number {
  const spec = cipherSpec(cipher);
  return b.setKeys(fd, dir, versionNumber(version), spec.id, randomBytes(spec.keySize), randomBytes(spec.nonceSize), Buffer.alloc(8));
}

/**
 * Finds what this kernel's kTLS supports by trying it: the ULP, every version ×
 * cipher for TX and RX, and the optional socket options. Never throws for a
 * missing feature; a missing addon reports `ulp: false`.
 */
export async function probe(): Promise<Capabilities> {
  const { release } = await import('node:os');
  const caps: Capabilities = {
    kernelRelease: release(),
    ulp: false,
    ciphers: [],
    txZerocopyRo: false,
    rxExpectNoPad: false,
    txMaxPayloadLen: false,
    rekey: false,
    defects: [],
    stats: await tlsStats(),
  };
  const { binding: b, error } = loadBinding();
  if (!b) {
    caps.ulpError = error?.message ?? 'addon not loaded';
    return caps;
  }
  const k = b.constants;
  const ulp = await withPair(b, (fd) => b.setUlp(fd));
  caps.ulp = ulp === 0;
  if (!caps.ulp) {
    caps.ulpError = errnoName(ulp);
    return caps;
  }
  for (const version of VERSIONS) {
    for (const cipher of CIPHER_NAMES) {
      const row = await withPair(b, (a, z) => {
        b.setUlp(a);
        b.setUlp(z);
        const tx = keys(b, a, k.TLS_TX, version, cipher);
        const rx = keys(b, z, k.TLS_RX, version, cipher);
        const r: CipherSupport = { version, cipher, tx: tx === 0, rx: rx === 0 };
        if (tx < 0 || rx < 0) r.error = errnoName(tx < 0 ? tx : rx);
        if (tx === 0 && cipher === 'aes-128-gcm') {
          caps.txZerocopyRo ||= b.setsockoptInt(a, k.SOL_TLS, k.TLS_TX_ZEROCOPY_RO, 1) === 0;
          caps.txMaxPayloadLen ||= b.setRecordSize(a, 4096) === 0;
        }
        if (rx === 0 && version === 'TLSv1.3' && cipher === 'aes-128-gcm') {
          caps.rxExpectNoPad ||= b.setsockoptInt(z, k.SOL_TLS, k.TLS_RX_EXPECT_NO_PAD, 1) === 0;
          // TLS 1.3 KeyUpdate: kernels with rekey accept a second TLS_TX; older ones answer EBUSY.
          if (tx === 0) caps.rekey ||= keys(b, a, k.TLS_TX, version, cipher) === 0;
        }
        return r;
      });
      caps.ciphers.push(row);
    }
  }
  const found = (d: ConfirmedDefect, version: TlsVersion, cipher: CipherName): DefectFound => {
    const { id, area, summary, fixedIn } = d.defect;
    return { id, area, version, cipher, observed: d.observed, summary, fixedIn };
  };
  for (const row of caps.ciphers) {
    if (!(row.tx && row.rx)) continue;
    const ds = await kernelDefects('records', row.version, row.cipher);
    if (ds.length === 0) continue;
    row.defect = describeDefect(ds[0]);
    for (const d of ds) caps.defects.push(found(d, row.version, row.cipher));
  }
  const usable = caps.ciphers.find((r) => r.tx && r.rx && !r.defect);
  const splice = usable ? await kernelDefect('splice', usable.version, usable.cipher) : null;
  if (splice && usable) caps.defects.push(found(splice, usable.version, usable.cipher));
  const noPad = caps.rxExpectNoPad ? await kernelDefect('rx-no-pad', 'TLSv1.3', 'aes-128-gcm') : null;
  if (noPad) caps.defects.push(found(noPad, 'TLSv1.3', 'aes-128-gcm'));
  caps.stats = await tlsStats();
  return caps;
}
