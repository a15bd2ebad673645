#!/usr/bin/env node
// docs/node-tls-parity.md, generated from test results. Every public member of
// node:tls's TLSSocket and tls.Server (with what they inherit from net.Socket
// and net.Server, read from this Node's prototypes) and every documented event
// gets a row: ✓ only where a passing test recorded it (test/helpers/parity-log.ts
// writes those records to $KTLS_PARITY_LOG during `npm test`), ✗ with the reason
// below otherwise. A member with neither fails the generation.
//
//   node scripts/parity.mjs --run --out docs/node-tls-parity.md   (npm run docs:parity)
//       runs only the tests that record parity (on this host, and under each
//       UML kernel, 5.10 to 7.2: natively where this kernel has kTLS), then
//       writes the table (a column per kernel) and its .json twin
//   node scripts/parity.mjs --log .cache/parity/log.jsonl --check docs/node-tls-parity.md
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { spawnTee, summarize, tee, testFiles } from './tap-run.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Public prototype members (methods and accessors) of `proto` itself, by name. */
function ownPublic(proto) {
  const names = Object.getOwnPropertyNames(proto).filter((n) => n !== 'constructor' && !n.startsWith('_'));
  const dispose = Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose');
  if (Object.prototype.hasOwnProperty.call(proto, dispose)) names.push('[Symbol.asyncDispose]');
  return names;
}

// Instance properties the Node docs list (set in constructors, so not on prototypes).
const TLS_SOCKET_PROPS = ['alpnProtocol', 'authorized', 'authorizationError', 'encrypted', 'servername'];
const NET_SOCKET_PROPS = ['connecting', 'timeout'];
const SERVER_PROPS = ['maxConnections'];
const TLS_SOCKET_EVENTS = ['keylog', 'OCSPResponse', 'secureConnect', 'session'];
const NET_SOCKET_EVENTS = ['close', 'connect', 'data', 'drain', 'end', 'error', 'lookup', 'ready', 'timeout'];
const TLS_SERVER_EVENTS = ['connection', 'keylog', 'newSession', 'OCSPRequest', 'resumeSession', 'secureConnection', 'tlsClientError'];
const NET_SERVER_EVENTS = ['close', 'drop', 'error', 'listening'];
// Not node:tls/node:net API of their own: tls.Server#setOptions is undocumented
// (an internal of the constructor), net.Socket#read is stream.Readable#read.
const SKIP = new Set(['Server#setOptions', 'TLSSocket#read']);

/**
 * Members ktls does not (or cannot) provide, and why. A ✗ row needs a reason
 * here; a reason for a member that a passing test proves is stale and fails
 * the generation.
 */
export const REASONS = {
  'TLSSocket#renegotiate':
    'Throws `ERR_KTLS_NO_RENEGOTIATION`: after the switch the kernel carries records only, and TLS 1.3 has no renegotiation (`updateKeys()` gives fresh keys). A TLS 1.2 HelloRequest from the peer gets a `no_renegotiation` warning.',
  'TLSSocket#setSession': 'Throws `ERR_KTLS_AFTER_HANDSHAKE`: a session is offered in the ClientHello; pass `session` to `ktls.connect()`.',
  'TLSSocket#setServername': 'Throws `ERR_KTLS_AFTER_HANDSHAKE`: SNI goes in the ClientHello; pass `servername` to `ktls.connect()`.',
  'TLSSocket#setKeyCert': 'Throws `ERR_KTLS_AFTER_HANDSHAKE`: certificates are exchanged in the handshake, which ended before the KtlsSocket exists.',
  'TLSSocket#enableTrace': 'Throws `ERR_KTLS_UNSUPPORTED`: OpenSSL traces the records it handles, and after the switch the kernel handles them.',
  'TLSSocket#connect':
    'A KtlsSocket is connected by `ktls.connect()`, which returns it (it takes `tls.connect()`’s arguments); there is no second connect on the same socket.',
  'TLSSocket@lookup': 'Not emitted: `ktls.connect()` takes `lookup` and tries every answer, but does not report the answers on the socket.',
  'TLSSocket@keylog':
    'Key log lines are written during the handshake, before the KtlsSocket exists; a server has `KtlsServer` `keylog` events. OpenSSL logs no lines for later KeyUpdates either.',
  'TLSSocket@OCSPResponse': 'Emitted during the handshake, before the KtlsSocket exists (a server answers `OCSPRequest` through `KtlsServer`).',
};

/** Every row of the table: `{ member, group, kind }`. */
export function members() {
  const rows = [];
  const add = (group, prefix, kind, names) => {
    for (const n of names) {
      const member = `${prefix}${kind === 'event' ? '@' : '#'}${n}`;
      if (!SKIP.has(member) && !rows.some((r) => r.member === member)) rows.push({ member, group, kind, name: n });
    }
  };
  rows.push({ member: 'tls.connect', group: 'Module', kind: 'function', name: 'tls.connect()' });
  rows.push({ member: 'tls.createServer', group: 'Module', kind: 'function', name: 'tls.createServer()' });
  rows.push({ member: 'https.createServer', group: 'Module', kind: 'function', name: 'https.createServer()' });
  add('TLSSocket (node:tls)', 'TLSSocket', 'method', ownPublic(tls.TLSSocket.prototype));
  add('TLSSocket (node:tls)', 'TLSSocket', 'property', TLS_SOCKET_PROPS);
  add('TLSSocket (node:tls)', 'TLSSocket', 'event', TLS_SOCKET_EVENTS);
  add('TLSSocket (inherited from net.Socket)', 'TLSSocket', 'method', ownPublic(net.Socket.prototype));
  add('TLSSocket (inherited from net.Socket)', 'TLSSocket', 'property', NET_SOCKET_PROPS);
  add('TLSSocket (inherited from net.Socket)', 'TLSSocket', 'event', NET_SOCKET_EVENTS);
  add('tls.Server (node:tls)', 'Server', 'method', ownPublic(tls.Server.prototype));
  add('tls.Server (node:tls)', 'Server', 'event', TLS_SERVER_EVENTS);
  add('tls.Server (inherited from net.Server)', 'Server', 'method', ownPublic(net.Server.prototype));
  add('tls.Server (inherited from net.Server)', 'Server', 'property', SERVER_PROPS);
  add('tls.Server (inherited from net.Server)', 'Server', 'event', NET_SERVER_EVENTS);
  // Accessors are properties, not methods.
  const accessor = (proto, n) => Boolean(Object.getOwnPropertyDescriptor(proto, n)?.get);
  for (const r of rows)
    if (r.kind === 'method' && (accessor(tls.TLSSocket.prototype, r.name) || accessor(net.Socket.prototype, r.name) || accessor(net.Server.prototype, r.name)))
      r.kind = 'property';
  return rows;
}

/** The parity records of a log file (one JSON object per line). */
export function readLog(file) {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

const PATH_NAMES = { kernel: 'kernel', userspace: 'userspace records', 'node:tls': 'node:tls-carried', 'n/a': 'server level' };

/**
 * Where a record's test ran: `host` (no kTLS label), or the major.minor of the
 * kTLS kernel it ran under (`6.1`). Each gets a column, oldest kernel first.
 */
export function envOf(release) {
  if (!release) return 'host';
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? `${m[1]}.${m[2]}` : 'host';
}

/** The generation of a kernel column: `pre` (before 6.14, no TLS 1.3 rekey) or `rekey`. */
export function generationOf(env) {
  const [a, b] = env.split('.').map(Number);
  return a > 6 || (a === 6 && b >= 14) ? 'rekey' : 'pre';
}

const byVersion = (a, b) =>
  (a === 'host') - (b === 'host') ||
  a
    .split('.')
    .map(Number)
    .reduce((d, x, i) => d || x - Number(b.split('.')[i] ?? 0), 0);
const titleOf = (env) => (env === 'host' ? 'no kTLS' : `kTLS ${env}`);

/**
 * Members a test proves under some kernels and not under others, and why, by
 * kernel generation (`pre`: before 6.14; `rekey`). A member proven under one
 * kernel of a run and not under another needs a note for the other's
 * generation, or the generation fails; a note where the member is proven is stale.
 */
export const GENERATION_NOTES = {
  'TLSSocket#setMaxSendFragment': {
    pre: 'Returns `false` under kernel TX: these kernels have no `TLS_TX_MAX_PAYLOAD_LEN`, so kernel TX sends records of up to 16384 bytes (userspace records honour it).',
  },
};

/** The table as `{ rows, problems, envs, releases }`: rows `{ member, group, kind, name, ok, files, paths, reason, byEnv, notes }`. */
export function evaluate(records) {
  const problems = [];
  const known = new Set();
  const envs = [...new Set(records.map((p) => envOf(p.kernel)))].sort(byVersion);
  const kernels = envs.filter((e) => e !== 'host');
  const releases = {};
  for (const p of records) (releases[envOf(p.kernel)] ??= new Set()).add(p.kernel ?? 'host');
  const rows = members().map((r) => {
    known.add(r.member);
    const proofs = records.filter((p) => p.member === r.member && !p.differs);
    // The differential suite saw this member behave otherwise than on node:tls (an accepted difference): not ✓.
    const diffRecords = records.filter((p) => p.member === r.member && p.differs);
    const differs = [...new Map(diffRecords.map((p) => [p.differs.scenario, p.differs])).values()].sort((a, b) => a.scenario.localeCompare(b.scenario));
    const diffByEnv = {};
    for (const e of envs) {
      const d = [...new Set(diffRecords.filter((p) => envOf(p.kernel) === e).map((p) => p.differs.scenario))].sort();
      if (d.length) diffByEnv[e] = d;
    }
    const files = [...new Set(proofs.map((p) => p.file))].sort();
    const paths = [...new Set(proofs.map((p) => p.path))].sort();
    const byEnv = {};
    for (const e of envs) {
      const f = [...new Set(proofs.filter((p) => envOf(p.kernel) === e).map((p) => p.file))].sort();
      if (f.length) byEnv[e] = f;
    }
    const reason = REASONS[r.member];
    const notes = GENERATION_NOTES[r.member] ?? {};
    if (proofs.length && reason) problems.push(`${r.member}: a passing test proves it, but REASONS still says "${reason}"`);
    if (!proofs.length && !differs.length && !reason) problems.push(`${r.member}: no passing test records it and REASONS gives no reason`);
    if (kernels.some((k) => byEnv[k]))
      for (const k of kernels) {
        const note = notes[generationOf(k)];
        if (!byEnv[k] && !note)
          problems.push(`${r.member}: proven under other kernels but not under ${k}, and GENERATION_NOTES says nothing for ${generationOf(k)}`);
        if (byEnv[k] && note) problems.push(`${r.member}: proven under ${k}, but GENERATION_NOTES still says "${note}"`);
      }
    return { ...r, ok: proofs.length > 0 && differs.length === 0, files, paths, reason, byEnv, notes, differs, diffByEnv };
  });
  for (const m of new Set(records.map((p) => p.member)))
    if (!known.has(m)) problems.push(`${m}: recorded by a test but not a node:tls member this table knows`);
  return { rows, problems, envs, releases: Object.fromEntries(Object.entries(releases).map(([k, v]) => [k, [...v].sort()])) };
}

/** The machine-readable twin of the table: per member and environment, the files that proved it. */
export function evidence({ rows, releases }) {
  return {
    releases,
    members: Object.fromEntries(rows.map((r) => [r.member, r.byEnv])),
    differs: Object.fromEntries(rows.filter((r) => r.differs.length).map((r) => [r.member, r.diffByEnv])),
  };
}

/** The markdown of docs/node-tls-parity.md. */
export function render({ rows, releases }) {
  const ok = rows.filter((r) => r.ok).length;
  const differ = rows.filter((r) => r.differs.length).length;
  const envs = Object.keys(releases).sort(byVersion);
  const ran = envs.map((e) => (e === 'host' ? 'a host without kTLS' : `UML ${releases[e].join(', ')}`));
  const out = [
    '# node:tls parity',
    '',
    '<!-- Generated by scripts/parity.mjs from the parity records of test runs (`npm run docs:parity`: the host, and every UML kernel (5.10 to 7.2)); `npm test` fails when this table (with node-tls-parity.json) disagrees with its own run. Do not edit. -->',
    '',
    `ktls against every public member of node:tls's \`TLSSocket\` and \`tls.Server\` (with what they inherit from \`net.Socket\` and \`net.Server\`, read from Node ${process.versions.node.split('.')[0]}'s prototypes) and every documented event.`,
    'A ✓ means a test that passed in the runs behind this file recorded the member (`parity()` in test/helpers/parity-log.ts); the files are listed.',
    'A ✗ gives the reason ktls does not provide it. One column per place the tests ran: each kTLS kernel (before 6.14 without TLS 1.3 rekey, from 6.14 with it), and a host without kTLS (userspace records).',
    'There, ✓ is proven, – is not exercised there (a kernel-only test, say), and ✗ has a note on what differs on that kernel generation.',
    'A ≠ means the differential suite (test/differential/: the same scenario played on node:tls and on ktls, compared event by event) saw the member behave otherwise, as its allow-list accepts: the scenarios and the reason are given, and the member is not ✓ even where other tests prove it.',
    '"Records" is how the sockets of those tests carried TLS records: the kernel, the userspace record layer, or node:tls itself (suites kTLS cannot carry).',
    '',
    `Runs behind this table: ${ran.join('; ') || 'none'}.`,
    '',
    `**${ok} of ${rows.length} members ✓, ${differ} ≠, ${rows.length - ok - differ} ✗.**`,
    '',
    'The ktls counterparts: `TLSSocket` → `KtlsSocket`; `tls.Server` → `KtlsServer` (and `KtlsHttpsServer` for `https.createServer`); `tls.connect()` → `ktls.connect()`.',
    '`ktls.connect()` takes `tls.connect()`’s arguments and returns the socket at once, as `tls.connect()` does; `secureConnect` comes once the records have moved to the kernel. `ktls.connectAsync()` is its promise form.',
  ];
  let group;
  const notes = [];
  for (const r of rows) {
    if (r.group !== group) {
      group = r.group;
      out.push(
        '',
        `## ${group}`,
        '',
        `| member | kind | ktls | ${envs.map(titleOf).join(' | ')} | records | evidence / reason |`,
        `|---|---|---|${envs.map(() => '---|').join('')}---|---|`,
      );
    }
    const name = r.kind === 'event' ? `\`'${r.name}'\`` : r.kind === 'method' ? `\`${r.name}()\`` : `\`${r.name}\``;
    const files = r.files.map((f) => `[${path.basename(f)}](../${f})`).join(', ');
    const differsText = [...new Set(r.differs.map((d) => d.reason))]
      .map(
        (reason) =>
          `differs from node:tls in ${r.differs
            .filter((d) => d.reason === reason)
            .map((d) => `“${d.scenario}”`)
            .join(', ')}: ${reason}`,
      )
      .join(' ');
    const evidenceText = r.differs.length ? `${differsText}${files ? ` Otherwise proven by ${files}.` : ''}` : r.ok ? files : r.reason;
    const paths = r.files.length ? r.paths.map((p) => PATH_NAMES[p] ?? p).join(', ') : '';
    const cells = envs.map((e) => {
      if (r.diffByEnv[e]) return '≠';
      if (r.byEnv[e]) return '✓';
      const note = e === 'host' ? undefined : r.notes[generationOf(e)];
      if (note) {
        const text = `\`${r.member}\` (kTLS ${generationOf(e) === 'pre' ? 'before' : 'from'} 6.14): ${note}`;
        if (!notes.includes(text)) notes.push(text);
        return `✗ [${notes.indexOf(text) + 1}]`;
      }
      return r.ok || r.differs.length ? '–' : '';
    });
    out.push(`| ${name} | ${r.kind} | ${r.ok ? '✓' : r.differs.length ? '≠' : '✗'} | ${cells.join(' | ')} | ${paths} | ${evidenceText} |`);
  }
  if (notes.length) out.push('', '## Notes', '', ...notes.map((n, i) => `${i + 1}. ${n}`));
  return out.join('\n') + '\n';
}

/** Checks `committed` against the records in `log`; prints the count. 0 when they agree. */
export function parityCheck(log, committed) {
  return main(['--log', log, '--check', committed]);
}

/** Whether the compiled module `file` imports parity-log, itself or through its relative imports. */
function recordsParity(file, seen = new Set()) {
  if (seen.has(file) || !fs.existsSync(file)) return false;
  seen.add(file);
  const js = fs.readFileSync(file, 'utf8');
  if (js.includes('parity-log')) return true;
  for (const m of js.matchAll(/(?:from|import|require\()\s*['"](\.{1,2}\/[^'"]+\.js)['"]/g))
    if (recordsParity(path.resolve(path.dirname(file), m[1]), seen)) return true;
  return false;
}

/** The compiled test files that record parity: those importing parity-log, directly or through their own modules (a helper, the differential suite). */
function parityTests(which) {
  return testFiles(root, which).filter((f) => recordsParity(path.join(root, f)));
}

/** Runs the parity-recording tests on this host and under every kTLS kernel of the harness (natively where this kernel has kTLS), into `log`. */
async function runParityTests(log) {
  fs.mkdirSync(path.dirname(log), { recursive: true });
  fs.writeFileSync(log, '');
  const tapBin = path.join(root, 'node_modules', '.bin', 'tap');
  const tapArgs = ['--disable-coverage', '--reporter=tap', '--timeout=240', '--jobs=1'];
  const env = { NO_COLOR: '1', TAP_COLORS: '0', KTLS_PARITY_LOG: log };
  const host = parityTests('host');
  const kernel = parityTests('kernel');
  const guest = parityTests('guest');
  let bad = 0;
  const sink = tee();
  const { probe } = await import(pathToFileURL(path.join(root, 'dist', 'lib', 'native', 'probe.js')).href);
  const caps = await probe();
  const { runInUml, KERNEL_NAMES } = await import('./uml.mjs');
  // Without kTLS here, the host run is the "no kTLS" column; with it, this kernel is a column of its own.
  const here = caps.ulp
    ? spawnTee(tapBin, [...tapArgs, ...host, ...kernel], { ...process.env, ...env, KTLS_KERNEL_LABEL: `native ${caps.kernelRelease}` }, sink)
    : spawnTee(tapBin, [...tapArgs, ...host], { ...process.env, ...env }, sink);
  if ((await here) !== 0) bad++;
  for (const k of KERNEL_NAMES) {
    if (caps.ulp && envOf(caps.kernelRelease) === k) continue;
    const uml = await runInUml([tapBin, ...tapArgs, ...guest], { kernel: k, cwd: root, output: sink, env });
    console.log(`# parity tests under ${uml.kernelLabel}: exit ${uml.status}${uml.bootFailure ? ` (${uml.bootFailure})` : ''}`);
    if (uml.status !== 0) bad++;
  }
  const s = summarize(sink.text());
  console.log(`# parity tests: ${host.length} host files, ${kernel.length} kTLS files; last summary ${JSON.stringify(s)}`);
  return bad;
}

async function main(argv) {
  const arg = (name) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const log = arg('--log') ?? path.join(root, '.cache', 'parity', 'log.jsonl');
  if (argv.includes('--run') && (await runParityTests(log)) !== 0) {
    console.error('parity: a parity test failed; the table was not written');
    return 1;
  }
  const result = evaluate(readLog(log));
  if (result.problems.length) {
    for (const p of result.problems) console.error(`parity: ${p}`);
    return 1;
  }
  const md = render(result);
  const ok = result.rows.filter((r) => r.ok).length;
  const out = arg('--out');
  if (out) {
    fs.writeFileSync(out, md);
    fs.writeFileSync(out.replace(/\.md$/, '.json'), JSON.stringify(evidence(result), null, 2) + '\n');
  }
  const check = arg('--check');
  if (check) {
    // Only the environments this run covered can be compared: npm test runs the host and one kernel generation.
    const twin = check.replace(/\.md$/, '.json');
    const committed = fs.existsSync(twin) ? JSON.parse(fs.readFileSync(twin, 'utf8')) : { releases: {}, members: {} };
    const fresh = evidence(result);
    const differ = [];
    for (const env of result.envs) {
      if (!committed.releases[env]) {
        differ.push(`the committed table has no ${titleOf(env)} column (regenerate it with \`npm run docs:parity\`)`);
        continue;
      }
      for (const r of result.rows) {
        const a = JSON.stringify(committed.members[r.member]?.[env] ?? []);
        const b = JSON.stringify(fresh.members[r.member]?.[env] ?? []);
        if (a !== b) differ.push(`${r.member} (${titleOf(env)}): committed ${a}, this run ${b}`);
        const da = JSON.stringify(committed.differs?.[r.member]?.[env] ?? []);
        const db = JSON.stringify(fresh.differs[r.member]?.[env] ?? []);
        if (da !== db) differ.push(`${r.member} (${titleOf(env)}) differs from node:tls in: committed ${da}, this run ${db}`);
      }
    }
    if (differ.length) {
      const dir = path.dirname(log);
      fs.writeFileSync(path.join(dir, 'node-tls-parity.md'), md);
      fs.writeFileSync(path.join(dir, 'node-tls-parity.json'), JSON.stringify(fresh, null, 2) + '\n');
      for (const d of differ.slice(0, 20)) console.error(`parity: ${d}`);
      console.error(`parity: ${check} does not match this run's results (this run's table: ${dir}/node-tls-parity.md; \`npm run docs:parity\` regenerates it)`);
      return 1;
    }
  }
  const differ = result.rows.filter((r) => r.differs.length).length;
  console.log(
    `# parity: ${ok} of ${result.rows.length} node:tls members ✓, ${differ} ≠ (an accepted difference), ${result.rows.length - ok - differ} ✗ with a reason`,
  );
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main(process.argv.slice(2)).then((code) => process.exit(code));
