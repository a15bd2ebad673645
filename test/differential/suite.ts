// Runs every scenario on node:tls and on ktls, in both roles, and compares
// what both sides observed. A difference passes only if allowed.ts lists it.
// A run that matched proves the node:tls members the scenario exercised (parity());
// one that differs as allowed marks the members the entry names (parityDiffers()):
// docs/node-tls-parity.md is built from both.
import type { Test } from 'tap';
import { parity, parityDiffers } from '../helpers/parity-log.js';
import { ALLOWED } from './allowed.js';
import { play, type Recording, type Role, type Seen } from './run.js';
import { SCENARIOS } from './scenarios.js';
import { ktlsStack, nodeTls } from './stack.js';

/** The scenarios × roles on one record path. */
export async function differential(t: Test, path: 'kernel' | 'userspace'): Promise<void> {
  // Scenarios wait up to their settle time for a close that may (on a difference) never come.
  t.setTimeout(30 * 60_000);
  const ktls = ktlsStack(path === 'kernel');
  for (const sc of SCENARIOS) {
    for (const role of ['server', 'client'] as Role[]) {
      await t.test(`${sc.name} (ktls as ${role})`, async (t) => {
        const oracle: Recording = await play(sc, role, nodeTls);
        const seen: Seen = { used: new Set() };
        const ours: Recording = await play(sc, role, ktls, seen);
        const allowed = ALLOWED.find((a) => a.scenario === sc.name && (a.roles ?? [role]).includes(role) && (a.paths ?? [path]).includes(path));
        const same = JSON.stringify(oracle) === JSON.stringify(ours);
        if (allowed) {
          t.comment(`allowed difference: ${allowed.reason}`);
          t.notSame(ours, oracle, 'still differs from node:tls, as allowed.ts says');
          // Nothing else is proven by a run that differs: the entry's members are marked, the rest are left to other scenarios.
          parityDiffers(t, allowed.members, sc.name, allowed.reason, seen.socket);
        } else {
          t.same(ours, oracle, 'observed the same as on node:tls');
          parity(t, [...seen.used], seen.socket);
        }
        if (!same) t.comment(`node:tls: ${JSON.stringify(oracle)}\nktls:     ${JSON.stringify(ours)}`);
      });
    }
  }
}
