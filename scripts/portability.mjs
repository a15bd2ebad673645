#!/usr/bin/env node
// Compiles the addon against C libraries and kernel headers other than the
// build machine's, so a source build works where no prebuild fits:
//
//   node scripts/portability.mjs        (npm run test:portability)
//
// - musl (Debian's musl-dev) with Debian bullseye's 5.10 uapi headers:
//   scripts/portability.c, i.e. native/kabi.h and every libc name the addon
//   uses. Only the C parts: Debian has no libstdc++ built for musl.
// - glibc 2.31 with the same 5.10 headers (the prebuild's sysroot): that file
//   and every native/*.cc, as the prebuild compiles them.
// - this machine's own headers: that file.
// Each with -Wall -Wextra -Werror. Exit status 0 only if all compile.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { download, unpack } from './debian.mjs';
import { flags, nodeDir, sysroot } from './prebuild.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cache = process.env.KTLS_CACHE || path.join(root, '.cache');
const WARN = ['-Wall', '-Wextra', '-Werror'];
const check = path.join(root, 'scripts', 'portability.c');
let failed = 0;

function compile(what, cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  const ok = r.status === 0;
  process.stdout.write(`${ok ? 'ok' : 'not ok'} - ${what}\n`);
  if (!ok) {
    failed++;
    process.stdout.write(`${(r.error?.message ?? '') + r.stderr}\n`);
  }
}

function muslRoot() {
  const dir = path.join(cache, 'musl');
  const inc = path.join(dir, 'tree', 'usr', 'include', 'x86_64-linux-musl');
  if (fs.existsSync(inc)) return inc;
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'debs'), { recursive: true });
  download(path.join(dir, 'debs'), ['musl-dev']);
  unpack(path.join(dir, 'debs'), path.join(dir, 'tree'));
  return inc;
}

const sys = sysroot('x64');
const gccInclude = spawnSync('gcc', ['-print-file-name=include'], { encoding: 'utf8' }).stdout.trim();
// The 5.10 uapi headers alone (linux/, asm/, asm-generic/), without bullseye's glibc.
const uapi = path.join(cache, 'uapi-5.10');
fs.mkdirSync(uapi, { recursive: true });
for (const [name, from] of [
  ['linux', 'usr/include/linux'],
  ['asm', 'usr/include/x86_64-linux-gnu/asm'],
  ['asm-generic', 'usr/include/asm-generic'],
]) {
  const link = path.join(uapi, name);
  if (!fs.existsSync(link)) fs.symlinkSync(path.join(sys, from), link);
}

compile('musl (Debian musl-dev) + Linux 5.10 uapi headers: native/kabi.h and the libc names the addon uses', 'gcc', [
  '-std=gnu11',
  ...WARN,
  '-nostdinc',
  '-isystem',
  gccInclude,
  '-isystem',
  muslRoot(),
  '-isystem',
  uapi,
  '-fsyntax-only',
  check,
]);

const f = flags('x64', sys);
compile('glibc 2.31 + Linux 5.10 uapi headers (Debian bullseye): the same', f.cc, ['-std=gnu11', ...WARN, ...f.compile.split(' '), '-fsyntax-only', check]);
const require = createRequire(import.meta.url);
const nodeInclude = path.join(nodeDir() ?? '/usr', 'include', 'node');
for (const src of fs.readdirSync(path.join(root, 'native')).filter((n) => n.endsWith('.cc') && n !== 'unsupported.cc')) {
  compile(`glibc 2.31 + Linux 5.10 uapi headers: native/${src}`, f.cxx, [
    '-std=c++17',
    ...WARN,
    '-Wno-unused-parameter',
    ...f.compile.split(' '),
    '-I',
    nodeInclude,
    '-I',
    require('node-addon-api').include_dir,
    '-DNAPI_VERSION=8',
    '-DNAPI_CPP_EXCEPTIONS',
    '-DNODE_ADDON_API_DISABLE_DEPRECATED',
    '-fsyntax-only',
    path.join(root, 'native', src),
  ]);
}
compile("this machine's glibc and uapi headers: native/kabi.h and the libc names", 'gcc', ['-std=gnu11', ...WARN, '-fsyntax-only', check]);

process.stdout.write(`# portability: ${failed === 0 ? 'all compiled' : `${failed} failed`}\n`);
process.exit(failed === 0 ? 0 : 1);
