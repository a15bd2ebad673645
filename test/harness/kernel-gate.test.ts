// scripts/kernel-gate.mjs, CI's check that the whole kTLS suite passed under a
// kernel without TLS 1.3 rekey (< 6.14) and one with it, fed recorded runs.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..', '..');

interface Run {
  name: string;
  release: string;
  status?: number;
  failed?: number;
  complete?: boolean;
}

function gate(runs: Run[]): { status: number | null; out: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-gate-'));
  try {
    for (const r of runs) {
      const gen = /^(\d+)\.(\d+)/.exec(r.release)!;
      const rekey = Number(gen[1]) > 6 || (Number(gen[1]) === 6 && Number(gen[2]) >= 14);
      const rec = {
        label: `UML ${r.release}`,
        status: 0,
        failed: 0,
        passed: 100,
        total: 100,
        files: 77,
        complete: true,
        seconds: 1,
        ...r,
        generation: rekey ? 'rekey' : 'pre',
      };
      fs.writeFileSync(path.join(dir, `${r.name}.json`), JSON.stringify(rec));
    }
    const p = spawnSync(process.execPath, [path.join(root, 'scripts', 'kernel-gate.mjs')], {
      encoding: 'utf8',
      env: { ...process.env, KTLS_KERNEL_RUNS: dir },
    });
    return { status: p.status, out: p.stdout + p.stderr };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

t.test('passes only when the whole suite passed under a kernel < 6.14 and one >= 6.14', async (t) => {
  t.equal(
    gate([
      { name: 'npm-test', release: '6.1.176' },
      { name: 'suite-7.2', release: '7.2.7' },
    ]).status,
    0,
    '6.1 and 7.2: pass',
  );
  t.equal(
    gate([
      { name: 'npm-test', release: '5.10.46' },
      { name: 'suite-7.2', release: '7.2.7' },
    ]).status,
    0,
    '5.10 and 7.2: pass',
  );
  const only = gate([
    { name: 'npm-test', release: '7.2.7' },
    { name: 'suite-7.2', release: '7.2.7' },
  ]);
  t.equal(only.status, 1, 'two runs under 7.2 only: fail');
  t.match(only.out, /has not passed under a kernel without TLS 1\.3 rekey/, 'and says which generation is missing');
  t.equal(gate([{ name: 'npm-test', release: '6.1.176' }]).status, 1, 'a single generation: fail');
  t.equal(gate([]).status, 1, 'nothing ran (no kernel booted): fail');
  t.equal(
    gate([
      { name: 'npm-test', release: '6.1.176', failed: 2, status: 1 },
      { name: 'suite-7.2', release: '7.2.7' },
    ]).status,
    1,
    'a failing run does not count',
  );
  t.equal(
    gate([
      { name: 'npm-test', release: '6.1.176', complete: false },
      { name: 'suite-7.2', release: '7.2.7' },
    ]).status,
    1,
    'a filtered run does not count',
  );
});
