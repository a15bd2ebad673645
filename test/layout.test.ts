// The folders of lib/ are the layers (docs/architecture.md): native ← record ←
// socket ← handover ← http / tools / verify. No file imports from a layer above
// its own, and no file in lib/ is over 400 lines.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

const LIB = path.resolve(__dirname, '..', '..', 'lib');
const RANK: Record<string, number> = { native: 0, record: 1, socket: 2, handover: 3, http: 4, tools: 4, verify: 4, '.': 5 };
const MAX_LINES = 400;

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

const layerOf = (file: string): string => path.relative(LIB, file).split(path.sep).slice(0, -1)[0] ?? '.';
const files = sources(LIB);

t.test('every file of lib/ sits in a known layer folder', async (t) => {
  t.ok(files.length > 20, `${files.length} files read`);
  t.same(
    files.filter((f) => RANK[layerOf(f)] === undefined).map((f) => path.relative(LIB, f)),
    [],
  );
});

t.test('no file imports from a layer above its own', async (t) => {
  const bad: string[] = [];
  let edges = 0;
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^(?:import|export)\b[^;]*?from '(\.[^']+)\.js';/gms)) {
      const target = path.resolve(path.dirname(file), `${m[1]}.ts`);
      edges++;
      if (RANK[layerOf(target)] > RANK[layerOf(file)]) bad.push(`${path.relative(LIB, file)} → ${path.relative(LIB, target)}`);
    }
  }
  t.ok(edges > 100, `${edges} imports checked`);
  t.same(bad, [], 'imports that point up the layers');
});

t.test(`no file in lib/ is over ${MAX_LINES} lines`, async (t) => {
  const long = files.map((f) => [path.relative(LIB, f), fs.readFileSync(f, 'utf8').split('\n').length - 1] as const).filter(([, n]) => n > MAX_LINES);
  t.same(long, []);
});
