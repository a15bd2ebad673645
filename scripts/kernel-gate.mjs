#!/usr/bin/env node
// CI's last word on kernels: exits 1 unless the whole kTLS suite ran and passed
// under at least one kernel without TLS 1.3 rekey (< 6.14) and one with it
// (>= 6.14). Reads the runs `npm test` and `npm run test:kernels -- --suite`
// recorded (scripts/ktls-suite.mjs). A kernel this host could not boot is no
// excuse: it counts as not run.
import { readRuns } from './ktls-suite.mjs';

const runs = readRuns();
const line = (r) =>
  `${r.name}: ${r.label} [${r.generation === 'rekey' ? '>= 6.14' : '< 6.14'}]: ${r.passed} passed, ${r.failed} failed (exit ${r.status}, ${r.files} files${r.complete ? '' : ', FILTERED'}, ${r.seconds} s)`;
for (const r of runs) console.log(`kernel-gate: ${line(r)}`);
const passed = runs.filter((r) => r.complete && r.status === 0 && r.failed === 0 && r.passed > 0);
const missing = ['pre', 'rekey'].filter((g) => !passed.some((r) => r.generation === g));
if (missing.length) {
  const name = { pre: 'a kernel without TLS 1.3 rekey (< 6.14)', rekey: 'a kernel with it (>= 6.14)' };
  console.error(`kernel-gate: FAIL: the whole kTLS suite has not passed under ${missing.map((g) => name[g]).join(' or ')}`);
  process.exit(1);
}
console.log(
  `kernel-gate: the kTLS suite passed under both generations: ${['pre', 'rekey'].map((g) => passed.find((r) => r.generation === g).label).join('; ')}`,
);
