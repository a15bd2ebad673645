// scripts/uml-xstate.c, the ptrace shim that lets Debian's UML kernels before
// 6.13 boot on hosts whose XSAVE area outgrows their 2696-byte buffer (AMX).
// This host may have no AMX, so the condition is made here: the traced child's
// FPU state is written through a buffer shorter than this host's XSAVE area,
// as such a UML does at every guest context switch.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

const root = path.resolve(__dirname, '..', '..', '..');

t.test('a SETREGSET(NT_X86_XSTATE) shorter than the host XSAVE area: EFAULT without the shim, the registers set with it', async (t) => {
  const { xstateShim } = (await import(pathToFileURL(path.join(root, 'scripts', 'uml-host.mjs')).href)) as {
    xstateShim(cache: string): { path?: string; error?: string };
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-xstate-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const shim = xstateShim(dir);
  t.equal(shim.error, undefined, 'the harness builds the shim');
  const bin = path.join(dir, 'xstate-check');
  const cc = spawnSync('cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', bin, path.join(root, 'test', 'fixtures', 'xstate-check.c')], { encoding: 'utf8' });
  t.equal(cc.status, 0, `the check program compiles ${cc.stderr}`);
  const run = (env: NodeJS.ProcessEnv): Record<string, string> => {
    const r = spawnSync(bin, [], { encoding: 'utf8', env: { ...process.env, ...env } });
    t.equal(r.status, 0, `the check ran (${r.stdout.trim()} ${r.stderr.trim()})`);
    return Object.fromEntries(
      r.stdout
        .trim()
        .split(' ')
        .map((kv) => kv.split('=') as [string, string]),
    );
  };
  const bare = run({});
  t.comment(`host XSAVE area ${bare.host} bytes; written through ${bare.len}`);
  t.ok(Number(bare.len) < Number(bare.host), 'the buffer is shorter than the host area');
  t.equal(bare.get, 'ok', 'GETREGSET with the short buffer reads the registers (the host truncates)');
  t.equal(bare.set, 'EFAULT', 'SETREGSET with it: EFAULT, what kills UML 6.1/6.12 on AMX hosts');
  t.equal(bare.child, 'mismatch', 'the child keeps its old register value');
  const shimmed = run({ LD_PRELOAD: shim.path });
  t.equal(shimmed.get, 'ok', 'with the shim: GETREGSET unchanged');
  t.equal(shimmed.set, 'ok', 'with the shim: SETREGSET succeeds');
  t.equal(shimmed.child, 'ok', 'with the shim: the child resumes with the register value written');
});
