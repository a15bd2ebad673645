/**
 * Kernel kTLS defects we know of: version ranges where a version × cipher, or a
 * feature, installs but does not work. Each entry says where it was seen, what
 * fixed it, and how to recognise it; on a kernel inside an entry's range the
 * defect is confirmed by trying it once per process (distribution kernels
 * carry backported fixes, and their `uname -r` does not say which), outside it
 * nothing runs. A connection whose suite has a confirmed defect stays on
 * userspace records; spliceTo() on a kernel with the splice defect copies.
 * @packageDocumentation
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { release } from 'node:os';
import { loopbackPair } from './loopback.js';
import { loadBinding, type Binding } from './binding.js';
import { cipherSpec, versionNumber, type CipherName, type TlsVersion } from './constants.js';
import { errnoName } from './errors.js';
import { uvHandle } from './net-handle.js';

/**
 * What a defect breaks: the records of a version × cipher, splice(2) out of a
 * kTLS socket, or reading padded TLS 1.3 records with `TLS_RX_EXPECT_NO_PAD` on.
 */
export type DefectArea = 'records' | 'splice' | 'rx-no-pad';

/** One known kernel defect. */
export interface KernelDefect {
  /** Stable id, e.g. `ccm-tls13-nonce`. */
  readonly id: string;
  /** What breaks. */
  readonly area: DefectArea;
  /** The TLS versions it affects. */
  readonly versions: readonly TlsVersion[];
  /** The ciphers it affects (all of them for `splice`). */
  readonly ciphers: readonly CipherName[];
  /** Kernels older than this (major.minor) may have it; at or after it, none does. */
  readonly before: string;
  /** What goes wrong, in words. */
  readonly summary: string;
  /** Which change fixed it, and in which version. */
  readonly fixedIn: string;
  /** Where it was seen and what proves it. */
  readonly evidence: string;
}

/** The table. Adding a row needs a detector in `DETECTORS` (this file). */
export const KERNEL_DEFECTS: readonly KernelDefect[] = [
  {
    id: 'ccm-tls13-nonce',
    area: 'records',
    versions: ['TLSv1.3'],
    ciphers: ['aes-128-ccm'],
    before: '5.14',
    summary:
      'TLS 1.3 AES-CCM records after the first fail authentication: the kernel XORs the sequence number into its nonce one byte too early (over the CCM flags byte)',
    fixedIn: 'Linux 5.14, "net/tls: Fix authentication failure in CCMP mode" (the XOR starts after the flags byte); Debian 11 carries it in 5.10.223',
    evidence:
      'UML 5.10.46: every TLS 1.3 AES-128-CCM record after the first sealed by kernel TX fails to open with the RFC 8446 nonce and opens with the sequence number shifted one byte; 6.1, 6.12 and 7.2 seal correctly (ktls-verify --all)',
  },
  {
    id: 'seq-getsockopt',
    area: 'records',
    versions: ['TLSv1.2', 'TLSv1.3'],
    ciphers: ['aes-128-ccm', 'chacha20-poly1305'],
    before: '6.1',
    summary:
      'getsockopt(SOL_TLS, TLS_TX/TLS_RX) answers EINVAL for this cipher, so the sequence numbers cannot be read back: end() could not wait for sealed records to reach TCP, and getSequenceNumbers() would fail',
    fixedIn: 'upstream between 5.10 and 6.1 (Debian 5.10.223 answers only AES-GCM; 6.1 answers every cipher)',
    evidence: 'UML 5.10.46: getsockopt(TLS_TX) on an AES-128-CCM socket fails with EINVAL (ktls-verify wire-decrypt, seq-max, sendfile-wire checks)',
  },
  {
    id: 'splice-peek',
    area: 'splice',
    versions: ['TLSv1.2', 'TLSv1.3'],
    ciphers: ['aes-128-gcm', 'aes-256-gcm', 'chacha20-poly1305', 'aes-128-ccm'],
    before: '6.1',
    summary:
      'splice(2) from a non-blocking kTLS RX socket copies a record into the pipe but leaves it in the socket (tls_sw_splice_read takes SPLICE_F_NONBLOCK, 0x2, for MSG_PEEK), so the same bytes come again forever',
    fixedIn: "upstream's 2022 rework of the kTLS receive path (absent from 6.1's tls_sw_splice_read; still in Debian's 5.10.223)",
    evidence: 'UML 5.10.46: a second non-blocking splice returns the same 1000 bytes; ktls-verify splice-read ran the guest out of memory',
  },
  {
    id: 'rx-no-pad-retry',
    area: 'rx-no-pad',
    versions: ['TLSv1.3'],
    ciphers: ['aes-128-gcm', 'aes-256-gcm', 'chacha20-poly1305', 'aes-128-ccm'],
    before: '7.2',
    summary:
      "with TLS_RX_EXPECT_NO_PAD on, padded records that arrive together are read back wrong: after the kernel decrypts a padded record again (TlsDecryptRetry), the next record's bytes are replaced by the previous record's content type and data",
    fixedIn: "upstream between Debian's 6.12 and 7.2 (the change is not identified yet); Debian's 7.2.7 reads them correctly",
    evidence:
      "UML 6.1.176 and 6.12: three TLS 1.3 AES-128-GCM records of 100 bytes with one byte of padding, written together, read back as 0x17 followed by the first record's bytes from byte 100 on; TlsRxNoPadViolation counts 3; correct with the option off, and on 7.2 (test/socket/rx-no-pad.kernel.test.ts)",
  },
];

/** `major.minor` of a kernel release string (`5.10.0-28-amd64` → [5, 10]). */
export function kernelVersion(rel: string = release()): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(rel);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

function olderThan(rel: string, before: string): boolean {
  const [a, b] = kernelVersion(rel);
  const [x, y] = before.split('.').map(Number);
  return a < x || (a === x && b < y);
}

/** A loopback pair whose fds we own (duplicates, non-blocking) and node:net no longer reads. */
async function ownedPair(b: Binding): Promise<{ fds: [number, number]; close(): void }> {
  const [c, s] = await loopbackPair();
  for (const sock of [c, s]) uvHandle(sock)?.readStop();
  const fds: [number, number] = [b.adopt(uvHandle(c)?.fd ?? -1), b.adopt(uvHandle(s)?.fd ?? -1)];
  const close = (): void => {
    for (const fd of fds) if (fd >= 0) b.closeFd(fd);
    c.destroy();
    s.destroy();
  };
  if (fds[0] < 0 || fds[1] < 0) {
    close();
    throw new Error(`fcntl(F_DUPFD_CLOEXEC): ${errnoName(Math.min(...fds))}`);
  }
  return { fds, close };
}

interface Keys {
  key: Buffer;
  iv: Buffer;
}

function install(b: Binding, fd: number, dir: number, version: TlsVersion, cipher: CipherName, k: Keys): number {
  const spec = cipherSpec(cipher);
  const ulp = b.setUlp(fd);
  if (ulp < 0) return ulp;
  return b.setKeys(fd, dir, versionNumber(version), spec.id, Buffer.from(k.key), Buffer.from(k.iv), Buffer.alloc(8));
}

function freshKeys(cipher: CipherName): Keys {
  const spec = cipherSpec(cipher);
  return { key: randomBytes(spec.keySize), iv: randomBytes(spec.nonceSize) };
}

/** Reads raw bytes from a non-blocking fd until `enough(buf)` or about a second passes. */
async function readUntil(b: Binding, fd: number, enough: (buf: Buffer) => boolean): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const scratch = Buffer.alloc(65536);
  for (let waited = 0; waited < 1000; waited += 5) {
    const n = b.readFd(fd, scratch, 0, scratch.length);
    if (n > 0) chunks.push(Buffer.from(scratch.subarray(0, n)));
    if (enough(Buffer.concat(chunks))) break;
    if (n <= 0) await new Promise((r) => setTimeout(r, 5));
  }
  return Buffer.concat(chunks);
}

/** Opens one TLS 1.3 AES-128-CCM record with `nonce`; the inner plaintext or null. */
function openCcm(record: Buffer, key: Buffer, nonce: Buffer): Buffer | null {
  const body = record.subarray(5);
  const ct = body.subarray(0, body.length - 16);
  try {
    const d = createDecipheriv('aes-128-ccm', key, nonce, { authTagLength: 16 });
    d.setAuthTag(body.subarray(body.length - 16));
    d.setAAD(record.subarray(0, 5), { plaintextLength: ct.length });
    const out = d.update(ct);
    d.final();
    return out;
  } catch {
    return null;
  }
}

function xorSeq(iv: Buffer, seq: bigint): Buffer {
  const n = Buffer.from(iv);
  const s = Buffer.alloc(12);
  s.writeBigUInt64BE(seq & 0xffffffffffffffffn, 4);
  for (let i = 0; i < 12; i++) n[i] ^= s[i];
  return n;
}

type Detector = (b: Binding, version: TlsVersion, cipher: CipherName) => Promise<string | null>;

/** Each returns what it saw when the defect is there, or null. */
const DETECTORS: Record<string, Detector> = {
  async 'ccm-tls13-nonce'(b, version, cipher) {
    const p = await ownedPair(b);
    try {
      const k = freshKeys(cipher);
      const rc = install(b, p.fds[0], b.constants.TLS_TX, version, cipher, k);
      if (rc < 0) return null; // not installable: the probe says so already
      const h = new b.Handle(p.fds[0], () => undefined, new Int32Array(1));
      try {
        for (const text of ['first', 'second']) h.send([Buffer.from(text)], b.constants.RECORD_APPLICATION_DATA);
      } finally {
        h.close();
        p.fds[0] = -1;
      }
      const raw = await readUntil(b, p.fds[1], (buf) => splitRecords(buf).length >= 2);
      const second = splitRecords(raw)[1];
      if (!second) return 'kernel TX did not send two records';
      if (openCcm(second, k.key, xorSeq(k.iv, 1n))) return null;
      if (openCcm(second, k.key, xorSeq(k.iv, 1n << 8n))) return 'record 1 opens only with the sequence number XORed one byte early';
      return 'record 1 fails authentication';
    } finally {
      p.close();
    }
  },
  async 'seq-getsockopt'(b, version, cipher) {
    const p = await ownedPair(b);
    try {
      const k = freshKeys(cipher);
      if (install(b, p.fds[0], b.constants.TLS_TX, version, cipher, k) < 0) return null;
      const tx = b.getSeq(p.fds[0], b.constants.TLS_TX);
      if (typeof tx === 'number') return `getsockopt(TLS_TX): ${errnoName(tx)}`;
      if (install(b, p.fds[1], b.constants.TLS_RX, version, cipher, k) < 0) return null;
      const rx = b.getSeq(p.fds[1], b.constants.TLS_RX);
      return typeof rx === 'number' ? `getsockopt(TLS_RX): ${errnoName(rx)}` : null;
    } finally {
      p.close();
    }
  },
  async 'rx-no-pad-retry'(b) {
    const p = await ownedPair(b);
    try {
      const k = freshKeys('aes-128-gcm');
      if (install(b, p.fds[1], b.constants.TLS_RX, 'TLSv1.3', 'aes-128-gcm', k) < 0) return null;
      if (b.setsockoptInt(p.fds[1], b.constants.SOL_TLS, b.constants.TLS_RX_EXPECT_NO_PAD, 1) < 0) return null; // no option, no defect
      const parts = [0x41, 0x42, 0x43].map((c) => Buffer.alloc(100, c));
      const wire = paddedRecords(k, parts);
      if (b.writeFd(p.fds[0], wire, 0, wire.length) !== wire.length) throw new Error('the padded records were not written at once');
      const want = Buffer.concat(parts);
      const got = await readUntil(b, p.fds[1], (buf) => buf.length >= want.length);
      for (let i = 0; i < want.length; i++)
        if (got[i] !== want[i]) return `byte ${i} of three padded records read back as 0x${(got[i] ?? 0).toString(16)}, not 0x${want[i].toString(16)}`;
      return null;
    } finally {
      p.close();
    }
  },
  async 'splice-peek'(b, version, cipher) {
    const p = await ownedPair(b);
    const pipe = b.pipe(1, 0);
    try {
      if (typeof pipe === 'number') throw new Error(`pipe2: ${errnoName(pipe)}`);
      const k = freshKeys(cipher);
      if (install(b, p.fds[0], b.constants.TLS_TX, version, cipher, k) < 0) return null;
      if (install(b, p.fds[1], b.constants.TLS_RX, version, cipher, k) < 0) return null;
      const h = new b.Handle(p.fds[0], () => undefined, new Int32Array(1));
      try {
        h.send([Buffer.alloc(100, 1)], b.constants.RECORD_APPLICATION_DATA);
        for (let waited = 0; waited < 1000 && (b.ready(p.fds[1], 1) & 1) === 0; waited += 5) await new Promise((r) => setTimeout(r, 5));
        const flags = b.constants.SPLICE_F_NONBLOCK;
        const first = b.splice(p.fds[1], pipe[1], 100, flags);
        const again = b.splice(p.fds[1], pipe[1], 100, flags);
        if (first !== 100) return null; // nothing spliced at all: no sign of this defect
        return again === 100 ? 'a second splice returned the same record again' : null;
      } finally {
        h.close();
        p.fds[0] = -1;
      }
    } finally {
      if (typeof pipe !== 'number') for (const fd of pipe) b.closeFd(fd);
      p.close();
    }
  },
};

/** TLS 1.3 AES-128-GCM application-data records of `parts`, each padded with one zero byte (RFC 8446 §5.4). */
function paddedRecords(k: Keys, parts: Buffer[]): Buffer {
  return Buffer.concat(
    parts.map((data, seq) => {
      const inner = Buffer.concat([data, Buffer.of(23, 0)]);
      const header = Buffer.from([23, 3, 3, 0, 0]);
      header.writeUInt16BE(inner.length + 16, 3);
      const c = createCipheriv('aes-128-gcm', k.key, xorSeq(k.iv, BigInt(seq)));
      c.setAAD(header);
      return Buffer.concat([header, c.update(inner), c.final(), c.getAuthTag()]);
    }),
  );
}

function splitRecords(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; buf.length - off >= 5;) {
    const end = off + 5 + buf.readUInt16BE(off + 3);
    if (end > buf.length) break;
    out.push(buf.subarray(off, end));
    off = end;
  }
  return out;
}

/**
 * Runs one defect's detector now, whatever the kernel's version (tests use it
 * to show a fixed kernel does not have it). What it saw, or null.
 */
export async function detectDefect(id: string, version: TlsVersion, cipher: CipherName): Promise<string | null> {
  const detector = DETECTORS[id];
  if (!detector) throw new RangeError(`unknown kernel defect ${id}`);
  const { binding } = loadBinding();
  if (!binding) return null;
  return detector(binding, version, cipher);
}

/** A defect confirmed on this kernel for one version × cipher. */
export interface ConfirmedDefect {
  /** The table's entry. */
  defect: KernelDefect;
  /** What the detector saw. */
  observed: string;
}

const cache = new Map<string, Promise<ConfirmedDefect[]>>();

/**
 * Every defect of `area` this kernel has for `version` × `cipher` (none: []).
 * Free outside the table's ranges; inside, tried once per process.
 */
export function kernelDefects(area: DefectArea, version: TlsVersion, cipher: CipherName, rel: string = release()): Promise<ConfirmedDefect[]> {
  const candidates = KERNEL_DEFECTS.filter((d) => d.area === area && d.versions.includes(version) && d.ciphers.includes(cipher) && olderThan(rel, d.before));
  if (candidates.length === 0) return Promise.resolve([]);
  const key = `${area} ${version} ${cipher} ${rel}`;
  let hit = cache.get(key);
  if (!hit) {
    hit = (async (): Promise<ConfirmedDefect[]> => {
      const found: ConfirmedDefect[] = [];
      for (const defect of candidates) {
        try {
          const observed = await detectDefect(defect.id, version, cipher);
          if (observed !== null) found.push({ defect, observed });
        } catch (err) {
          // Inside the range and unproven either way: assume the defect, and try again next time.
          cache.delete(key);
          found.push({ defect, observed: `could not be checked (${(err as Error).message}); assumed present` });
        }
      }
      return found;
    })();
    cache.set(key, hit);
  }
  return hit;
}

/** The first of {@link kernelDefects}, or null: what decides whether the kernel carries a suite. */
export async function kernelDefect(area: DefectArea, version: TlsVersion, cipher: CipherName, rel: string = release()): Promise<ConfirmedDefect | null> {
  return (await kernelDefects(area, version, cipher, rel))[0] ?? null;
}

/** What to do about a confirmed defect (the hint of its `ERR_KTLS_UNAVAILABLE`). */
export const DEFECT_HINT = 'use { fallback: "userspace" } to carry such connections with userspace records, or run a kernel with the fix';

/** One line for a warning or an error: what is wrong and what fixed it. */
export function describeDefect(d: ConfirmedDefect): string {
  return `known kernel defect ${d.defect.id} (${d.observed}): ${d.defect.summary}; fixed in ${d.defect.fixedIn}`;
}
