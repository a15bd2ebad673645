// What the host needs to run Debian's UML binaries (used by scripts/uml.mjs):
// the XSAVE shim that lets kernels before 6.13 boot on AMX hosts, and the
// glibc check that decides whether a binary runs on this host's libc.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Builds scripts/uml-xstate.c (see there) once per source version into
 * `cache`/xstate; resolves to its path, or to `{ error }` where no C compiler is found.
 * Without it, kernels before 6.13 cannot boot on hosts with AMX.
 */
export function xstateShim(cache) {
  const src = path.join(root, 'scripts', 'uml-xstate.c');
  const text = fs.readFileSync(src);
  const out = path.join(cache, 'xstate', `uml-xstate-${createHash('sha256').update(text).digest('hex').slice(0, 16)}.so`);
  if (fs.existsSync(out)) return { path: out };
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const part = `${out}.part${process.pid}`;
  const errors = [];
  for (const cc of [process.env.CC, 'cc', 'gcc', 'clang'].filter(Boolean)) {
    const r = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-Werror', '-shared', '-fPIC', '-o', part, src], { encoding: 'utf8' });
    if (r.status === 0) {
      fs.renameSync(part, out);
      return { path: out };
    }
    errors.push(`${cc}: ${r.error ? r.error.code : r.stderr.trim().split('\n')[0]}`);
  }
  fs.rmSync(part, { force: true });
  return { error: `cannot build scripts/uml-xstate.c (${errors.join('; ')})` };
}

/** The newest GLIBC_x.y symbol version an ELF file asks for (from its version strings). */
export function glibcNeeded(file) {
  const found =
    fs
      .readFileSync(file)
      .toString('latin1')
      .match(/GLIBC_2\.\d+/g) ?? [];
  return found.map((v) => v.slice('GLIBC_'.length)).reduce((a, b) => (compareVersions(a, b) >= 0 ? a : b), '2.0');
}

/** The glibc this Node runs on, e.g. `2.36`. */
export function hostGlibc() {
  return process.report.getReport().header.glibcVersionRuntime ?? '0';
}

/** Compares dotted versions numerically: negative, 0 or positive. */
export function compareVersions(a, b) {
  const [x, y] = [a, b].map((v) => v.split('.').map(Number));
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
}
