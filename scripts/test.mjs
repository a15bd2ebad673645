#!/usr/bin/env node
// `npm test`: compiles the TypeScript, runs the whole suite on the host, then
// runs the kTLS suite (test/**/*.kernel.test.ts) under a kernel that has kTLS: this host's
// own where it has the tls module, else the user-mode-linux harness. If neither
// can run, the run fails and says why: kTLS tests are never skipped.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parityCheck } from './parity.mjs';
import { filtered, recordRun, resetRuns, runKtlsSuite } from './ktls-suite.mjs';
import { spawnTee, summarize, tee, testFiles } from './tap-run.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);
const tapBin = path.join(root, 'node_modules', '.bin', 'tap');
const tapArgs = ['--disable-coverage', '--reporter=tap', '--timeout=240', '--jobs=1'];
// Tests that prove a node:tls member append to this log (test/helpers/parity-log.ts);
// docs/node-tls-parity.md must match what this run proved.
const parityLog = path.join(root, '.cache', 'parity', 'log.jsonl');
const env = { ...process.env, NO_COLOR: '1', TAP_COLORS: '0', KTLS_PARITY_LOG: parityLog };

const files = (dir) => filtered(testFiles(root, dir));

async function tapOnHost(list, label) {
  const sink = tee();
  const status = await spawnTee(tapBin, [...tapArgs, ...list], { ...env, ...(label ? { KTLS_KERNEL_LABEL: label } : {}) }, sink);
  return { status, summary: summarize(sink.text()) };
}

/** Does the host kernel itself do kTLS? Decided by trying (probe), not by version. */
function hostHasKtls() {
  const r = spawnSync(process.execPath, ['-e', `require('./dist/lib/native/probe.js').probe().then(c => { console.log(JSON.stringify(c)); })`], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`probe failed: ${r.stderr}`);
  const caps = JSON.parse(r.stdout);
  return { ok: caps.ulp && caps.ciphers.some((c) => c.tx && c.rx), caps };
}

async function main() {
  const tsc = spawnSync(path.join(root, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], { stdio: 'inherit' });
  if (tsc.status !== 0) return fail('TypeScript compilation failed');
  const addon = ['build/Release/ktls.node'].some((f) => fs.existsSync(path.join(root, f))) || fs.existsSync(path.join(root, 'prebuilds'));
  if (!addon) return fail('the native addon is not built: run `npm install` first');

  fs.mkdirSync(path.dirname(parityLog), { recursive: true });
  fs.writeFileSync(parityLog, '');
  const results = [];
  console.log('# === host suite (any kernel): ' + os.release() + ' ===');
  results.push({ name: 'host', ...(await tapOnHost(files('host'))) });

  const { ok, caps } = hostHasKtls();
  resetRuns();
  let label;
  if (ok) {
    label = `native ${os.release()}`;
    console.log(`# === kTLS suite under ${label} ===`);
    const t0 = Date.now();
    const run = await tapOnHost(files('kernel'), label);
    results.push({ name: 'kernel', ...run });
    const s = run.summary ?? { total: 0, pass: 0, fail: 0 };
    const complete = !process.env.KTLS_TEST_FILTER;
    recordRun('npm-test', {
      label,
      release: os.release(),
      status: run.status,
      passed: s.pass,
      failed: s.fail,
      total: s.total,
      complete,
      seconds: Math.round((Date.now() - t0) / 1000),
    });
  } else {
    console.log(`# host kernel ${os.release()} has no kTLS (TCP_ULP "tls": ${caps.ulpError ?? 'no cipher installs'}); using the user-mode-linux harness`);
    let run;
    try {
      run = await runKtlsSuite('npm-test', { env: { KTLS_PARITY_LOG: parityLog } });
    } catch (err) {
      return fail(`no kernel with kTLS can run the kTLS tests: the host lacks the tls module and the user-mode-linux harness failed: ${err.message}`);
    }
    label = run.label;
    results.push({ name: `kernel (${label})`, status: run.status, summary: run.total ? { total: run.total, pass: run.passed, fail: run.failed } : null });
  }

  let passed = 0;
  let failed = 0;
  console.log('\n# === summary ===');
  for (const r of results) {
    const s = r.summary ?? { total: 0, pass: 0, fail: 0 };
    const bad = r.status !== 0 || !r.summary || s.total === 0;
    passed += s.pass;
    failed += bad ? Math.max(s.fail, 1) : s.fail;
    console.log(`# ${r.name}: ${s.pass} passed, ${s.fail} failed (tap exit ${r.status})`);
  }
  console.log(`# kTLS tests ran under: ${label}`);
  // A filtered run proves only part of the table.
  if (!process.env.KTLS_TEST_FILTER && (await parityCheck(parityLog, path.join(root, 'docs', 'node-tls-parity.md'))) !== 0) failed += 1;
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

function fail(message) {
  console.error(`npm test: ${message}`);
  return 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
