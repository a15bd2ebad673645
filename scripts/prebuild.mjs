#!/usr/bin/env node
// Builds the prebuilt binaries that ship in prebuilds/ (prebuildify, N-API:
// one binary per platform serves every Node version):
//
//   node scripts/prebuild.mjs [--arch x64,arm64] [--check]
//
// Each is compiled against Debian bullseye's glibc 2.31 and 5.10 kernel
// headers (a sysroot fetched with apt-get download into .cache/sysroot/), not
// the build machine's glibc, so it loads on glibc 2.31 and newer. arm64 is
// cross-compiled with Debian's aarch64-linux-gnu toolchain. Afterwards each
// binary's highest GLIBC_ symbol version is read with objdump and the build
// fails above the floor. scripts/pack-check.mjs then proves the package
// installs and loads them without a compiler.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { downloadFromSuite, unpack } from './debian.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SYSROOT_SUITE = 'bullseye';
export const GLIBC_FLOOR = '2.31';

/** Node's arch name -> Debian's, the GNU triplet and the toolchain prefix ('' = the host's own). */
export const TARGETS = {
  x64: { deb: 'amd64', triplet: 'x86_64-linux-gnu', prefix: '', crossPackage: null },
  arm64: { deb: 'arm64', triplet: 'aarch64-linux-gnu', prefix: 'aarch64-linux-gnu-', crossPackage: 'g++-aarch64-linux-gnu' },
};
const SYSROOT_PACKAGES = ['libc6', 'libc6-dev', 'linux-libc-dev', 'libgcc-s1', 'libstdc++6'];

const cache = () => path.join(process.env.KTLS_CACHE || path.join(root, '.cache'));
const log = (s) => process.stderr.write(`[prebuild] ${s}\n`);

/** The bullseye sysroot for `arch`, fetched and unpacked once. */
export function sysroot(arch) {
  const t = TARGETS[arch];
  const dir = path.join(cache(), 'sysroot', `${SYSROOT_SUITE}-${t.deb}`);
  if (fs.existsSync(path.join(dir, '.ready'))) return dir;
  const part = `${dir}.part${process.pid}`;
  fs.rmSync(part, { recursive: true, force: true });
  const debs = path.join(part, 'debs');
  fs.mkdirSync(debs, { recursive: true });
  log(`fetching Debian ${SYSROOT_SUITE} ${t.deb}: ${SYSROOT_PACKAGES.join(' ')}`);
  downloadFromSuite(debs, path.join(part, 'apt'), SYSROOT_SUITE, SYSROOT_PACKAGES, t.deb);
  const tree = path.join(part, 'tree');
  unpack(debs, tree);
  // libc6-dev's lib*.so are absolute symlinks (/lib/...): inside a sysroot they
  // would reach the build machine's own libraries (or nothing, so the linker
  // falls back to a static libm.a), so point them into the sysroot.
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isSymbolicLink()) {
        const to = fs.readlinkSync(p);
        if (to.startsWith('/')) {
          fs.unlinkSync(p);
          fs.symlinkSync(path.relative(path.dirname(p), path.join(tree, to)), p);
        }
      }
    }
  };
  walk(tree);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tree, dir);
  fs.rmSync(part, { recursive: true, force: true });
  fs.writeFileSync(path.join(dir, '.ready'), `${SYSROOT_PACKAGES.join(' ')} from Debian ${SYSROOT_SUITE}\n`);
  return dir;
}

function have(cmd) {
  return spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * Compiler and linker flags that take the C library and kernel headers only
 * from `sys`. A cross gcc searches its own /usr/<triplet>/include (the build
 * machine's newer glibc) before any --sysroot, so the standard dirs are
 * replaced: the compiler's C++ and builtin headers, then the sysroot's.
 */
export function flags(arch, sys) {
  const t = TARGETS[arch];
  const cxx = `${t.prefix}g++`;
  const v = spawnSync(cxx, ['-xc++', '-E', '-v', '-'], { input: '', encoding: 'utf8' });
  const list = /#include <\.\.\.> search starts here:\n([\s\S]*?)End of search list/.exec(v.stderr ?? '');
  if (!list) throw new Error(`cannot read ${cxx}'s include search list`);
  const own = list[1]
    .split('\n')
    .map((l) => l.trim())
    .filter((d) => d && (/\/c\+\+\/\d+/.test(d) || /\/gcc(-cross)?\/[^/]+\/\d+\/include$/.test(d)))
    .map((d) => path.normalize(d));
  const inc = ['-nostdinc', ...[...own, path.join(sys, 'usr/include', t.triplet), path.join(sys, 'usr/include')].flatMap((d) => ['-isystem', d])];
  const compile = [`--sysroot=${sys}`, ...inc].join(' ');
  const link = [`--sysroot=${sys}`, `-L${path.join(sys, 'usr/lib', t.triplet)}`, `-L${path.join(sys, 'lib', t.triplet)}`].join(' ');
  return { cc: `${t.prefix}gcc`, cxx, compile, link, strip: `${t.prefix}strip`, objdump: `${t.prefix}objdump` };
}

/**
 * Where this Node's headers are (`<dir>/include/node`): N-API needs only
 * node_api.h, so builds use these instead of downloading another version's
 * (an offline machine cannot).
 */
export function nodeDir() {
  const prefix = path.dirname(path.dirname(process.execPath));
  return process.env.npm_config_nodedir || (fs.existsSync(path.join(prefix, 'include/node/node_api.h')) ? prefix : undefined);
}

/** Highest versions of GLIBC_ and GLIBCXX_ symbols `file` needs, read with objdump -T. */
export function symbolFloor(file, objdump = 'objdump') {
  const out = execFileSync(objdump, ['-T', file], { encoding: 'utf8' });
  const max = (prefix) => {
    const vs = [...out.matchAll(new RegExp(`\\b${prefix}_([0-9.]+)\\b`, 'g'))].map((m) => m[1]);
    return vs.sort((a, b) => cmpVersion(b, a))[0] ?? null;
  };
  return { glibc: max('GLIBC'), glibcxx: max('GLIBCXX') };
}

export function cmpVersion(a, b) {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}

/** Builds prebuilds/linux-<arch>/ktls.glibc.node and returns its path and symbol floor. */
export function build(arch) {
  const t = TARGETS[arch];
  if (!t) throw new Error(`unknown arch ${arch}; known: ${Object.keys(TARGETS).join(', ')}`);
  if (!have(`${t.prefix}g++`)) {
    throw new Error(`${t.prefix}g++ is not installed; on Debian: apt-get install ${t.crossPackage ?? 'g++'}`);
  }
  const sys = sysroot(arch);
  const f = flags(arch, sys);
  // prebuildify runs node-gyp in its cwd: a staging copy keeps the checkout's
  // own build/ (which node-gyp-build would load before any prebuild) intact.
  const work = path.join(cache(), 'prebuild-work', arch);
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  for (const p of ['native', 'binding.gyp', 'package.json']) fs.cpSync(path.join(root, p), path.join(work, p), { recursive: true });
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(work, 'node_modules'));
  const nodedir = nodeDir();
  log(`building linux-${arch} against ${path.relative(root, sys)}`);
  const r = spawnSync(
    process.execPath,
    [
      path.join(root, 'node_modules/prebuildify/bin.js'),
      '--napi',
      '--strip',
      '--tag-libc',
      `--arch=${arch}`,
      `--target=${process.versions.node}`,
      `--out=${root}`,
    ],
    {
      cwd: work,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: {
        ...process.env,
        CC: f.cc,
        CXX: f.cxx,
        CFLAGS: f.compile,
        CXXFLAGS: f.compile,
        LDFLAGS: f.link,
        PREBUILD_STRIP_BIN: f.strip,
        ...(nodedir ? { npm_config_nodedir: nodedir } : {}),
      },
    },
  );
  if (r.status !== 0) throw new Error(`prebuildify for linux-${arch} failed (exit ${r.status ?? r.signal})`);
  fs.rmSync(work, { recursive: true, force: true });
  const file = path.join(root, 'prebuilds', `linux-${arch}`, 'ktls.glibc.node');
  if (!fs.existsSync(file)) throw new Error(`prebuildify wrote no ${path.relative(root, file)}`);
  const floor = symbolFloor(file, have(f.objdump) ? f.objdump : 'objdump');
  const ok = floor.glibc !== null && cmpVersion(floor.glibc, GLIBC_FLOOR) <= 0;
  log(`linux-${arch}: ${fs.statSync(file).size} bytes, needs GLIBC_${floor.glibc}, GLIBCXX_${floor.glibcxx} (floor ${GLIBC_FLOOR}: ${ok ? 'ok' : 'ABOVE'})`);
  if (!ok) throw new Error(`linux-${arch} needs GLIBC_${floor.glibc}, above the ${GLIBC_FLOOR} floor`);
  return { file, ...floor };
}

/** `--check` (npm's prepublishOnly; not prepack, which git installs run): every prebuild is there and within the floor, so no package ships without them. */
function check(arches) {
  for (const arch of arches) {
    const file = path.join(root, 'prebuilds', `linux-${arch}`, 'ktls.glibc.node');
    if (!fs.existsSync(file)) throw new Error(`${path.relative(root, file)} is missing: run npm run prebuild before packing`);
    const objdump = `${TARGETS[arch].prefix}objdump`;
    const floor = symbolFloor(file, have(objdump) ? objdump : 'objdump');
    if (floor.glibc === null || cmpVersion(floor.glibc, GLIBC_FLOOR) > 0)
      throw new Error(`${path.relative(root, file)} needs GLIBC_${floor.glibc}, above ${GLIBC_FLOOR}`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--arch');
  const arches = i > 0 ? process.argv[i + 1].split(',') : Object.keys(TARGETS);
  try {
    if (process.argv.includes('--check')) check(arches);
    else for (const arch of arches) build(arch);
  } catch (err) {
    process.stderr.write(`[prebuild] ${err.message}\n`);
    process.exit(1);
  }
}
