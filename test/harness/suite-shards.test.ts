// scripts/ktls-suite.mjs splits the suite across one UML guest per core: every
// file runs exactly once, and the guests get about equal time.
import t from 'tap';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

const root = path.resolve(__dirname, '..', '..', '..');

t.test('shard(): each file in exactly one guest, longest first onto the least loaded', async (t) => {
  const { shard } = (await import(pathToFileURL(path.join(root, 'scripts', 'ktls-suite.mjs')).href)) as {
    shard(files: string[], n: number, known: Record<string, number>): string[][];
  };
  const known: Record<string, number> = { a: 60, b: 50, c: 30, d: 20, e: 10, f: 10, g: 5, h: 5 };
  const files = Object.keys(known);
  const lists = shard(files, 2, known);
  t.equal(lists.length, 2, 'two guests');
  t.same(lists.flat().sort(), files, 'every file once');
  const load = lists.map((l) => l.reduce((n, f) => n + known[f], 0));
  t.ok(Math.abs(load[0] - load[1]) <= 10, `balanced: ${load.join(' s and ')} s`);
  t.same(shard(['x', 'y'], 4, {}), [['x'], ['y']], 'no empty guests');
  t.same(shard(files, 1, known), [files], 'one guest: the whole list');
});
