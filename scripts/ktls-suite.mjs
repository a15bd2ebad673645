// The kTLS suite under a user-mode-linux kernel, as `npm test` and
// `npm run test:kernels -- --suite` run it: every test file inside the guest
// (the host files meet real kTLS there too) but the harness's own, and a record of each run under
// .cache/kernel-runs/ that scripts/kernel-gate.mjs reads: CI passes only when
// the suite passed under a kernel without TLS 1.3 rekey (< 6.14) and one with it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generationOf, runInUml } from './uml.mjs';
import { summarize, tee, testFiles } from './tap-run.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const RUNS_DIR = process.env.KTLS_KERNEL_RUNS || path.join(root, '.cache', 'kernel-runs');
export const TAP_ARGS = ['--disable-coverage', '--reporter=tap', '--timeout=240', '--jobs=1'];

/** Forgets earlier runs (a new `npm test` starts the count again). */
export function resetRuns() {
  fs.rmSync(RUNS_DIR, { recursive: true, force: true });
}

/**
 * Remembers one run of the kTLS suite: `{ name, label, release, generation,
 * status, passed, failed, files, seconds }`. Only a run of every test file
 * counts for the gate (`complete`); a filtered one is kept but says so.
 */
export function recordRun(name, run) {
  fs.mkdirSync(RUNS_DIR, { recursive: true });
  const rec = { name, ...run, generation: generationOf(run.release), at: new Date().toISOString() };
  fs.writeFileSync(path.join(RUNS_DIR, `${name.replace(/[^\w.-]/g, '_')}.json`), JSON.stringify(rec, null, 2) + '\n');
  return rec;
}

/** Every recorded run. */
export function readRuns() {
  if (!fs.existsSync(RUNS_DIR)) return [];
  return fs
    .readdirSync(RUNS_DIR)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(fs.readFileSync(path.join(RUNS_DIR, f), 'utf8')));
}

/** `files` narrowed to those whose path contains one of $KTLS_TEST_FILTER's comma-separated parts (all without it). */
export function filtered(files) {
  const filter = process.env.KTLS_TEST_FILTER;
  return filter ? files.filter((f) => filter.split(',').some((x) => f.includes(x))) : files;
}

/**
 * Runs every compiled test file under UML `kernel` (a name, `auto`, `pre` or
 * `rekey`; see scripts/uml.mjs) and records the run as `name`. Resolves with
 * the record; throws where no kernel of that kind boots. The whole suite takes
 * 25-45 minutes under UML on two cores, hence the hour before the guest is killed.
 */
export async function runKtlsSuite(name, { kernel = 'auto', env = {}, timeout = 3600 } = {}) {
  const tapBin = path.join(root, 'node_modules', '.bin', 'tap');
  const files = filtered(testFiles(root, 'guest'));
  const sink = tee();
  const t0 = Date.now();
  const uml = await runInUml([tapBin, ...TAP_ARGS, ...files], {
    kernel,
    cwd: root,
    output: sink,
    env: { NO_COLOR: '1', TAP_COLORS: '0', ...env },
    ...(timeout ? { timeout } : {}),
  });
  const summary = summarize(sink.text()) ?? { total: 0, pass: 0, fail: 0 };
  const label =
    uml.kernelLabel + (uml.skippedKernels ? ` (this host cannot boot ${uml.skippedKernels.map((k) => `${k.kernel}: ${k.reason}`).join('; ')})` : '');
  return recordRun(name, {
    label,
    release: uml.release,
    status: uml.status,
    passed: summary.pass,
    failed: summary.fail,
    total: summary.total,
    files: files.length,
    complete: !process.env.KTLS_TEST_FILTER,
    seconds: Math.round((Date.now() - t0) / 1000),
  });
}
