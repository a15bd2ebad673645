#!/usr/bin/env node
// Runs a command under Debian's user-mode-linux kernel, which has kTLS even
// where the host kernel does not. The host filesystem is the guest's root, so
// the checkout, node and node_modules are simply there.
//
//   node scripts/uml.mjs [--kernel auto|pre|rekey|5.10|6.1|6.12|7.2|K,K...|all] [--mem 1536M] [--timeout 600] -- <command...>
//
// `auto` (the default) boots the first kernel of AUTO_ORDER that boots on this
// host. Debian's UML kernels before 6.13 keep a guest's FPU state in a fixed
// 2696-byte buffer, which hosts with AMX refuse ("ptrace set fp regs failed,
// errno = 14"); every kernel is started with scripts/uml-xstate.c preloaded,
// which resends such a write at the host's size, so they boot on any x86-64
// host. A kernel that still cannot boot is reported as such (bootFailure),
// never as a test result.
//
// Exit status and output are the command's (with `--kernel all`, the first
// failing one's). The package and the kernel's modules are downloaded once
// (apt-get download, no system install) into .cache/uml/<suite>/ (or
// $KTLS_UML_CACHE/<suite>/).
import { spawn, execFileSync } from 'node:child_process';
import { download, downloadFromSuite, hostSuite, unpack } from './debian.mjs';
import { compareVersions, glibcNeeded, hostGlibc, xstateShim } from './uml-host.mjs';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const START = '@@ktls-uml-start@@';
const END = '@@ktls-uml-end@@';

// Kernel name -> Debian suite. A suite other than the host's comes from a
// private apt configuration and runs on its own glibc (patchelf'd loader), see
// shared/docs/kernel-under-test.md. sid moves: the name is what it was when
// added; the label always reports the version actually booted.
const KERNELS = { '5.10': 'bullseye', 6.1: 'bookworm', 6.12: 'trixie', 7.2: 'sid' };
export const KERNEL_NAMES = ['5.10', '6.1', '6.12', '7.2'];
/** `auto`: the machine's own suite first (no patched loader), then the newest. */
export const AUTO_ORDER = ['6.1', '7.2', '6.12', '5.10'];
/**
 * Kernel generations for kTLS: without TLS 1.3 rekey (before Linux 6.14) and
 * with it. CI runs the kTLS suite under one of each; `--kernel pre|rekey`
 * boots the first of the generation's list that boots here.
 */
export const GENERATIONS = { pre: ['6.1', '6.12', '5.10'], rekey: ['7.2'] };

/** The generation of a kernel release string: `pre` (< 6.14) or `rekey`. */
export function generationOf(release) {
  const [a, b] = String(release)
    .split('.')
    .map((x) => Number.parseInt(x, 10));
  return a > 6 || (a === 6 && b >= 14) ? 'rekey' : 'pre';
}

/** Where the downloaded packages live. */
export function cacheDir() {
  return process.env.KTLS_UML_CACHE || path.join(root, '.cache', 'uml');
}

const firstExisting = (base, rels) => rels.map((r) => path.join(base, r)).find((p) => fs.existsSync(p));

/**
 * Makes sure the UML kernel for `kernel` is unpacked, and returns what is
 * needed to boot it: the binary, the kernel version, and the modprobe wrapper.
 */
export function prepare(kernel = '6.1') {
  const suite = KERNELS[kernel];
  if (!suite) throw new Error(`unknown UML kernel ${kernel}; available: ${KERNEL_NAMES.join(', ')}`);
  const host = hostSuite();
  if (!host) throw new Error('the UML kernels are fetched with apt from Debian; this host is not Debian');
  const dir = path.join(cacheDir(), suite);
  const ready = () => {
    try {
      const info = JSON.parse(fs.readFileSync(path.join(dir, 'ready.json'), 'utf8'));
      return fs.existsSync(info.linux) ? info : undefined;
    } catch {
      return undefined;
    }
  };
  const done = ready();
  if (done) return done;

  // Built under a private name and renamed into place when complete, so
  // concurrent first runs never see (or remove) each other's half-made tree.
  // Everything inside refers to the final paths.
  const part = `${dir}.part${process.pid}`;
  const at = (p) => path.join(dir, path.relative(part, p));
  fs.rmSync(part, { recursive: true, force: true });
  const debs = path.join(part, 'debs');
  const tools = path.join(part, 'tools');
  const tree = path.join(part, 'tree');
  fs.mkdirSync(debs, { recursive: true });
  try {
    // The module loader runs inside the guest on the host's own glibc, so it
    // is always the host suite's kmod; that one reads xz and zstd modules too.
    const own = suite === host;
    download(debs, own ? ['kmod'] : ['kmod', 'patchelf']);
    unpack(debs, tools);
    const suiteDebs = path.join(part, 'suite-debs');
    fs.mkdirSync(suiteDebs);
    if (own) download(suiteDebs, ['user-mode-linux']);
    else downloadFromSuite(suiteDebs, path.join(part, 'apt'), suite, ['user-mode-linux']);
    unpack(suiteDebs, tree);
    const linux = path.join(tree, 'usr', 'bin', 'linux.uml');
    const modules = path.join(tree, 'usr', 'lib', 'uml', 'modules');
    const [version] = fs.existsSync(modules) ? fs.readdirSync(modules) : [];
    if (!version || !fs.existsSync(linux)) throw new Error(`unexpected user-mode-linux package layout in ${tree}`);
    if (!version.startsWith(`${kernel}.`)) process.stderr.write(`[uml] note: Debian ${suite}'s user-mode-linux is now ${version}, not ${kernel}.x\n`);

    const needs = glibcNeeded(linux);
    if (!own && compareVersions(needs, hostGlibc()) > 0) {
      // This UML binary needs a newer glibc than the host's. It cannot be
      // started through that suite's ld.so (UML re-executes /proc/self/exe),
      // so the binary itself is pointed at it. (An older suite's binary runs on
      // the host's glibc as it is: patchelf breaks bullseye's.)
      const libDebs = path.join(part, 'libc-debs');
      fs.mkdirSync(libDebs);
      downloadFromSuite(libDebs, path.join(part, 'apt'), suite, ['libc6']);
      unpack(libDebs, tree);
      const isLoader = (f) => /^ld-linux.*\.so\.\d+$/.test(f);
      const libdir = ['usr/lib/x86_64-linux-gnu', 'lib/x86_64-linux-gnu']
        .map((r) => path.join(tree, r))
        .find((d) => fs.existsSync(d) && fs.readdirSync(d).some(isLoader));
      const ldso = libdir && fs.readdirSync(libdir).find(isLoader);
      if (!ldso) throw new Error(`no dynamic loader in Debian ${suite}'s libc6 under ${tree}`);
      const patchelf = firstExisting(tools, ['usr/bin/patchelf', 'bin/patchelf']);
      if (!patchelf) throw new Error('the patchelf package has no usr/bin/patchelf');
      execFileSync(patchelf, ['--set-interpreter', at(path.join(libdir, ldso)), '--set-rpath', at(libdir), linux]);
    }

    // The kernel runs /proc/sys/kernel/modprobe to load the crypto modules it
    // wants when keys are installed; without a working loader TLS_TX fails ENOENT.
    const modroot = path.join(part, 'modroot');
    fs.mkdirSync(path.join(modroot, 'lib', 'modules'), { recursive: true });
    fs.mkdirSync(path.join(modroot, 'bin'), { recursive: true });
    fs.symlinkSync(at(path.join(modules, version)), path.join(modroot, 'lib', 'modules', version));
    const kmod = firstExisting(tools, ['bin/kmod', 'usr/bin/kmod']);
    if (!kmod) throw new Error('the kmod package has no kmod binary');
    // kmod picks its personality from argv[0].
    fs.symlinkSync(at(kmod), path.join(modroot, 'bin', 'modprobe'));
    const modprobe = path.join(part, 'modprobe.sh');
    fs.writeFileSync(modprobe, `#!/bin/sh\nexec ${at(path.join(modroot, 'bin', 'modprobe'))} -d ${at(modroot)} "$@"\n`, { mode: 0o755 });

    // The packages and lists are not needed once unpacked.
    for (const d of ['debs', 'suite-debs', 'libc-debs', 'apt']) fs.rmSync(path.join(part, d), { recursive: true, force: true });
    const info = { kernel, suite, version, linux: at(linux), modprobe: at(modprobe) };
    fs.writeFileSync(path.join(part, 'ready.json'), JSON.stringify(info, null, 2));
    if (!ready()) fs.rmSync(dir, { recursive: true, force: true });
    try {
      fs.renameSync(part, dir);
    } catch (err) {
      // Another run finished first; use its tree.
      if (!ready()) throw err;
    }
    return ready() ?? info;
  } finally {
    fs.rmSync(part, { recursive: true, force: true });
  }
}

const quote = (s) => `'${String(s).replaceAll("'", `'\\''`)}'`;

// Variables the guest command inherits from the host.
const PASS_ENV = ['PATH', 'HOME', 'CI', 'NODE_OPTIONS', 'TERM', 'LANG', 'TAP_TIMEOUT', 'KTLS_TEST_FILTER', 'TAP_COLORS', 'FORCE_COLOR'];

/**
 * Boots UML, runs `command` (argv array) in `cwd`, streams its output to
 * `output` and resolves with `{ status, kernel, kernelLabel, release }`
 * (`kernel`: the name that booted, for `auto`/`pre`/`rekey`). `slot`: the
 * lock slot, for callers that run one guest per core.
 */
export async function runInUml(command, options = {}) {
  const { kernel = 'auto', output = process.stdout } = options;
  const order = kernel === 'auto' ? AUTO_ORDER : GENERATIONS[kernel];
  if (!order) return bootAndRun(command, { ...options, kernel });
  const refused = [];
  for (const k of order) {
    const r = await bootAndRun(command, { ...options, kernel: k });
    if (!r.bootFailure) return refused.length ? { ...r, skippedKernels: refused } : r;
    refused.push({ kernel: k, reason: r.bootFailure });
    output.write(`[uml] kernel ${k} cannot boot on this host (${r.bootFailure}); trying the next one\n`);
  }
  throw new Error(
    `no user-mode-linux kernel${kernel === 'auto' ? '' : ` of generation ${kernel}`} boots on this host: ${refused.map((x) => `${x.kernel}: ${x.reason}`).join('; ')}`,
  );
}

/** The line of a boot log that says why the guest died before running anything. */
function bootFailureOf(bootLog, code) {
  const lines = bootLog
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const why = lines.find((l) => /failed, errno = \d+|Kernel panic|not syncing|out of memory/i.test(l));
  return why ?? `the guest exited (uml exit ${code}) before running the command`;
}

/**
 * Kills a guest started as `pid` (flock, or UML itself) and everything UML
 * started. UML calls setsid(), so its processes are not in flock's group:
 * each direct child's own group is killed too.
 */
function killGuest(pid) {
  const children = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      // pid (comm) state ppid ...: comm may hold spaces, so read after its ')'.
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) children.push(Number(d));
    } catch {
      /* gone meanwhile */
    }
  }
  for (const p of [...children, pid]) {
    for (const target of [-p, p]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        /* not a group leader, or already gone */
      }
    }
  }
}

/** One boot of one named kernel: { status, kernelLabel, bootFailure? }. */
async function bootAndRun(command, { kernel, cwd = process.cwd(), mem = '1536M', timeout = 1800, env = {}, output = process.stdout, slot = 0 }) {
  if (!KERNELS[kernel]) throw new Error(`unknown kernel ${kernel}: one of auto, ${KERNEL_NAMES.join(', ')}`);
  const info = prepare(kernel);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-uml-'));
  const status = path.join(work, 'status');
  const label = `UML ${info.version} (Debian ${info.suite} user-mode-linux)`;
  // The project's own knobs (KTLS_*: run counts, seeds) reach the guest too.
  const passed = Object.keys(process.env).filter((k) => PASS_ENV.includes(k) || k.startsWith('KTLS_'));
  const vars = { ...Object.fromEntries(passed.map((k) => [k, process.env[k]])), ...env, KTLS_KERNEL_LABEL: label };
  const init = [
    '#!/bin/sh',
    'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'mount -t proc proc /proc && mount -t sysfs sysfs /sys || exit 1',
    `echo ${quote(info.modprobe)} > /proc/sys/kernel/modprobe`,
    'echo 1 > /proc/sys/kernel/printk',
    'stty -opost -echo 2>/dev/null',
    'mount -t tmpfs tmpfs /dev/shm 2>/dev/null',
    'ip link set lo up',
    // Servers under test hold thousands of connections (the idle-memory bench: 5,000 each side).
    'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"',
    `${quote(info.modprobe)} tls || echo 'modprobe tls failed'`,
    ...Object.entries(vars).map(([k, v]) => `export ${k}=${quote(v)}`),
    `cd ${quote(cwd)}`,
    `echo ${START}`,
    `${command.map(quote).join(' ')} 2>&1`,
    `echo $? > ${quote(status)}`,
    `echo ${END}`,
    'halt -f',
  ];
  const initPath = path.join(work, 'init.sh');
  fs.writeFileSync(initPath, init.join('\n') + '\n', { mode: 0o755 });

  const args = [`mem=${mem}`, 'root=/dev/root', 'rootfstype=hostfs', 'rootflags=/', 'rw', `init=${initPath}`, 'con=null', 'con0=fd:0,fd:1', 'quiet'];
  // A UML guest uses one core. flock(1) queues concurrent runs (other
  // terminals, parallel scripts) on a lock file instead of letting them
  // compete; a caller that runs one guest per core gives each its own slot.
  const lock = path.join(cacheDir(), slot ? `run.lock.${slot}` : 'run.lock');
  const [bin, argv] = fs.existsSync('/usr/bin/flock') ? ['/usr/bin/flock', [lock, info.linux, ...args]] : [info.linux, args];
  const shim = xstateShim(cacheDir());
  const preload = [process.env.LD_PRELOAD, shim.path].filter(Boolean).join(' ');
  const hostEnv = { ...process.env, TMPDIR: work, ...(preload ? { LD_PRELOAD: preload } : {}) };
  const child = spawn(bin, argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: hostEnv });
  let state = 'boot';
  let bootLog = '';
  let pending = '';
  const onData = (chunk) => {
    pending += chunk.toString('utf8');
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl + 1);
      pending = pending.slice(nl + 1);
      if (state === 'boot') {
        if (line.startsWith(START)) state = 'run';
        else bootLog += line;
      } else if (state === 'run') {
        if (line.startsWith(END)) state = 'done';
        else output.write(line);
      }
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', (c) => {
    bootLog += c.toString('utf8');
  });
  const timer = setTimeout(() => {
    output.write(`\n[uml] timed out after ${timeout}s; killing the guest\n`);
    killGuest(child.pid);
  }, timeout * 1000);
  const code = await new Promise((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  if (state === 'run' && pending) output.write(pending);
  let result = 1;
  try {
    result = Number.parseInt(fs.readFileSync(status, 'utf8').trim(), 10);
  } catch {
    fs.rmSync(work, { recursive: true, force: true });
    // Never reached the command: the kernel itself could not run here.
    if (state === 'boot') {
      const why = bootFailureOf(bootLog, code);
      return { status: 1, kernel, kernelLabel: label, release: info.version, bootFailure: shim.error ? `${why} (${shim.error})` : why, bootLog };
    }
    output.write(`[uml] the guest ended without a status (uml exit ${code}); boot log:\n${bootLog}`);
  }
  fs.rmSync(work, { recursive: true, force: true });
  return { status: Number.isNaN(result) ? 1 : result, kernel, kernelLabel: label, release: info.version };
}

async function main(argv) {
  const opts = { kernel: 'auto', mem: '1536M', timeout: 1800 };
  const sep = argv.indexOf('--');
  const flags = sep >= 0 ? argv.slice(0, sep) : argv;
  const command = sep >= 0 ? argv.slice(sep + 1) : [];
  let prepareOnly = false;
  for (let i = 0; i < flags.length; i++) {
    if (flags[i] === '--prepare') {
      prepareOnly = true;
      continue;
    }
    const [k, v = flags[++i]] = flags[i].includes('=') ? flags[i].split('=') : [flags[i]];
    if (k === '--kernel') opts.kernel = v;
    else if (k === '--mem') opts.mem = v;
    else if (k === '--timeout') opts.timeout = Number(v);
    else {
      console.error(`usage: uml.mjs [--kernel auto|pre|rekey|${KERNEL_NAMES.join('|')}|K,K...|all] [--mem 1536M] [--timeout s] [--prepare] -- command...`);
      return 2;
    }
  }
  const kernels = opts.kernel === 'all' ? KERNEL_NAMES : opts.kernel.split(',');
  if (prepareOnly) {
    for (const kernel of kernels) console.log(JSON.stringify(prepare(kernel), null, 2));
    return 0;
  }
  if (command.length === 0) command.push('sh', '-c', 'uname -r; cat /proc/sys/net/ipv4/tcp_available_ulp');
  let failed = 0;
  let ran = 0;
  for (const kernel of kernels) {
    if (kernels.length > 1) process.stderr.write(`[uml] === kernel ${kernel} (Debian ${KERNELS[kernel]}) ===\n`);
    const { status, kernelLabel, bootFailure } = await runInUml(command, { ...opts, kernel });
    if (bootFailure) {
      // A kernel this host cannot boot is a failure, with `all` too: never a column to skip.
      process.stderr.write(`[uml] ${kernelLabel}: cannot boot on this host (${bootFailure})\n`);
      if (!failed) failed = 1;
      continue;
    }
    ran++;
    if (kernels.length > 1) process.stderr.write(`[uml] ${kernelLabel}: exit ${status}\n`);
    if (status !== 0 && !failed) failed = status;
  }
  if (ran === 0 && !failed) failed = 1;
  return failed;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (s) => process.exit(s),
    (err) => {
      console.error(`uml: ${err.message}`);
      process.exit(1);
    },
  );
}
