// The kTLS suite runs only under a kernel with kTLS. This asserts that it does
// (failing, never skipping, if not) and says which kernel it is.
import type { Test } from 'tap';
import { probe, type Capabilities } from '../../lib/native/probe.js';
import type { CipherName, TlsVersion } from '../../lib/native/constants.js';

let caps: Promise<Capabilities> | undefined;

/**
 * What the running kernel's kTLS can do (`probe()`, once per process): the one
 * place tests ask before branching on a kernel feature (TLS 1.3 rekey,
 * TLS_TX_MAX_PAYLOAD_LEN, TLS_RX_EXPECT_NO_PAD, known defects). Each branch
 * asserts what that kernel does: the feature works, or its typed error.
 */
export function capabilities(): Promise<Capabilities> {
  caps ??= probe();
  return caps;
}

/** Whether kernel TX/RX carry `version` × `cipher` (installs both ways, no known defect). */
export function carries(c: Capabilities, version: TlsVersion, cipher: CipherName): boolean {
  return c.ciphers.some((r) => r.version === version && r.cipher === cipher && r.tx && r.rx && !r.defect);
}

/** The kernel's capabilities; fails the test run if it has no kTLS. */
export async function requireKtls(t: Test): Promise<Capabilities> {
  const c = await capabilities();
  t.comment(`kTLS kernel: ${process.env.KTLS_KERNEL_LABEL ?? `native ${c.kernelRelease}`}`);
  t.equal(c.ulp, true, `the kernel has the tls ULP (${c.ulpError ?? 'ok'})`);
  if (!c.ulp) throw new Error('kTLS tests must run under a kernel with kTLS: run them through `npm test`');
  return c;
}

/** The AES-GCM core every kTLS kernel since 5.2 has, in both directions. */
export const CORE: ReadonlyArray<[TlsVersion, CipherName]> = [
  ['TLSv1.2', 'aes-128-gcm'],
  ['TLSv1.2', 'aes-256-gcm'],
  ['TLSv1.3', 'aes-128-gcm'],
  ['TLSv1.3', 'aes-256-gcm'],
];

/** Every version × cipher the kernel installs in both directions; asserts the core is among them. */
export async function kernelMatrix(t: Test): Promise<Array<[TlsVersion, CipherName]>> {
  const c = await requireKtls(t);
  const ok = c.ciphers.filter((r) => carries(c, r.version, r.cipher)).map((r): [TlsVersion, CipherName] => [r.version, r.cipher]);
  for (const [v, ci] of CORE)
    t.ok(
      ok.some(([a, b]) => a === v && b === ci),
      `kernel supports ${v} ${ci}`,
    );
  const missing = c.ciphers.filter((r) => !carries(c, r.version, r.cipher)).map((r) => `${r.version} ${r.cipher} (${r.error ?? r.defect})`);
  t.comment(`kernel matrix: ${ok.map(([v, ci]) => `${v} ${ci}`).join(', ')}${missing.length ? `; not supported by this kernel: ${missing.join(', ')}` : ''}`);
  return ok;
}
