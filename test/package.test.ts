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

t.test('off Linux: probe() says why, and calls that need the addon reject with ERR_KTLS_UNAVAILABLE and a hint for that platform', async (t) => {
  const script = [
    "Object.defineProperty(process, 'platform', { value: 'darwin' });",
    "const ktls = require('./dist/lib/index.js');",
    "const net = require('node:net');",
    '(async () => {',
    '  const caps = await ktls.probe();',
    "  const keys = { version: 'TLSv1.3', cipher: 'aes-128-gcm', tx: { key: Buffer.alloc(16), iv: Buffer.alloc(12), seq: 0n } };",
    '  const err = await ktls.upgrade(new net.Socket(), keys).then(() => null, (e) => e);',
    '  console.log(JSON.stringify({ ulp: caps.ulp, ulpError: caps.ulpError, code: err && err.code, hint: err && err.hint }));',
    '})();',
  ].join('\n');
  const run = spawnSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' });
  t.equal(run.status, 0, run.stderr);
  const out = JSON.parse(run.stdout) as { ulp: boolean; ulpError: string; code: string; hint: string };
  t.equal(out.ulp, false);
  t.match(out.ulpError, /needs Linux; this is darwin/);
  t.equal(out.code, 'ERR_KTLS_UNAVAILABLE');
  t.match(out.hint, /Linux-only/);
  t.notMatch(out.hint, /modprobe/, 'no Linux advice on darwin');
});
