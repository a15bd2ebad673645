// Debian packages without a system install: `apt-get download` from the
// machine's own suite, or from another suite through a private apt
// configuration (lists, cache and sources of its own), unpacked with dpkg-deb.
// Used by the UML harness (kernels) and the prebuild (older sysroots).
import { spawnSync, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export function hostSuite() {
  try {
    const m = /^VERSION_CODENAME=(\S+)/m.exec(fs.readFileSync('/etc/os-release', 'utf8'));
    return m ? m[1] : undefined;
  } catch {
    return undefined;
  }
}

export function download(dir, names) {
  const run = () => spawnSync('apt-get', ['download', ...names], { cwd: dir, encoding: 'utf8' });
  let r = run();
  if (r.status !== 0 && process.getuid?.() === 0) {
    // A fresh machine has no package lists until the first update.
    const u = spawnSync('apt-get', ['update'], { encoding: 'utf8' });
    if (u.status !== 0) throw new Error(`apt-get update failed: ${u.stderr}`);
    r = run();
  }
  if (r.error) throw new Error(`cannot run apt-get (${r.error.message}); a Debian host with apt is needed to fetch Debian packages`);
  if (r.status !== 0) throw new Error(`apt-get download ${names.join(' ')} failed: ${r.stderr.trim()}`);
}

/**
 * The Debian mirror the machine itself uses for `suite` ({ uri, signedBy }),
 * from /etc/apt's one-line or deb822 sources; mirrors differ between machines
 * (and may be proxies), so none is hard-coded.
 */
function hostMirror(suite) {
  const d = '/etc/apt/sources.list.d';
  const files = ['/etc/apt/sources.list', ...(fs.existsSync(d) ? fs.readdirSync(d).map((f) => path.join(d, f)) : [])];
  const keyPath = (v) => (v && v.startsWith('/') ? v : undefined);
  for (const file of files) {
    let text;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    if (file.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const f = {};
        let key;
        for (const line of stanza.split('\n')) {
          if (line.startsWith('#')) continue;
          const m = /^([\w-]+):\s*(.*)$/.exec(line);
          if (m) f[(key = m[1].toLowerCase())] = m[2].trim();
          else if (key && /^\s/.test(line)) f[key] += `\n${line.trim()}`;
        }
        const words = (k) => (f[k] ?? '').split(/\s+/);
        if (f.enabled === 'no' || !words('types').includes('deb') || !words('suites').includes(suite) || !f.uris) continue;
        return { uri: words('uris')[0], signedBy: keyPath(f['signed-by']) };
      }
    } else if (file.endsWith('.list') || file === '/etc/apt/sources.list') {
      for (const line of text.split('\n')) {
        const m = /^\s*deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)/.exec(line);
        if (m && m[3] === suite) return { uri: m[2], signedBy: keyPath(/signed-by=(\S+)/.exec(m[1] ?? '')?.[1]) };
      }
    }
  }
  return undefined;
}

/**
 * `apt-get download`s `names` (for `arch`, default the machine's) from Debian
 * `suite` into `dir` through an apt configuration of its own under `aptDir`,
 * leaving the system's lists, caches and sources untouched.
 */
export function downloadFromSuite(dir, aptDir, suite, names, arch) {
  const host = hostSuite();
  const mirror = host && hostMirror(host);
  if (!mirror) throw new Error(`no Debian mirror for ${host ?? 'this host'} in /etc/apt; one is needed to fetch packages from Debian ${suite}`);
  fs.mkdirSync(path.join(aptDir, 'lists', 'partial'), { recursive: true });
  fs.mkdirSync(path.join(aptDir, 'cache', 'archives', 'partial'), { recursive: true });
  const list = path.join(aptDir, 'sources.list');
  fs.writeFileSync(list, `deb ${mirror.signedBy ? `[signed-by=${mirror.signedBy}] ` : ''}${mirror.uri} ${suite} main\n`);
  const opts = [
    `Dir::Etc::SourceList=${list}`,
    'Dir::Etc::SourceParts=/dev/null',
    `Dir::State::Lists=${path.join(aptDir, 'lists')}`,
    `Dir::Cache=${path.join(aptDir, 'cache')}`,
    // Another architecture's packages (a cross sysroot) need their own lists.
    ...(arch ? [`APT::Architecture=${arch}`, `APT::Architectures::=${arch}`] : []),
  ].flatMap((o) => ['-o', o]);
  const apt = (args, cwd) => {
    const r = spawnSync('apt-get', [...opts, ...args], { cwd, encoding: 'utf8' });
    if (r.error) throw new Error(`cannot run apt-get (${r.error.message}); a Debian host with apt is needed to fetch Debian packages`);
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} (Debian ${suite} from ${mirror.uri}) failed: ${r.stderr.trim()}`);
  };
  apt(['update', '-qq'], aptDir);
  apt(['download', ...names.map((n) => `${n}${arch ? `:${arch}` : ''}/${suite}`)], dir);
}

export function unpack(debs, into) {
  for (const deb of fs.readdirSync(debs).filter((f) => f.endsWith('.deb'))) execFileSync('dpkg-deb', ['-x', path.join(debs, deb), into]);
}
