// The evidence behind docs/node-tls-parity.md. A test that proves a node:tls
// member works on ktls calls parity(t, 'TLSSocket#getFinished', socket); when
// that test ends passing, one JSON line goes to $KTLS_PARITY_LOG (set by
// scripts/test.mjs), naming the member, the test, how the socket carried
// records and the kTLS kernel it ran under, if any. scripts/parity.mjs builds
// the table, one column per kernel generation, from those lines only.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Test } from 'tap';

/**
 * A node:tls / node:net member: `TLSSocket#name` (method or property),
 * `TLSSocket@event`, `Server#name`, `Server@event`, or a module function
 * (`tls.connect`, `tls.createServer`, `https.createServer`).
 */
export type ParityMember = `${'TLSSocket' | 'Server'}${'#' | '@'}${string}` | 'tls.connect' | 'tls.createServer' | 'https.createServer';

/** How the socket of a parity proof carried its records. */
export type ParityPath = 'kernel' | 'userspace' | 'node:tls';

/** What a proof says about the socket it used: `kernel` as KtlsSocket#kernel, or nothing for server-level members. */
export interface ParitySocket {
  readonly kernel: boolean;
  readonly cipher?: string | null;
}

function pathOf(s: ParitySocket | undefined): ParityPath | 'n/a' {
  if (!s) return 'n/a';
  if (s.kernel) return 'kernel';
  return s.cipher === null ? 'node:tls' : 'userspace';
}

/** Where a test ran its compiled file from, as the table names it (`test/x/y.test.ts`). */
const testFileName = (): string =>
  path
    .relative(process.cwd(), process.argv[1] ?? '')
    .replace(/^dist\//, '')
    .replace(/\.js$/, '.ts');

/**
 * Records that in `t` (if it ends passing) the differential suite saw `members` behave otherwise
 * than on node:tls, as its allow-list accepts with `reason`: the table does not mark them ✓.
 */
export function parityDiffers(t: Test, members: readonly ParityMember[], scenario: string, reason: string, socket?: ParitySocket): void {
  const file = process.env.KTLS_PARITY_LOG;
  if (!file) return;
  const how = pathOf(socket);
  const testFile = testFileName();
  t.teardown(() => {
    if (!t.passing()) return;
    const ran = process.env.KTLS_KERNEL_LABEL ? { kernel: os.release() } : {};
    const lines = members.map((member) => JSON.stringify({ member, path: how, file: testFile, differs: { scenario, reason }, ...ran }) + '\n');
    fs.appendFileSync(file, lines.join(''));
  });
}

/** Records that `t`, if it ends passing, proves `members` on ktls (with `socket`'s record path). */
export function parity(t: Test, members: ParityMember | readonly ParityMember[], socket?: ParitySocket): void {
  const file = process.env.KTLS_PARITY_LOG;
  if (!file) return;
  const list = typeof members === 'string' ? [members] : members;
  const how = pathOf(socket);
  const testFile = testFileName();
  t.teardown(() => {
    if (!t.passing()) return;
    // Where it ran: under a kTLS kernel (the runner labels those runs) and which release, or on a host without one.
    const ran = process.env.KTLS_KERNEL_LABEL ? { kernel: os.release() } : {};
    const lines = list.map((member) => JSON.stringify({ member, path: how, file: testFile, test: t.fullname, ...ran }) + '\n');
    fs.appendFileSync(file, lines.join(''));
  });
}
