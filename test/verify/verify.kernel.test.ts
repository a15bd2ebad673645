// The verify suite (`ktls-verify --all`) through the same module the CLI uses:
// every check must pass, or be "not supported by this kernel" for a reason the
// suite allows (an optional kernel feature, or a cipher outside the AES-GCM core).
import t from 'tap';
import { CORE, requireKtls } from '../helpers/kernel.js';
import { GROUPS, SUITE, runVerify, type CheckResult } from '../../lib/verify/runner.js';

function describe(r: CheckResult): string {
  return `${r.group} ${r.version} ${r.cipher} ${r.id}${r.reason ? `: ${r.reason}` : ''}${Object.keys(r.observed).length ? ` ${JSON.stringify(r.observed)}` : ''}`;
}

for (const group of GROUPS) {
  t.test(`verify group ${group}`, async (t) => {
    const caps = await requireKtls(t);
    const report = await runVerify({ groups: [group], caps });
    t.equal(report.available, true, 'kTLS available');
    const expected = SUITE[group].checks.reduce((n, c) => n + (c.versions?.length ?? 2), 0) * 4;
    t.equal(report.results.length, expected, `${expected} results: every check in every cell`);
    for (const r of report.results) {
      if (r.status === 'unsupported') {
        const check = SUITE[group].checks.find((c) => c.id === r.id);
        const core = CORE.some(([v, c]) => v === r.version && c === r.cipher);
        t.ok(r.reason && r.reason.length > 0, `${describe(r)}: has a reason`);
        t.ok(check?.needs !== undefined || !core, `${describe(r)}: "not supported" is allowed only for optional features or non-core ciphers`);
        t.comment(`not supported by this kernel: ${describe(r)}`);
      } else {
        t.equal(r.status, 'pass', describe(r));
      }
    }
    const t0 = report.totals;
    t.comment(`${group}: ${t0.passed} passed, ${t0.failed} failed, ${t0.unsupported} not supported (${report.ms} ms)`);
  });
}
