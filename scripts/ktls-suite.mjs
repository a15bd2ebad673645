// The kTLS suite under a user-mode-linux kernel, as `npm test` and
// `npm run test:kernels -- --suite` run it: every test file inside the guest
// (the host files meet real kTLS there too) but the harness's own, and a record of each run under
// .cache/kernel-runs/ that scripts/kernel-gate.mjs reads: CI passes only when
// the suite passed under a kernel without TLS 1.3 rekey (< 6.14) and one with it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KERNEL_NAMES, generationOf, runInUml } from './uml.mjs';
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

/** Seconds each file took in earlier runs on this machine, for splitting the next one. */
const DURATIONS = path.join(root, '.cache', 'test-durations.json');

function readDurations() {
  try {
    return JSON.parse(fs.readFileSync(DURATIONS, 'utf8'));
  } catch {
    return {};
  }
}

/** Splits `files` into `n` lists of about equal time, longest first (earlier durations, else a guess). */
export function shard(files, n, known = readDurations()) {
  const guess = (f) => known[f] ?? (/fuzz|soak|random|server-fds|cluster|frameworks|express|fastify/.test(f) ? 40 : 10);
  const bins = Array.from({ length: n }, () => ({ files: [], load: 0 }));
  for (const f of [...files].sort((a, b) => guess(b) - guess(a))) {
    const bin = bins.reduce((a, b) => (b.load < a.load ? b : a));
    bin.files.push(f);
    bin.load += guess(f);
  }
  return bins.map((b) => b.files.sort()).filter((b) => b.length > 0);
}

/**
 * How many guests to run side by side: one per core (a UML guest uses one),
 * at most 4 and as many as memory allows (each gets 1.5 GiB);
 * $KTLS_UML_SHARDS overrides.
 */
export function shardCount() {
  const fromEnv = Number(process.env.KTLS_UML_SHARDS);
  if (Number.isInteger(fromEnv) && fromEnv > 0) return fromEnv;
  const cores = os.availableParallelism?.() ?? os.cpus().length;
  return Math.max(1, Math.min(cores, 4, Math.floor(os.totalmem() / 2 ** 31)));
}

/**
 * Runs every compiled test file under UML `kernel` (a name, `auto`, `pre` or
 * `rekey`; see scripts/uml.mjs) and records the run as `name`. The files are
 * split across {@link shardCount} guests of that same kernel booted side by
 * side (each has its own network stack; files and ports do not collide), the
 * first one's output streamed, the others' printed as each ends. Resolves with
 * the record; throws where no kernel of that kind boots. A guest that runs
 * past `timeout` seconds is killed.
 */
export async function runKtlsSuite(name, { kernel = 'auto', env = {}, timeout = 3600 } = {}) {
  const tapBin = path.join(root, 'node_modules', '.bin', 'tap');
  const files = filtered(testFiles(root, 'guest'));
  const t0 = Date.now();
  const guestEnv = { NO_COLOR: '1', TAP_COLORS: '0', ...env };
  const lists = shard(files, Math.min(shardCount(), files.length));
  let exact = kernel;
  let skipped;
  if (lists.length > 1 && !KERNEL_NAMES.includes(kernel)) {
    // Every guest must be the same kernel: find which one `auto`/`pre`/`rekey` boots here first.
    const probe = await runInUml(['true'], { kernel, output: { write: () => true } });
    exact = probe.kernel;
    skipped = probe.skippedKernels;
  }
  const runs = await Promise.all(
    lists.map(async (list, i) => {
      const sink = i === 0 ? tee() : quiet();
      const uml = await runInUml([tapBin, ...TAP_ARGS, ...list], { kernel: exact, cwd: root, output: sink, env: guestEnv, timeout, slot: i });
      if (i > 0) process.stdout.write(`\n# === guest ${i + 1} of ${lists.length} (${list.length} files) ===\n${sink.text()}`);
      return { uml, text: sink.text(), summary: summarize(sink.text()) ?? { total: 0, pass: 0, fail: 0 } };
    }),
  );
  const first = runs[0].uml;
  skipped ??= first.skippedKernels;
  const label = first.kernelLabel + (skipped ? ` (this host cannot boot ${skipped.map((k) => `${k.kernel}: ${k.reason}`).join('; ')})` : '');
  saveDurations(runs.map((r) => r.text).join('\n'));
  const sum = (k) => runs.reduce((n, r) => n + r.summary[k], 0);
  return recordRun(name, {
    label,
    release: first.release,
    status: runs.reduce((s, r) => s || r.uml.status || (r.summary.total === 0 ? 1 : 0), 0),
    passed: sum('pass'),
    failed: sum('fail'),
    total: sum('total'),
    files: files.length,
    guests: runs.length,
    complete: !process.env.KTLS_TEST_FILTER,
    seconds: Math.round((Date.now() - t0) / 1000),
  });
}

/** A sink that only remembers. */
function quiet() {
  let text = '';
  return {
    write: (s) => ((text += s), true),
    text: () => text,
  };
}

function saveDurations(tapText) {
  const known = readDurations();
  for (const m of tapText.matchAll(/^(?:not )?ok \d+ - (dist\/\S+) # time=([\d.]+)ms/gm)) known[m[1]] = Math.round(Number(m[2]) / 100) / 10;
  fs.mkdirSync(path.dirname(DURATIONS), { recursive: true });
  fs.writeFileSync(DURATIONS, JSON.stringify(known, null, 2) + '\n');
}
