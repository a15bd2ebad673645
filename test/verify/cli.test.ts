// `ktls-verify` as a command: usage errors exit 2, --help exits 0, and on a
// kernel without kTLS every run exits 3 with the hint (on one with kTLS, a
// narrow run exits 0). Runs on any kernel.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { probe } from '../../lib/native/probe.js';
import { parseArgs, UsageError } from '../../lib/verify/cli.js';
import { formatTable, formatTap } from '../../lib/verify/report.js';
import { exitCodeOf, type VerifyReport } from '../../lib/verify/runner.js';

const cli = path.resolve(__dirname, '..', '..', 'lib', 'verify', 'cli.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });

t.test('--help exits 0 and describes every group and exit status', async (t) => {
  const r = run('--help');
  t.equal(r.status, 0);
  for (const word of [
    'usage: ktls-verify',
    '--all',
    '--sendpage',
    '--transmission',
    '--splice-read',
    '--handling',
    '--probe',
    '--json',
    '--tap',
    '--uml',
    'exit status',
  ])
    t.match(r.stdout, word);
});

t.test('usage errors exit 2 and name the problem', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['--bogus'], /unknown option '--bogus'/],
    [['--version', '1.1'], /unknown TLS version '1.1'/],
    [['--cipher', 'rot13'], /unknown cipher 'rot13'/],
    [['--json', '--tap'], /cannot be combined/],
    [['--check', 'nope'], /unknown check 'nope'/],
    [['--cipher'], /--cipher needs a value/],
    [['--all=yes'], /--all takes no value/],
    [['--uml=9.9'], /unknown UML kernel '9.9'/],
  ];
  for (const [args, message] of cases) {
    const r = run(...args);
    t.equal(r.status, 2, `${args.join(' ')}: exit 2`);
    t.match(r.stderr, message, `${args.join(' ')}: says why`);
    t.match(r.stderr, /usage: ktls-verify/, `${args.join(' ')}: prints usage`);
  }
});

t.test('parseArgs: groups, filters and formats', async (t) => {
  const o = parseArgs(['--sendpage', '--handling', '--version', 'TLSv1.3,1.2', '--cipher=aes-128-gcm', '--tap', '--uml=all']);
  t.same(o.groups, ['sendpage', 'handling']);
  t.same(o.versions, ['TLSv1.3', 'TLSv1.2']);
  t.same(o.ciphers, ['aes-128-gcm']);
  t.equal(o.format, 'tap');
  t.same(o.uml, ['all']);
  t.same(parseArgs(['--all']).groups, ['transmission', 'handling', 'sendpage', 'splice-read']);
  t.same(parseArgs(['--uml']).uml, ['auto']);
  const err = (() => {
    try {
      parseArgs(['-x']);
      return null;
    } catch (e) {
      return e as UsageError;
    }
  })();
  t.ok(err instanceof UsageError);
  t.equal(err?.code, 'ERR_KTLS_USAGE');
});

t.test('--all: exit 3 with the hint where the kernel has no kTLS, else a narrow run passes', async (t) => {
  const caps = await probe();
  if (!caps.ulp) {
    const r = run('--all');
    t.equal(r.status, 3, 'exit 3: kTLS not available');
    t.match(r.stderr, /has no kTLS: setsockopt\(TCP_ULP, "tls"\) failed with ENOENT/);
    t.match(r.stderr, /modprobe tls/, 'hint: load the module');
    t.match(r.stderr, /--uml/, 'hint: or use --uml');
    const j = run('--all', '--json');
    t.equal(j.status, 3);
    const report = JSON.parse(j.stdout) as VerifyReport;
    t.equal(report.available, false);
    t.equal(report.results.length, 0);
    t.match(report.unavailableReason, /modprobe tls/);
    const p = run('--probe');
    t.equal(p.status, 3, '--probe: exit 3');
    t.match(p.stdout, /no kTLS/);
    const tap = run('--all', '--tap');
    t.equal(tap.status, 3);
    t.match(tap.stdout, /^1\.\.0 # SKIP .*no kTLS/m);
  } else {
    const r = run('--handling', '--check', 'ulp-twice', '--version', '1.3', '--cipher', 'aes-128-gcm', '--json');
    t.equal(r.status, 0, `kTLS kernel: a narrow run exits 0 (${r.stderr})`);
    const report = JSON.parse(r.stdout) as VerifyReport;
    t.same(report.totals, { passed: 1, failed: 0, unsupported: 0 });
    t.equal(run('--probe').status, 0, '--probe: exit 0');
  }
});

t.test('table and TAP rendering: failures, passes and "not supported" are distinct', async (t) => {
  const base = { group: 'handling', title: 't', version: 'TLSv1.3', observed: {}, ms: 1 } as const;
  const report: VerifyReport = {
    kernel: 'x',
    node: 'v',
    available: true,
    probe: {
      kernelRelease: 'x',
      ulp: true,
      ciphers: [],
      txZerocopyRo: false,
      rxExpectNoPad: false,
      txMaxPayloadLen: false,
      rekey: false,
      defects: [],
      stats: null,
    },
    selection: { groups: ['handling'], versions: ['TLSv1.3'], ciphers: ['aes-128-gcm', 'aes-128-ccm'] },
    results: [
      { ...base, id: 'a', cipher: 'aes-128-gcm', status: 'pass' },
      { ...base, id: 'b', cipher: 'aes-128-gcm', status: 'fail', reason: 'boom', code: 'ERR_KTLS_VERIFY_FAILED' },
      { ...base, id: 'a', cipher: 'aes-128-ccm', status: 'unsupported', reason: 'no ccm' },
    ],
    cells: [
      { group: 'handling', version: 'TLSv1.3', cipher: 'aes-128-gcm', status: 'fail', passed: 1, failed: 1, unsupported: 0 },
      { group: 'handling', version: 'TLSv1.3', cipher: 'aes-128-ccm', status: 'unsupported', passed: 0, failed: 0, unsupported: 1 },
    ],
    totals: { passed: 1, failed: 1, unsupported: 1 },
    ms: 3,
  };
  const table = formatTable(report);
  t.match(table, /handling\s+TLSv1\.3\s+FAIL 1\/2\s+not supported/);
  const tap = formatTap(report);
  t.match(tap, /^ok 1 - handling TLSv1\.3 aes-128-gcm a/m);
  t.match(tap, /^not ok 2 - handling TLSv1\.3 aes-128-gcm b/m);
  t.match(tap, /reason: "boom"/);
  t.match(tap, /^ok 3 - .* # SKIP not supported by this kernel: no ccm/m);
  t.match(tap, /^1\.\.3$/m);

  t.equal(exitCodeOf(report), 1, 'a failed check: exit 1');
  const passOnly = { ...report, totals: { passed: 1, failed: 0, unsupported: 1 } };
  t.equal(exitCodeOf(passOnly), 0, 'passes beside checks the kernel cannot do: exit 0');
  const nothing = { ...report, totals: { passed: 0, failed: 0, unsupported: 3 } };
  t.equal(exitCodeOf(nothing), 3, 'every check not supported verified nothing: exit 3, not a pass');
  t.equal(exitCodeOf({ ...passOnly, available: false }), 3, 'no kTLS: exit 3');
});
