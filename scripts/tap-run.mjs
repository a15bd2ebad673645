// What `npm test` (scripts/test.mjs) and `npm run test:asan` (scripts/asan.mjs)
// share: the compiled test files, tap's summary line, and output that is both
// shown and kept.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The compiled tests under dist/test/ (relative to `root`, sorted), one folder
 * per layer as in lib/. `'kernel'`: the kTLS suite, files named
 * `*.kernel.test.js`, which need a kernel with kTLS; `'host'`: the rest, which
 * run on any kernel; `'guest'`: what runs inside a user-mode-linux guest, every
 * file but test/harness/ (those test the harness itself on the real host CPU and
 * kernel: the guest has neither).
 */
export function testFiles(root, which) {
  const out = [];
  const harness = path.join('dist', 'test', 'harness');
  const walk = (dir) => {
    for (const e of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
      const rel = path.join(dir, e.name);
      if (e.isDirectory()) walk(rel);
      else if (!e.name.endsWith('.test.js')) continue;
      else if (which === 'guest' ? !rel.startsWith(harness + path.sep) : e.name.endsWith('.kernel.test.js') === (which === 'kernel')) out.push(rel);
    }
  };
  walk(path.join('dist', 'test'));
  return out.sort();
}

/** The last `# { total, pass, fail }` line tap printed, or null. */
export function summarize(text) {
  const m = [...text.matchAll(/^# \{ total: (\d+), pass: (\d+)(?:, fail: (\d+))?[^}]*\}/gm)].pop();
  return m ? { total: Number(m[1]), pass: Number(m[2]), fail: Number(m[3] ?? 0) } : null;
}

/** A sink that prints and remembers. */
export function tee() {
  let text = '';
  return {
    write: (s) => {
      text += s;
      process.stdout.write(s);
      return true;
    },
    text: () => text,
  };
}

/** Runs `cmd`, streaming stdout and stderr into `sink`; resolves with its exit status. */
export function spawnTee(cmd, args, env, sink) {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (c) => sink.write(c.toString()));
  child.stderr.on('data', (c) => sink.write(c.toString()));
  return new Promise((resolve) => child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
}
