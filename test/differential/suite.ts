// Runs every scenario on node:tls and on ktls, in both roles, and compares
// what both sides observed. A difference passes only if allowed.ts lists it.
import type { Test } from 'tap';
import { ALLOWED } from './allowed.js';
import { play, type Recording, type Role } from './run.js';
import { SCENARIOS } from './scenarios.js';
import { ktlsStack } from './stack.js';

/** The scenarios × roles on one record path. */
export async function differential(t: Test, path: 'kernel' | 'userspace'): Promise<void> {
  // Scenarios wait up to their settle time for a close that may (on a difference) never come.
  t.setTimeout(20 * 60_000);
  const ktls = ktlsStack(path === 'kernel');
  const { nodeTls } = await import('./stack.js');
  for (const sc of SCENARIOS) {
    for (const role of ['server', 'client'] as Role[]) {
      await t.test(`${sc.name} (ktls as ${role})`, async (t) => {
        const oracle: Recording = await play(sc, role, nodeTls);
        const ours: Recording = await play(sc, role, ktls);
        const allowed = ALLOWED.find((a) => a.scenario === sc.name && (a.roles ?? [role]).includes(role) && (a.paths ?? [path]).includes(path));
        const same = JSON.stringify(oracle) === JSON.stringify(ours);
        if (allowed) {
          t.comment(`allowed difference: ${allowed.reason}`);
          t.notSame(ours, oracle, 'still differs from node:tls, as allowed.ts says');
        } else t.same(ours, oracle, 'observed the same as on node:tls');
        if (!same) t.comment(`node:tls: ${JSON.stringify(oracle)}\nktls:     ${JSON.stringify(ours)}`);
      });
    }
  }
}
