// The package as users load it: the exports map gives one module to `require`
// and `import` (every named export both ways), hides deep paths, and the
// install step compiles nothing where there is no kernel TLS.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import * as ktls from '../lib/index.js';

const root = path.resolve(__dirname, '..', '..');
const req = createRequire(path.join(root, 'package.json'));

t.test("require('ktls') is this package's lib/index.js, by the exports map", async (t) => {
  const viaName = req('ktls') as typeof ktls;
  t.equal(viaName.upgrade, ktls.upgrade, 'the same module instance');
  t.same(Object.keys(viaName).sort(), Object.keys(ktls).sort());
  t.equal((req('ktls/package.json') as { version: string }).version, (req('./package.json') as { version: string }).version);
  t.throws(() => req('ktls/dist/lib/index.js'), { code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' }, 'deep imports are not exported');
});

t.test("import from 'ktls' gives every named export and a default, the same objects as require", async (t) => {
  const script = [
    "import def, * as ns from 'ktls';",
    "import { createRequire } from 'node:module';",
    "const r = createRequire(process.cwd() + '/package.json')('ktls');",
    'const missing = Object.keys(r).filter((k) => ns[k] !== r[k]);',
    'console.log(JSON.stringify({ missing, count: Object.keys(r).length, sameDefault: def === r }));',
  ].join('\n');
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
  t.equal(run.status, 0, run.stderr);
  const out = JSON.parse(run.stdout) as { missing: string[]; count: number; sameDefault: boolean };
  t.same(out.missing, [], 'no export missing or different under import');
  t.ok(out.count > 20, `${out.count} exports`);
  t.ok(out.sameDefault, 'the default export is the CommonJS module itself');
});

t.test('install compiles nothing off Linux and says why', async (t) => {
  const run = spawnSync(process.execPath, ['-e', "Object.defineProperty(process, 'platform', { value: 'darwin' }); import('./scripts/install.mjs');"], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, PATH: '/nonexistent' },
  });
  t.equal(run.status, 0, 'exit 0 with no compiler or node-gyp-build reachable');
  t.match(run.stderr, /kernel TLS needs Linux; installed on darwin without the native addon/);
});
