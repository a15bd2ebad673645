#!/usr/bin/env node
// docs/node-tls-parity.md, generated from test results. Every public member of
// node:tls's TLSSocket and tls.Server (with what they inherit from net.Socket
// and net.Server, read from this Node's prototypes) and every documented event
// gets a row: ✓ only where a passing test recorded it (test/helpers/parity-log.ts
// writes those records to $KTLS_PARITY_LOG during `npm test`), ✗ with the reason
// below otherwise. A member with neither fails the generation.
//
//   node scripts/parity.mjs --run --out docs/node-tls-parity.md   (npm run docs:parity)
//       runs only the tests that record parity (on this kernel, and under a kTLS
//       kernel: natively or user-mode-linux, as npm test does), then writes the table
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
    'A KtlsSocket is created connected, after the handshake and the switch; `ktls.connect()` makes the connection (it takes `tls.connect()`’s arguments).',
  'TLSSocket@connect':
    'Emitted while connecting, before the KtlsSocket exists; `ktls.connect()` resolves, and emits `secureConnect`, once it is connected, the handshake is done and the keys are in the kernel.',
  'TLSSocket@lookup': 'Emitted while connecting, before the KtlsSocket exists (`ktls.connect()` takes `lookup` and tries every answer).',
  'TLSSocket@ready': 'Emitted while connecting, before the KtlsSocket exists.',
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

/** The table as `{ rows, problems }`: rows `{ member, group, kind, name, ok, files, paths, reason }`. */
export function evaluate(records) {
  const problems = [];
  const known = new Set();
  const rows = members().map((r) => {
    known.add(r.member);
    const proofs = records.filter((p) => p.member === r.member);
    const files = [...new Set(proofs.map((p) => p.file))].sort();
    const paths = [...new Set(proofs.map((p) => p.path))].sort();
    const reason = REASONS[r.member];
    if (proofs.length && reason) problems.push(`${r.member}: a passing test proves it, but REASONS still says "${reason}"`);
    if (!proofs.length && !reason) problems.push(`${r.member}: no passing test records it and REASONS gives no reason`);
    return { ...r, ok: proofs.length > 0, files, paths, reason };
  });
  for (const m of new Set(records.map((p) => p.member)))
    if (!known.has(m)) problems.push(`${m}: recorded by a test but not a node:tls member this table knows`);
  return { rows, problems };
}

/** The markdown of docs/node-tls-parity.md. */
export function render({ rows }) {
  const ok = rows.filter((r) => r.ok).length;
  const out = [
    '# node:tls parity',
    '',
    '<!-- Generated by scripts/parity.mjs from the parity records of a test run (`npm run docs:parity`); `npm test` fails when this table disagrees with its own run. Do not edit. -->',
    '',
    `ktls against every public member of node:tls's \`TLSSocket\` and \`tls.Server\` (with what they inherit from \`net.Socket\` and \`net.Server\`, read from Node ${process.versions.node.split('.')[0]}'s prototypes) and every documented event.`,
    'A ✓ means a test that passed in the run behind this file recorded the member (`parity()` in test/helpers/parity-log.ts); the files are listed.',
    'A ✗ gives the reason ktls does not provide it. "Records" is how the sockets of those tests carried TLS records:',
    'the kernel (kTLS, under UML or a native kernel), the userspace record layer (a kernel without kTLS), or node:tls itself (suites kTLS cannot carry).',
    '',
    `**${ok} of ${rows.length} members ✓, ${rows.length - ok} ✗.**`,
    '',
    'The ktls counterparts: `TLSSocket` → `KtlsSocket`; `tls.Server` → `KtlsServer` (and `KtlsHttpsServer` for `https.createServer`); `tls.connect()` → `ktls.connect()`.',
    '`ktls.connect()` takes `tls.connect()`’s arguments but returns a `KtlsConnectRequest` (awaitable, emits `secureConnect` with the socket and `error`), not the socket: a KtlsSocket exists only once its keys are in the kernel.',
  ];
  let group;
  for (const r of rows) {
    if (r.group !== group) {
      group = r.group;
      out.push('', `## ${group}`, '', '| member | kind | ktls | records | evidence / reason |', '|---|---|---|---|---|');
    }
    const name = r.kind === 'event' ? `\`'${r.name}'\`` : r.kind === 'method' ? `\`${r.name}()\`` : `\`${r.name}\``;
    const evidence = r.ok ? r.files.map((f) => `[${path.basename(f)}](../${f})`).join(', ') : r.reason;
    const paths = r.ok ? r.paths.map((p) => PATH_NAMES[p] ?? p).join(', ') : '';
    out.push(`| ${name} | ${r.kind} | ${r.ok ? '✓' : '✗'} | ${paths} | ${evidence} |`);
  }
  return out.join('\n') + '\n';
}

/** The ✓/✗ status and evidence of each member in a rendered table (the record paths may differ by host). */
function statusOf(markdown) {
  return markdown
    .split('\n')
    .filter((l) => /^\| `/.test(l))
    .map((l) => {
      const c = l.split(' | ');
      return `${c[0]} ${c[2]} ${c[4]}`;
    })
    .join('\n');
}

/** Checks `committed` against the records in `log`; prints the count. 0 when they agree. */
export function parityCheck(log, committed) {
  return main(['--log', log, '--check', committed]);
}

/** The compiled test files that record parity: those importing parity-log, or a helper that does. */
function parityTests(which) {
  const helpers = fs
    .readdirSync(path.join(root, 'dist', 'test', 'helpers'))
    .filter((f) => f.endsWith('.js') && fs.readFileSync(path.join(root, 'dist', 'test', 'helpers', f), 'utf8').includes('parity-log'))
    .map((f) => `helpers/${f}`);
  return testFiles(root, which).filter((f) => {
    const js = fs.readFileSync(path.join(root, f), 'utf8');
    return js.includes('parity-log') || helpers.some((h) => js.includes(h));
  });
}

/** Runs the parity-recording tests on this kernel and under a kTLS kernel, into `log`. */
async function runParityTests(log) {
  fs.mkdirSync(path.dirname(log), { recursive: true });
  fs.writeFileSync(log, '');
  const tapBin = path.join(root, 'node_modules', '.bin', 'tap');
  const tapArgs = ['--disable-coverage', '--reporter=tap', '--timeout=240', '--jobs=1'];
  const env = { NO_COLOR: '1', TAP_COLORS: '0', KTLS_PARITY_LOG: log };
  const host = parityTests('host');
  const kernel = parityTests('kernel');
  let bad = 0;
  const sink = tee();
  const hostStatus = await spawnTee(tapBin, [...tapArgs, ...host], { ...process.env, ...env }, sink);
  if (hostStatus !== 0) bad++;
  const { probe } = await import(pathToFileURL(path.join(root, 'dist', 'lib', 'native', 'probe.js')).href);
  const caps = await probe();
  if (caps.ulp) {
    if ((await spawnTee(tapBin, [...tapArgs, ...kernel], { ...process.env, ...env }, sink)) !== 0) bad++;
  } else {
    const { runInUml } = await import('./uml.mjs');
    const uml = await runInUml([tapBin, ...tapArgs, ...host, ...kernel], { cwd: root, output: sink, env });
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
  if (out) fs.writeFileSync(out, md);
  const check = arg('--check');
  if (check) {
    const committed = fs.existsSync(check) ? fs.readFileSync(check, 'utf8') : '';
    if (statusOf(committed) !== statusOf(md)) {
      const fresh = path.join(path.dirname(log), 'node-tls-parity.md');
      fs.writeFileSync(fresh, md);
      console.error(`parity: ${check} does not match this run's results (fresh table: ${fresh}; \`npm run docs:parity\` copies it)`);
      return 1;
    }
  }
  console.log(`# parity: ${ok} of ${result.rows.length} node:tls members ✓, ${result.rows.length - ok} ✗ with a reason`);
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main(process.argv.slice(2)).then((code) => process.exit(code));
