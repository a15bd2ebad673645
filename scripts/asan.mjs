#!/usr/bin/env node
// `npm run test:asan`: builds the addon with AddressSanitizer and
// UndefinedBehaviorSanitizer (CMakeLists.txt through cmake-js, into
// build-asan/, never over build/Release), then runs the host suite on the host
// and the kTLS suite under a kernel that has kTLS (this host's own, else the
// user-mode-linux harness) with that build loaded in every test process. Any
// sanitizer report fails the run, as does any failing test.
//
//   node scripts/asan.mjs [--no-build] [--no-tsc] [--only host|kernel] [--guest-all]
//                         [--kernel 7.2] [--timeout 3600] [--tap-timeout 480] [-- test files...]
//
// --no-tsc: use dist/ as it is. --only: one of the two suites. --guest-all: the
// host suite too inside the guest, where it meets real kTLS (as `npm test` does
// when it uses the UML harness). -- files: only test files whose path contains
// one of these.
//
// The guest kernel is UML 7.2 (Debian sid): ASan's x86-64 shadow layout needs
// the 47-bit user address space, and the 6.1 and 6.12 UML kernels give guest
// processes only 39 bits (stack at 0x7fbfffffff), where every preloaded
// process aborts with "Shadow memory range interleaves with an existing memory
// mapping". 7.2's UML has 4-level page tables (47 bits) and ASan runs there.
//
// How the sanitized addon gets loaded without touching lib/: node-gyp-build
// takes the package directory from $KTLS_PREBUILD (<NAME>_PREBUILD, NAME from
// package.json) when it is set, so KTLS_PREBUILD=build-asan makes it load
// build-asan/build/Debug/ktls.node (cmake-js -D writes there; nothing writes a
// build-asan/build/Release that it would prefer). Node itself is not
// instrumented, so gcc's libasan is LD_PRELOADed: the ASan runtime must be the
// first library in the process, or the instrumented addon refuses to load. A
// check in the very environment the tests get (on the host and in the guest)
// reads /proc/self/maps and fails the run unless exactly that file and libasan
// are mapped, so a run can never pass on the normal build.
//
// These variables go only to the test processes (tap and what it starts), never
// to this script, cmake or the UML kernel binary:
//   LD_PRELOAD   gcc's libasan (`gcc -print-file-name=libasan.so`)
//   ASAN_OPTIONS detect_leaks=0: node exits (process.exit, tap's children)
//                without tearing V8 down, so LeakSanitizer reports node's own
//                heap in every process, never just the addon's (seen: V8
//                MemoryChunk/Deserializer "leaks" fail lifecycle.test.js);
//                the memory tests cover the addon's leaks. abort_on_error=1,
//                halt_on_error=1: the first report kills the process.
//                log_path: ASan reports go to files under build-asan/reports/,
//                printed and counted at the end, so none is lost in output a
//                test captured. In the guest also quarantine_size_mb=16 (below).
//   UBSAN_OPTIONS print_stacktrace=1:halt_on_error=1:abort_on_error=1 (the build
//                also has -fno-sanitize-recover=all). UBSan ignores log_path
//                when it runs beside ASan (gcc 12: seen), so its reports
//                ("runtime error:") are counted in the output, and the SIGABRT
//                fails the test that made the call in any case.
//   PATH         build-asan/bin first: curl, openssl and python3 run without
//                LD_PRELOAD (see PEERS).
//   KTLS_PREBUILD the directory above.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { shard, shardCount } from './ktls-suite.mjs';
import { runInUml } from './uml.mjs';
import { spawnTee, summarize, tee, testFiles } from './tap-run.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);
const outDir = path.join(root, 'build-asan');
const cmakeOut = path.join(outDir, 'build');
const addonPath = path.join(cmakeOut, 'Debug', 'ktls.node');
const reportsDir = path.join(outDir, 'reports');
const tapBin = path.join(root, 'node_modules', '.bin', 'tap');
const REPORT = /==\d+==\s*ERROR: \w*Sanitizer|ERROR: LeakSanitizer|runtime error:|ASan runtime does not come first|AddressSanitizer:DEADLYSIGNAL/g;

function parseArgs(argv) {
  const opts = { build: true, tsc: true, only: null, kernel: '7.2', guestAll: false, timeout: 3600, tapTimeout: 480, files: [] };
  const sep = argv.indexOf('--');
  const flags = sep >= 0 ? argv.slice(0, sep) : argv;
  if (sep >= 0) opts.files = argv.slice(sep + 1);
  for (let i = 0; i < flags.length; i++) {
    const [k, inline] = flags[i].split(/=(.*)/s);
    const value = () => inline ?? flags[++i];
    if (k === '--no-build') opts.build = false;
    else if (k === '--no-tsc') opts.tsc = false;
    else if (k === '--only') opts.only = value();
    else if (k === '--guest-all') opts.guestAll = true;
    else if (k === '--kernel') opts.kernel = value();
    else if (k === '--timeout') opts.timeout = Number(value());
    else if (k === '--tap-timeout') opts.tapTimeout = Number(value());
    else
      throw new Error(
        `unknown option ${flags[i]}; usage: asan.mjs [--no-build] [--no-tsc] [--only host|kernel] [--guest-all] [--kernel 7.2] [--timeout s] [--tap-timeout s] [-- files...]`,
      );
  }
  if (opts.only && !['host', 'kernel'].includes(opts.only)) throw new Error(`--only takes host or kernel, not ${opts.only}`);
  return opts;
}

function run(cmd, args, options = {}) {
  console.log(`# [asan] $ ${[cmd, ...args].join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...options });
  if (r.error) throw new Error(`cannot run ${cmd}: ${r.error.message}`);
  return r.status ?? 1;
}

function capture(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.error?.message ?? r.stderr}`);
  return r.stdout;
}

/** The sanitized build, by cmake-js, against the running node's own headers as node-gyp does here. */
function build() {
  const env = { ...process.env };
  // cmake-js only skips downloading headers from the network when npm's
  // nodedir is set (npm sets it here; a plain `node scripts/asan.mjs` does not).
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (!env.npm_config_nodedir && fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) env.npm_config_nodedir = prefix;
  const cmakeJs = path.join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
  if (!fs.existsSync(cmakeJs)) throw new Error('cmake-js is not installed: run `npm install`');
  return run(process.execPath, [cmakeJs, 'compile', '-D', '--out', cmakeOut, '--CDKTLS_SANITIZE=ON'], { env });
}

/** Checks the binary itself: instrumented by ASan, UBSan findings fatal. Returns the libasan it needs. */
function checkBinary() {
  if (!fs.existsSync(addonPath)) throw new Error(`no sanitized addon at ${path.relative(root, addonPath)}`);
  const stray = path.join(cmakeOut, 'Release');
  if (fs.existsSync(stray) && fs.readdirSync(stray).some((f) => f.endsWith('.node'))) {
    throw new Error(`${path.relative(root, stray)} holds a .node that node-gyp-build would load instead of the Debug one; remove it`);
  }
  const needed = [...capture('readelf', ['-d', addonPath]).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  const undef = capture('nm', ['-D', '--undefined-only', addonPath])
    .split('\n')
    .map((l) => l.trim().split(/\s+/).pop())
    .filter(Boolean);
  const asanLib = needed.find((n) => n.startsWith('libasan.so'));
  const problems = [];
  if (!asanLib) problems.push('does not link libasan');
  if (!needed.some((n) => n.startsWith('libubsan.so'))) problems.push('does not link libubsan');
  if (!undef.includes('__asan_init')) problems.push('has no __asan_init reference');
  const ubsan = undef.filter((s) => s.startsWith('__ubsan_handle_'));
  if (!ubsan.some((s) => s.endsWith('_abort'))) problems.push('has no fatal (_abort) UBSan checks');
  const recoverable = ubsan.filter((s) => !s.endsWith('_abort') && !/builtin_unreachable|missing_return/.test(s));
  if (recoverable.length) problems.push(`has recoverable UBSan checks (${recoverable.join(', ')}): -fno-sanitize-recover=all is missing`);
  if (problems.length) throw new Error(`${path.relative(root, addonPath)} is not the sanitized build: it ${problems.join('; ')}`);
  console.log(
    `# [asan] ${path.relative(root, addonPath)}: links ${needed.filter((n) => /san/.test(n)).join(', ')}; __asan_init and ${ubsan.length} UBSan handlers (all fatal)`,
  );

  // The runtime to preload: gcc's, and the very soname the addon was linked to.
  const lib = capture('gcc', ['-print-file-name=libasan.so']).trim();
  if (!path.isAbsolute(lib) || !fs.existsSync(lib)) throw new Error(`gcc has no libasan.so (${lib}); install libasan (Debian: gcc's libasan8)`);
  const real = fs.realpathSync(lib);
  if (!path.basename(real).startsWith(asanLib)) throw new Error(`gcc's ${lib} is ${real}, but the addon needs ${asanLib}`);
  return lib;
}

// The tests' peers (spawned by name, so found through PATH) run without the
// ASan runtime: it is there for the addon, which only node loads, and curl
// under a preloaded libasan hangs before main's first line (glibc's setlocale
// lock, seen with curl 7.88 here), which made every curl test time out.
const PEERS = ['curl', 'openssl', 'python3'];
const shimDir = path.join(outDir, 'bin');

function makeShims() {
  fs.rmSync(shimDir, { recursive: true, force: true });
  fs.mkdirSync(shimDir, { recursive: true });
  const made = [];
  for (const tool of PEERS) {
    const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
    if (!found.startsWith('/')) continue;
    fs.writeFileSync(
      path.join(shimDir, tool),
      `#!/bin/sh\n# scripts/asan.mjs: ${tool} without the ASan runtime preloaded for node\nunset LD_PRELOAD\nexec ${found} "$@"\n`,
      { mode: 0o755 },
    );
    made.push(found);
  }
  console.log(`# [asan] run without libasan (through ${path.relative(root, shimDir)}/): ${made.join(', ') || 'none found'}`);
  return made;
}

/** Runs in node with the test environment: fails unless the sanitized addon and libasan are what got loaded. */
const CHECK = `
const fs = require('fs');
const r = require('./dist/lib/native/binding.js').loadBinding();
if (!r.binding) { console.error('# [asan] the addon did not load: ' + (r.error && r.error.message)); process.exit(1); }
const libs = [...new Set(fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5]).filter((p) => p && p.startsWith('/')))];
const addons = libs.filter((p) => p.endsWith('.node'));
const asan = libs.filter((p) => /\\/libasan\\.so/.test(p));
console.log('# [asan] ' + process.env.KTLS_ASAN_WHERE + ': node-gyp-build loaded ' + addons.join(', ') + ' with ' + (asan.join(', ') || 'no ASan runtime'));
if (addons.length !== 1 || fs.realpathSync(addons[0]) !== fs.realpathSync(process.env.KTLS_ASAN_ADDON) || asan.length === 0) {
  console.error('# [asan] FAIL: expected exactly ' + process.env.KTLS_ASAN_ADDON + ' and libasan');
  process.exit(1);
}
`;

const files = (dir) => testFiles(root, dir);

/** A sink that only remembers. */
function quietSink() {
  let text = '';
  return { write: (x) => ((text += x), true), text: () => text };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const elapsed = () => `${Math.round((Date.now() - started) / 1000)}s`;

  if (opts.tsc) {
    if (run(path.join(root, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json']) !== 0) return fail('TypeScript compilation failed');
  } else if (!fs.existsSync(path.join(root, 'dist', 'lib', 'native', 'binding.js'))) {
    return fail('dist/ is not built and --no-tsc was given');
  }
  if (opts.build && build() !== 0) return fail('the sanitized build failed');
  const libasan = checkBinary();

  fs.rmSync(reportsDir, { recursive: true, force: true });
  fs.mkdirSync(reportsDir, { recursive: true });
  makeShims();
  const sanEnv = {
    PATH: `${shimDir}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    LD_PRELOAD: libasan,
    ASAN_OPTIONS: `detect_leaks=0:abort_on_error=1:halt_on_error=1:log_path=${path.join(reportsDir, 'asan')}`,
    UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1:abort_on_error=1',
    KTLS_PREBUILD: outDir,
    KTLS_ASAN_ADDON: addonPath,
    NO_COLOR: '1',
    TAP_COLORS: '0',
  };
  console.log(
    `# [asan] test environment: ${Object.entries(sanEnv)
      .filter(([k]) => !k.includes('COLOR') && k !== 'PATH')
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}`,
  );
  const tapArgs = ['--disable-coverage', '--reporter=tap', `--timeout=${opts.tapTimeout}`, '--jobs=1'];
  const pick = (list) => (opts.files.length ? list.filter((f) => opts.files.some((x) => f.endsWith(x) || f.includes(x))) : list);

  const hostEnv = { ...process.env, ...sanEnv };
  const check = (label) => spawnSync(process.execPath, ['-e', CHECK], { env: { ...hostEnv, KTLS_ASAN_WHERE: label }, encoding: 'utf8' });
  const hostCheck = check(`host ${os.release()}`);
  process.stdout.write(hostCheck.stdout + hostCheck.stderr);
  if (hostCheck.status !== 0) return fail('the sanitized addon is not what the tests would load on the host');

  const results = [];
  let allText = '';
  const hostFiles = pick(files('host'));
  if (opts.only !== 'kernel' && hostFiles.length) {
    console.log(`# === [asan] host suite: ${os.release()} (${hostFiles.length} files) at ${elapsed()} ===`);
    const sink = tee();
    const t0 = Date.now();
    const status = await spawnTee(tapBin, [...tapArgs, ...hostFiles], hostEnv, sink);
    allText += sink.text();
    results.push({ name: 'host', status, summary: summarize(sink.text()), seconds: Math.round((Date.now() - t0) / 1000) });
  }

  const kernelFiles = pick(files('kernel'));
  const guestFiles = opts.guestAll ? pick(files('guest')) : kernelFiles;
  let label = 'not run';
  if (opts.only !== 'host' && guestFiles.length) {
    const probe = spawnSync(process.execPath, ['-e', `require('./dist/lib/native/probe.js').probe().then(c => { console.log(JSON.stringify(c)); })`], {
      env: hostEnv,
      encoding: 'utf8',
    });
    if (probe.status !== 0) return fail(`probe failed: ${probe.stderr}`);
    const caps = JSON.parse(probe.stdout);
    const sink = tee();
    const t0 = Date.now();
    let status;
    if (caps.ulp && caps.ciphers.some((c) => c.tx && c.rx)) {
      label = `native ${os.release()}`;
      console.log(`# === [asan] kTLS suite under ${label} (${guestFiles.length} files) at ${elapsed()} ===`);
      status = await spawnTee(tapBin, [...tapArgs, ...guestFiles], { ...hostEnv, KTLS_KERNEL_LABEL: label }, sink);
    } else {
      console.log(
        `# === [asan] kTLS suite under user-mode-linux ${opts.kernel} (${guestFiles.length} files; host ${os.release()} has no kTLS) at ${elapsed()} ===`,
      );
      // The same check inside the guest, then tap, in one boot.
      const command = ['sh', '-c', '"$1" -e "$2" || exit 97; shift 2; exec "$@"', 'sh', process.execPath, CHECK, tapBin, ...tapArgs, ...guestFiles];
      let uml;
      try {
        // A smaller quarantine in the guest: every page a UML guest process
        // touches is a host mapping and a slow fault; with ASan's default 256 MB
        // tap's own process passed the host's vm.max_map_count (65530) and UML
        // killed it ("UML ran out of memory on the host side"), and test files
        // ran 2-3x slower than with 16 MB.
        const guestEnv = { ...sanEnv, ASAN_OPTIONS: `${sanEnv.ASAN_OPTIONS}:quarantine_size_mb=16`, KTLS_ASAN_WHERE: `guest (UML ${opts.kernel})` };
        // One guest per core (a UML guest uses one), each with a share of the files.
        const lists = shard(guestFiles, Math.min(shardCount(), guestFiles.length));
        const runs = await Promise.all(
          lists.map(async (list, i) => {
            const own = i === 0 ? sink : quietSink();
            const r = await runInUml([...command.slice(0, -guestFiles.length), ...list], {
              kernel: opts.kernel,
              cwd: root,
              output: own,
              timeout: opts.timeout,
              env: guestEnv,
              slot: i,
            });
            if (i > 0) sink.write(`\n# === [asan] guest ${i + 1} of ${lists.length} (${list.length} files) ===\n${own.text()}`);
            return { r, summary: summarize(own.text()) };
          }),
        );
        uml = runs[0].r;
        uml.status = runs.reduce((st, x) => st || x.r.status || (x.summary ? 0 : 1), 0);
        uml.bootFailure = runs.map((x) => x.r.bootFailure).find(Boolean);
        const total = (k) => runs.reduce((n, x) => n + (x.summary?.[k] ?? 0), 0);
        // One summary line for all guests, the format summarize() reads.
        if (lists.length > 1) sink.write(`# { total: ${total('total')}, pass: ${total('pass')}, fail: ${total('fail')} } (${lists.length} guests)\n`);
      } catch (err) {
        return fail(`the user-mode-linux harness failed: ${err.message}`);
      }
      label = uml.kernelLabel;
      status = uml.status;
      if (uml.bootFailure) sink.write(`# [asan] FAIL: this host cannot boot ${label}: ${uml.bootFailure}\n`);
      if (status === 97)
        sink.write(
          `# [asan] FAIL: the check of the sanitized addon failed in the guest (see the reports below; ASan cannot start under UML kernels with a 39-bit address space, such as 6.1 and 6.12)\n`,
        );
    }
    allText += sink.text();
    results.push({ name: `kernel (${label})`, status, summary: summarize(sink.text()), seconds: Math.round((Date.now() - t0) / 1000) });
  }

  // Sanitizer reports: in the output, and in the log_path files.
  const inOutput = allText.match(REPORT) ?? [];
  const reportFiles = fs
    .readdirSync(reportsDir)
    .map((f) => path.join(reportsDir, f))
    .filter((f) => fs.statSync(f).size > 0);
  let fileReports = 0;
  for (const f of reportFiles) {
    const text = fs.readFileSync(f, 'utf8');
    fileReports += Math.max((text.match(REPORT) ?? []).length, 1);
    console.log(`\n# === [asan] report ${path.relative(root, f)} ===\n${text.trimEnd()}`);
  }

  let passed = 0;
  let failed = 0;
  console.log('\n# === [asan] summary ===');
  for (const r of results) {
    const s = r.summary ?? { total: 0, pass: 0, fail: 0 };
    const bad = r.status !== 0 || !r.summary || s.total === 0;
    passed += s.pass;
    failed += bad ? Math.max(s.fail, 1) : s.fail;
    console.log(`# ${r.name}: ${s.pass} passed, ${s.fail} failed (tap exit ${r.status}, ${r.seconds}s)`);
  }
  const reports = inOutput.length + fileReports;
  // The same finding is often printed more than once (a test that replays a
  // crashing call shows the child's report again): list each place once.
  const places = new Set();
  for (const text of [allText, ...reportFiles.map((f) => fs.readFileSync(f, 'utf8'))]) {
    for (const m of text.matchAll(/^[#\s]*(\S+: runtime error: .*|==\d+==\s*ERROR: \w*Sanitizer: .*|SUMMARY: \w*Sanitizer: .*)$/gm))
      places.add(m[1].replace(/^==\d+==\s*/, '').trim());
  }
  for (const p of places) console.log(`# [asan] finding: ${p}`);
  console.log(`# addon: ${path.relative(root, addonPath)} (ASan + UBSan), runtime ${libasan}`);
  console.log(`# kTLS tests ran under: ${label}`);
  console.log(
    `# sanitizer reports: ${reports} (${inOutput.length} in the output, ${reportFiles.length} report files in ${path.relative(root, reportsDir)}/; ${places.size} distinct)`,
  );
  console.log(`# total time: ${elapsed()}`);
  if (results.length === 0) return fail('no test file matched');
  if (reports) console.log(`# FAIL: ${reports} sanitizer report(s)`);
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 && reports === 0 ? 0 : 1;
}

function fail(message) {
  console.error(`test:asan: ${message}`);
  return 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`test:asan: ${err.message}`);
    process.exit(1);
  },
);
