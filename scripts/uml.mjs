#!/usr/bin/env node
// Runs a command under Debian's user-mode-linux kernel, which has kTLS even
// where the host kernel does not. The host filesystem is the guest's root, so
// the checkout, node and node_modules are simply there.
//
//   node scripts/uml.mjs [--kernel 6.1] [--mem 1536M] [--timeout 600] -- <command...>
//
// Exit status and output are the command's. The package and the kernel's
// modules are downloaded once (apt-get download, no system install) into
// .cache/uml/ (or $KTLS_UML_CACHE).
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const START = '@@ktls-uml-start@@';
const END = '@@ktls-uml-end@@';

// Kernel name -> Debian suite. Only the host's own suite runs with the host's
// glibc; newer suites need a newer loader (see shared/docs/kernel-under-test.md).
const KERNELS = { '6.1': 'bookworm' };

/** Where the downloaded packages live. */
export function cacheDir() {
  return process.env.KTLS_UML_CACHE || path.join(root, '.cache', 'uml');
}

function hostSuite() {
  try {
    const m = /^VERSION_CODENAME=(\S+)/m.exec(fs.readFileSync('/etc/os-release', 'utf8'));
    return m ? m[1] : undefined;
  } catch {
    return undefined;
  }
}

function download(dir, names) {
  const run = () => spawnSync('apt-get', ['download', ...names], { cwd: dir, encoding: 'utf8' });
  let r = run();
  if (r.status !== 0 && process.getuid?.() === 0) {
    // A fresh machine has no package lists until the first update.
    const u = spawnSync('apt-get', ['update'], { encoding: 'utf8' });
    if (u.status !== 0) throw new Error(`apt-get update failed: ${u.stderr}`);
    r = run();
  }
  if (r.error) throw new Error(`cannot run apt-get (${r.error.message}); a Debian host with apt is needed to fetch user-mode-linux`);
  if (r.status !== 0) throw new Error(`apt-get download ${names.join(' ')} failed: ${r.stderr.trim()}`);
}

/**
 * Makes sure the UML kernel for `kernel` is unpacked, and returns what is
 * needed to boot it: the binary, the kernel version, and the modprobe wrapper.
 */
export function prepare(kernel = '6.1') {
  const suite = KERNELS[kernel];
  if (!suite) throw new Error(`unknown UML kernel ${kernel}; available: ${Object.keys(KERNELS).join(', ')}`);
  if (hostSuite() !== suite) throw new Error(`UML kernel ${kernel} is Debian ${suite}'s; this host is ${hostSuite() ?? 'not Debian'}`);
  const dir = path.join(cacheDir(), suite);
  const ready = path.join(dir, 'ready.json');
  if (fs.existsSync(ready)) return JSON.parse(fs.readFileSync(ready, 'utf8'));

  fs.rmSync(dir, { recursive: true, force: true });
  const debs = path.join(dir, 'debs');
  fs.mkdirSync(debs, { recursive: true });
  download(debs, ['user-mode-linux', 'kmod']);
  const tree = path.join(dir, 'tree');
  for (const deb of fs.readdirSync(debs).filter((f) => f.endsWith('.deb'))) {
    execFileSync('dpkg-deb', ['-x', path.join(debs, deb), tree]);
  }
  const linux = path.join(tree, 'usr', 'bin', 'linux.uml');
  const modules = path.join(tree, 'usr', 'lib', 'uml', 'modules');
  const [version] = fs.readdirSync(modules);
  if (!version || !fs.existsSync(linux)) throw new Error(`unexpected user-mode-linux package layout in ${tree}`);

  // The kernel runs /proc/sys/kernel/modprobe to load the crypto modules it
  // wants when keys are installed; without a working loader TLS_TX fails ENOENT.
  const modroot = path.join(dir, 'modroot');
  fs.mkdirSync(path.join(modroot, 'lib', 'modules'), { recursive: true });
  fs.mkdirSync(path.join(modroot, 'bin'), { recursive: true });
  fs.symlinkSync(path.join(modules, version), path.join(modroot, 'lib', 'modules', version));
  // kmod picks its personality from argv[0].
  fs.symlinkSync(path.join(tree, 'bin', 'kmod'), path.join(modroot, 'bin', 'modprobe'));
  const modprobe = path.join(dir, 'modprobe.sh');
  fs.writeFileSync(modprobe, `#!/bin/sh\nexec ${path.join(modroot, 'bin', 'modprobe')} -d ${modroot} "$@"\n`, { mode: 0o755 });

  const info = { kernel, suite, version, linux, modprobe };
  fs.writeFileSync(ready, JSON.stringify(info, null, 2));
  return info;
}

const quote = (s) => `'${String(s).replaceAll("'", `'\\''`)}'`;

// Variables the guest command inherits from the host.
const PASS_ENV = ['PATH', 'HOME', 'CI', 'NODE_OPTIONS', 'TERM', 'LANG', 'TAP_TIMEOUT', 'KTLS_TEST_FILTER', 'TAP_COLORS', 'FORCE_COLOR'];

/**
 * Boots UML, runs `command` (argv array) in `cwd`, streams its output to
 * `output` and resolves with `{ status, kernelLabel }`.
 */
export async function runInUml(command, { kernel = '6.1', cwd = process.cwd(), mem = '1536M', timeout = 1800, env = {}, output = process.stdout } = {}) {
  const info = prepare(kernel);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-uml-'));
  const status = path.join(work, 'status');
  const label = `UML ${info.version} (Debian ${info.suite} user-mode-linux)`;
  const vars = { ...Object.fromEntries(PASS_ENV.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]])), ...env, KTLS_KERNEL_LABEL: label };
  const init = [
    '#!/bin/sh',
    'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'mount -t proc proc /proc && mount -t sysfs sysfs /sys || exit 1',
    `echo ${quote(info.modprobe)} > /proc/sys/kernel/modprobe`,
    'echo 1 > /proc/sys/kernel/printk',
    'stty -opost -echo 2>/dev/null',
    'mount -t tmpfs tmpfs /dev/shm 2>/dev/null',
    'ip link set lo up',
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

  const args = [`mem=${mem}`, 'root=/dev/root', 'rootfstype=hostfs', 'rootflags=/', 'rw', `init=${initPath}`, 'con=null', 'con0=fd:0,fd:1', 'quiet', 'loglevel=1'];
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
  child.stderr.on('data', (c) => { bootLog += c.toString('utf8'); });
  const timer = setTimeout(() => {
    output.write(`\n[uml] timed out after ${timeout}s; killing the guest\n`);
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
  }, timeout * 1000);
  const code = await new Promise((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  if (state === 'run' && pending) output.write(pending);
  let result = 1;
  try {
    result = Number.parseInt(fs.readFileSync(status, 'utf8').trim(), 10);
  } catch {
    output.write(`[uml] the guest ended without a status (uml exit ${code}); boot log:\n${bootLog}`);
  }
  fs.rmSync(work, { recursive: true, force: true });
  return { status: Number.isNaN(result) ? 1 : result, kernelLabel: label };
}

async function main(argv) {
  const opts = { kernel: '6.1', mem: '1536M', timeout: 1800 };
  const sep = argv.indexOf('--');
  const flags = sep >= 0 ? argv.slice(0, sep) : argv;
  const command = sep >= 0 ? argv.slice(sep + 1) : [];
  for (let i = 0; i < flags.length; i++) {
    const [k, v = flags[++i]] = flags[i].includes('=') ? flags[i].split('=') : [flags[i]];
    if (k === '--kernel') opts.kernel = v;
    else if (k === '--mem') opts.mem = v;
    else if (k === '--timeout') opts.timeout = Number(v);
    else if (k === '--prepare') { console.log(JSON.stringify(prepare(opts.kernel), null, 2)); return 0; }
    else { console.error(`usage: uml.mjs [--kernel 6.1] [--mem 1536M] [--timeout s] [--prepare] -- command...`); return 2; }
  }
  if (command.length === 0) command.push('sh', '-c', 'uname -r; cat /proc/sys/net/ipv4/tcp_available_ulp');
  const { status } = await runInUml(command, opts);
  return status;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((s) => process.exit(s), (err) => { console.error(`uml: ${err.message}`); process.exit(1); });
}
