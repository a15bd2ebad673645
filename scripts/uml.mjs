#!/usr/bin/env node
// Runs a command under Debian's user-mode-linux kernel, which has kTLS even
// where the host kernel does not. The host filesystem is the guest's root, so
// the checkout, node and node_modules are simply there.
//
//   node scripts/uml.mjs [--kernel auto|6.1|6.12|7.2|all] [--mem 1536M] [--timeout 600] -- <command...>
//
// `auto` (the default) boots the first kernel of AUTO_ORDER that boots on this
// host. Some do not: Debian's 6.1 and 6.12 UML kernels die at their first user
// process on hosts whose XSAVE area is larger than they handle (Intel CPUs with
// AMX: "ptrace set fp regs failed, errno = 14"). A kernel that cannot boot is
// reported as such (bootFailure), never as a test result.
//
// Exit status and output are the command's (with `--kernel all`, the first
// failing one's). The package and the kernel's modules are downloaded once
// (apt-get download, no system install) into .cache/uml/<suite>/ (or
// $KTLS_UML_CACHE/<suite>/).
import { spawn, execFileSync } from 'node:child_process';
import { download, downloadFromSuite, hostSuite, unpack } from './debian.mjs';
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
const KERNELS = { 6.1: 'bookworm', 6.12: 'trixie', 7.2: 'sid' };
export const KERNEL_NAMES = Object.keys(KERNELS);
/** `auto`: the machine's own suite first (no patched loader), then the newest. */
export const AUTO_ORDER = ['6.1', '7.2', '6.12'];

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
    else downloadFromSuite(suiteDebs, path.join(part, 'apt'), suite, ['user-mode-linux', 'libc6']);
    unpack(suiteDebs, tree);
    const linux = path.join(tree, 'usr', 'bin', 'linux.uml');
    const modules = path.join(tree, 'usr', 'lib', 'uml', 'modules');
    const [version] = fs.existsSync(modules) ? fs.readdirSync(modules) : [];
    if (!version || !fs.existsSync(linux)) throw new Error(`unexpected user-mode-linux package layout in ${tree}`);
    if (!version.startsWith(`${kernel}.`)) process.stderr.write(`[uml] note: Debian ${suite}'s user-mode-linux is now ${version}, not ${kernel}.x\n`);

    if (!own) {
      // Another suite's UML binary may need a newer glibc than the host's. It
      // cannot be started through that suite's ld.so (UML re-executes
      // /proc/self/exe), so the binary itself is pointed at it.
      const libdir = firstExisting(tree, ['usr/lib/x86_64-linux-gnu', 'lib/x86_64-linux-gnu']);
      const ldso = libdir && fs.readdirSync(libdir).find((f) => /^ld-linux.*\.so\.\d+$/.test(f));
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
    for (const d of ['debs', 'suite-debs', 'apt']) fs.rmSync(path.join(part, d), { recursive: true, force: true });
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
 * `output` and resolves with `{ status, kernelLabel }`.
 */
export async function runInUml(command, options = {}) {
  const { kernel = 'auto', output = process.stdout } = options;
  if (kernel !== 'auto') return bootAndRun(command, { ...options, kernel });
  const refused = [];
  for (const k of AUTO_ORDER) {
    const r = await bootAndRun(command, { ...options, kernel: k });
    if (!r.bootFailure) return refused.length ? { ...r, skippedKernels: refused } : r;
    refused.push({ kernel: k, reason: r.bootFailure });
    output.write(`[uml] kernel ${k} cannot boot on this host (${r.bootFailure}); trying the next one\n`);
  }
  throw new Error(`no user-mode-linux kernel boots on this host: ${refused.map((x) => `${x.kernel}: ${x.reason}`).join('; ')}`);
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

/** One boot of one named kernel: { status, kernelLabel, bootFailure? }. */
async function bootAndRun(command, { kernel, cwd = process.cwd(), mem = '1536M', timeout = 1800, env = {}, output = process.stdout }) {
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
  // Two cores: one guest at a time. flock(1) queues concurrent runs (other
  // terminals, parallel scripts) on a lock file instead of letting them compete.
  const lock = path.join(cacheDir(), 'run.lock');
  const [bin, argv] = fs.existsSync('/usr/bin/flock') ? ['/usr/bin/flock', [lock, info.linux, ...args]] : [info.linux, args];
  const child = spawn(bin, argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, TMPDIR: work } });
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
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
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
    if (state === 'boot') return { status: 1, kernelLabel: label, bootFailure: bootFailureOf(bootLog, code), bootLog };
    output.write(`[uml] the guest ended without a status (uml exit ${code}); boot log:\n${bootLog}`);
  }
  fs.rmSync(work, { recursive: true, force: true });
  return { status: Number.isNaN(result) ? 1 : result, kernelLabel: label };
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
      console.error(`usage: uml.mjs [--kernel auto|${KERNEL_NAMES.join('|')}|all] [--mem 1536M] [--timeout s] [--prepare] -- command...`);
      return 2;
    }
  }
  const kernels = opts.kernel === 'all' ? KERNEL_NAMES : [opts.kernel];
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
      // With `all`, a kernel this host cannot run is said, not counted; a named one is a failure.
      process.stderr.write(`[uml] ${kernelLabel}: cannot boot on this host (${bootFailure})\n`);
      if (kernels.length === 1 && !failed) failed = 1;
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
