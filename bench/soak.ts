// `npm run soak [-- --quick]`: a server under load for as long as the run
// lasts. Under a kernel with kTLS (natively where ktls.probe() finds it, else
// under user-mode-linux):
//  - concurrency: N connections at once through ktls.createServer, each moving
//    random data both ways (an echo, checked with SHA-256), while a tenth of
//    the clients misbehave (reset mid-stream, stall in the handshake, send
//    garbage after it);
//  - sequential: N connections one after another, sampling RSS and open fds
//    (after a full GC) to report their slope;
//  - idle: memory per idle connection of a ktls server against a node:tls one,
//    each in its own process.
// The full run writes docs/reliability.md; --quick is what `npm test` runs
// (test/handover/soak.kernel.test.ts). Seeded: --seed N replays a run.
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { pathToFileURL } from 'node:url';
import * as ktls from '../lib/index.js';
import { prng } from './common.js';
import { idleOnce, type IdleCost } from './serving.js';
import { fuzzCounts, renderReliability } from './soak-report.js';
import { hostileMix, withinBounds, type HostileResult } from './soak-hostile.js';

export const ROOT = path.resolve(__dirname, '..', '..');
const FIXTURES = path.join(ROOT, 'test', 'fixtures');
const KEY = path.join(FIXTURES, 'server.key');
const CERT = path.join(FIXTURES, 'server.pem');
const CA = fs.readFileSync(path.join(FIXTURES, 'ca.pem'));

/** What a soak run does. */
export interface SoakOptions {
  /** Connections at once in the concurrency phase. */
  concurrent: number;
  /** Share of those clients that misbehave. */
  misbehaving: number;
  /** Largest payload a well-behaved client sends (and gets back). */
  bytesMax: number;
  /** Connections one after another in the sequential phase. */
  sequential: number;
  /** Sample RSS and fds every this many sequential connections. */
  sampleEvery: number;
  /** Idle connections per server in the memory phase. */
  idle: number;
  /** How long the idle servers sit before they are measured (V8 gives back heap pages after some seconds idle). */
  idleSettleMs: number;
  /** The server's handshakeTimeout (stalled clients are closed after it). */
  handshakeTimeout: number;
  /** Peers of each hostile kind at once (soak-hostile.ts). */
  hostile: number;
  seed: number;
}

/** The full run (docs/reliability.md). */
export const FULL: SoakOptions = {
  concurrent: 1000,
  misbehaving: 0.1,
  bytesMax: 64 << 10,
  sequential: 10_000,
  sampleEvery: 500,
  idle: 300,
  idleSettleMs: 15_000,
  handshakeTimeout: 5000,
  hostile: 100,
  seed: 0x50a4,
};
/** The quick run `npm test` makes. */
export const QUICK: SoakOptions = {
  concurrent: 100,
  misbehaving: 0.1,
  bytesMax: 16 << 10,
  sequential: 1000,
  sampleEvery: 100,
  idle: 50,
  idleSettleMs: 300,
  handshakeTimeout: 3000,
  hostile: 10,
  seed: 0x50a4,
};

type Misbehaviour = 'reset' | 'stall' | 'garbage';

/** What a soak run saw. */
export interface SoakReport {
  kernel: string;
  node: string;
  options: SoakOptions;
  concurrency: {
    connections: number;
    wellBehaved: number;
    misbehaving: Record<Misbehaviour, number>;
    /** Well-behaved connections whose echo came back byte-exact. */
    intact: number;
    /** Bytes checked by SHA-256, both ways. */
    bytesChecked: number;
    /** Well-behaved connections that lost, duplicated or corrupted a byte, or failed. */
    broken: string[];
    /** Misbehaving clients whose connection the server closed. */
    closedByServer: number;
    /** Server sockets whose records the kernel protected / all server sockets. */
    kernelSockets: number;
    serverSockets: number;
    tlsClientErrors: Record<string, number>;
    socketErrors: Record<string, number>;
    /** One message per error code seen, to tell what each was. */
    examples: Record<string, string>;
    fdsBefore: number;
    fdsAfter: number;
    ms: number;
  };
  sequential: {
    connections: number;
    samples: Array<{ after: number; rssKiB: number; heapKiB: number; arrayBuffersKiB: number; fds: number }>;
    /** Least-squares slopes per 1000 connections, from the second sample on. */
    rssSlopeKiB: number;
    heapSlopeKiB: number;
    fdSlope: number;
    ms: number;
  };
  idle: Record<'ktls' | 'node:tls', IdleCost>;
  hostile: HostileResult[];
}

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const fdCount = (): number => fs.readdirSync('/proc/self/fd').length;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const bump = (m: Record<string, number>, k: string | undefined): void => void (m[k ?? 'none'] = (m[k ?? 'none'] ?? 0) + 1);

/** Resolves with everything `s` delivers until it ends, closes or fails (never rejects). */
function drain(s: NodeJS.ReadableStream & { once(ev: string, cb: (...a: unknown[]) => void): unknown }, want = Infinity): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const done = (): void => resolve(Buffer.concat(chunks));
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      if ((got += c.length) >= want) done();
    });
    s.once('end', done);
    s.once('close', done);
    s.once('error', done);
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((resolve) => (timer = setTimeout(() => resolve(fallback), ms)))]).finally(() => clearTimeout(timer));
}

async function echoServer(o: SoakOptions, stats?: SoakReport['concurrency']): Promise<{ server: ktls.KtlsServer; port: number }> {
  const server = ktls.createServer(
    { key: fs.readFileSync(KEY), cert: fs.readFileSync(CERT), handshakeTimeout: o.handshakeTimeout, ktls: { fallback: 'error' } },
    (s) => {
      if (stats) {
        stats.serverSockets++;
        if (s.kernel) stats.kernelSockets++;
      }
      s.on('error', (e: Error & { code?: string }) => {
        if (!stats) return;
        bump(stats.socketErrors, e.code);
        stats.examples[e.code ?? 'none'] ??= e.message;
      });
      s.pipe(s);
    },
  );
  server.on('tlsClientError', (e: Error & { code?: string }) => {
    if (!stats) return;
    bump(stats.tlsClientErrors, e.code);
    stats.examples[e.code ?? 'none'] ??= e.message;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as net.AddressInfo).port };
}

const clientOptions = (port: number): tls.ConnectionOptions => ({ port, host: '127.0.0.1', servername: 'localhost', ca: CA });

/** One well-behaved client: random data in random chunks, the echo back, SHA-256 both ways. */
async function goodClient(port: number, rand: () => number, o: SoakOptions, viaKtls: boolean): Promise<{ ok: boolean; bytes: number; detail: string }> {
  const payload = randomBytes(1 + Math.floor(rand() * o.bytesMax));
  const sock: tls.TLSSocket | ktls.KtlsSocket = viaKtls
    ? await ktls.connectAsync({ ...clientOptions(port), ktls: { fallback: 'error' } })
    : tls.connect(clientOptions(port));
  if (!viaKtls) await new Promise<void>((resolve, reject) => (sock as tls.TLSSocket).once('secureConnect', resolve).once('error', reject));
  const back = drain(sock, payload.length);
  for (let off = 0; off < payload.length;) {
    const n = Math.min(payload.length - off, 1 + Math.floor(rand() * 16384));
    sock.write(payload.subarray(off, off + n));
    off += n;
    if (rand() < 0.2) await tick();
  }
  const got = await withTimeout(back, 60_000, Buffer.alloc(0));
  // A clean close both ways (close_notify, FIN), as a real client does; bounded.
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
  sock.on('error', () => undefined);
  sock.end();
  await withTimeout(closed, 10_000, undefined);
  sock.destroy();
  const ok = got.length === payload.length && sha(got) === sha(payload);
  return {
    ok,
    bytes: 2 * payload.length,
    detail: ok
      ? ''
      : `${viaKtls ? 'ktls' : 'node:tls'} client: sent ${payload.length}, echoed ${got.length}${got.length === payload.length ? ' (differs)' : ''}`,
  };
}

/** One misbehaving client; resolves with whether the server closed the connection. */
async function badClient(port: number, rand: () => number, kind: Misbehaviour, o: SoakOptions): Promise<boolean> {
  const raw = net.connect({ port, host: '127.0.0.1' });
  raw.on('error', () => undefined);
  const closed = new Promise<boolean>((resolve) => (raw.once('end', () => resolve(true)), raw.once('close', () => resolve(true))));
  await new Promise((resolve) => raw.once('connect', resolve));
  if (kind === 'stall') return withTimeout(closed, o.handshakeTimeout + 10_000, false); // says nothing: handshakeTimeout must end it
  const t = tls.connect({ ...clientOptions(port), socket: raw });
  t.on('error', () => undefined);
  const secure = await withTimeout(
    new Promise<boolean>((resolve) => (t.once('secureConnect', () => resolve(true)), t.once('close', () => resolve(false)))),
    60_000,
    false,
  );
  if (!secure) return withTimeout(closed, 1000, false); // the server gave up on the handshake (handshakeTimeout under load)
  // It reads what it is sent: node:tls notices the server's alert and close only while reading.
  t.resume();
  t.write(randomBytes(1 + Math.floor(rand() * 4096)));
  await sleep(Math.floor(rand() * 20));
  if (kind === 'reset') {
    raw.resetAndDestroy();
    return true; // the server must cope; our side is gone
  }
  raw.write(randomBytes(64 + Math.floor(rand() * 256))); // not a record: the server must answer with an alert and close
  return withTimeout(closed, 30_000, false);
}

async function concurrency(o: SoakOptions): Promise<SoakReport['concurrency']> {
  const rand = prng(o.seed);
  const stats: SoakReport['concurrency'] = {
    connections: o.concurrent,
    wellBehaved: 0,
    misbehaving: { reset: 0, stall: 0, garbage: 0 },
    intact: 0,
    bytesChecked: 0,
    broken: [],
    closedByServer: 0,
    kernelSockets: 0,
    serverSockets: 0,
    tlsClientErrors: {},
    socketErrors: {},
    examples: {},
    fdsBefore: fdCount(),
    fdsAfter: 0,
    ms: 0,
  };
  const started = Date.now();
  const { server, port } = await echoServer(o, stats);
  const runs = Array.from({ length: o.concurrent }, async (_, i) => {
    if (rand() < o.misbehaving) {
      const kind = (['reset', 'stall', 'garbage'] as const)[Math.floor(rand() * 3)];
      stats.misbehaving[kind]++;
      if (await badClient(port, prng(o.seed + i + 1), kind, o)) stats.closedByServer++;
      return;
    }
    stats.wellBehaved++;
    const r = await goodClient(port, prng(o.seed + i + 1), o, i % 2 === 0).catch((e: Error & { code?: string }) => ({
      ok: false,
      bytes: 0,
      detail: `client failed: ${e.code ?? e.message}`,
    }));
    if (r.ok) {
      stats.intact++;
      stats.bytesChecked += r.bytes;
    } else stats.broken.push(`#${i}: ${r.detail}`);
  });
  await Promise.all(runs);
  await withTimeout(new Promise<void>((resolve) => server.close(() => resolve())), 30_000, undefined);
  for (const until = Date.now() + 5000; fdCount() > stats.fdsBefore && Date.now() < until;) await sleep(50);
  stats.fdsAfter = fdCount();
  stats.ms = Date.now() - started;
  return stats;
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

async function sequential(o: SoakOptions): Promise<SoakReport['sequential']> {
  const rand = prng(o.seed ^ 0x5e9);
  const { server, port } = await echoServer(o);
  const samples: SoakReport['sequential']['samples'] = [];
  const sample = async (after: number): Promise<void> => {
    for (let i = 0; i < 3; i++) {
      gc();
      await sleep(5);
    }
    const u = process.memoryUsage();
    samples.push({ after, rssKiB: u.rss / 1024, heapKiB: u.heapUsed / 1024, arrayBuffersKiB: u.arrayBuffers / 1024, fds: fdCount() });
  };
  const started = Date.now();
  await sample(0);
  for (let i = 1; i <= o.sequential; i++) {
    const r = await goodClient(port, rand, { ...o, bytesMax: 1024 }, i % 2 === 0);
    if (!r.ok) throw new Error(`sequential connection ${i}: ${r.detail}`);
    if (i % o.sampleEvery === 0) await sample(i);
  }
  await new Promise<void>((resolve) => server.close(() => resolve()));
  // The first sample is before any connection warmed caches and JIT: slopes start from the second.
  const steady = samples.slice(1);
  const xs = steady.map((s) => s.after / 1000);
  return {
    connections: o.sequential,
    samples,
    rssSlopeKiB: slope(
      xs,
      steady.map((s) => s.rssKiB),
    ),
    heapSlopeKiB: slope(
      xs,
      steady.map((s) => s.heapKiB),
    ),
    fdSlope: slope(
      xs,
      steady.map((s) => s.fds),
    ),
    ms: Date.now() - started,
  };
}

/** One soak run under this process's kernel (which must have kTLS). */
export async function runSoak(o: SoakOptions, log: (line: string) => void = () => undefined): Promise<SoakReport> {
  const caps = await ktls.probe();
  if (!caps.ulp)
    throw new Error(`this kernel has no kTLS (${caps.ulpError ?? 'no tls ULP'}): run the soak through \`npm run soak\`, which boots user-mode-linux`);
  log(`concurrency: ${o.concurrent} connections, ${Math.round(o.misbehaving * 100)}% misbehaving`);
  const conc = await concurrency(o);
  log(
    `  ${conc.intact}/${conc.wellBehaved} intact, ${conc.broken.length} broken, ${conc.closedByServer} misbehaving closed by the server, fds ${conc.fdsBefore} → ${conc.fdsAfter} (${conc.ms} ms)`,
  );
  log(`sequential: ${o.sequential} connections`);
  const seq = await sequential(o);
  log(`  RSS slope ${seq.rssSlopeKiB.toFixed(1)} KiB/1000, heap ${seq.heapSlopeKiB.toFixed(1)} KiB/1000, fds ${seq.fdSlope.toFixed(2)}/1000 (${seq.ms} ms)`);
  log(`idle: ${o.idle} connections per server`);
  const idle = { ktls: await idleOnce('ktls', o.idle, o.idleSettleMs), 'node:tls': await idleOnce('node-tls', o.idle, o.idleSettleMs) };
  log(
    `  per idle connection: ktls ${(idle.ktls.rssKiB + idle.ktls.arrayBuffersKiB).toFixed(0)} KiB (RSS + ArrayBuffers), node:tls ${(idle['node:tls'].rssKiB + idle['node:tls'].arrayBuffersKiB).toFixed(0)} KiB`,
  );
  log(`hostile: ${o.hostile} peers of each kind at once`);
  const hostile = await hostileMix(o.hostile, o.handshakeTimeout, FIXTURES);
  for (const h of hostile) {
    const over = withinBounds(h);
    log(
      `  ${h.kind}: ${h.dealtWith}/${h.connections} dealt with, peak ${h.peakKiBPerConnection.toFixed(0)} KiB/conn, ${h.leftKiB.toFixed(0)} KiB, ${h.fdsLeft} fds and ${h.serverOpen} server connections left, loop delay max ${h.maxDelayMs.toFixed(0)} ms (${h.ms} ms)${over.length ? ` OVER BOUNDS: ${over.join(', ')}` : ''}`,
    );
  }
  return {
    kernel: process.env.KTLS_KERNEL_LABEL ?? `native ${os.release()}`,
    node: process.version,
    options: o,
    concurrency: conc,
    sequential: seq,
    idle,
    hostile,
  };
}

interface Args {
  quick: boolean;
  inner: boolean;
  out: string | null;
  seed: number | null;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, inner: false, out: null, seed: null };
  for (let i = 0; i < argv.length; i++) {
    const [k, inline] = argv[i].split('=', 2) as [string, string | undefined];
    const val = (): string => inline ?? argv[++i] ?? '';
    if (k === '--quick') a.quick = true;
    else if (k === '--inner') a.inner = true;
    else if (k === '--out') a.out = val();
    else if (k === '--seed') a.seed = Number(val());
    else throw new Error(`unknown argument ${k}; usage: soak.js [--quick] [--seed N]`);
  }
  return a;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const options = { ...(args.quick ? QUICK : FULL), ...(args.seed !== null ? { seed: args.seed } : {}) };
  const log = (line: string): void => void process.stderr.write(`# soak: ${line}\n`);
  const started = Date.now();
  let report: SoakReport;
  const caps = await ktls.probe();
  if (args.inner || caps.ulp) {
    report = await runSoak(options, log);
    if (args.inner) {
      fs.writeFileSync(args.out!, JSON.stringify(report));
      return;
    }
  } else {
    const out = path.join(os.tmpdir(), `ktls-soak-${process.pid}.json`);
    const uml = (await import(pathToFileURL(path.join(ROOT, 'scripts', 'uml.mjs')).href)) as {
      runInUml: (cmd: string[], o: object) => Promise<{ status: number; kernelLabel: string }>;
    };
    log(`this kernel has no kTLS (${caps.ulpError ?? 'no tls ULP'}): running under user-mode-linux`);
    const r = await uml.runInUml(
      [process.execPath, __filename, '--inner', '--out', out, ...(args.quick ? ['--quick'] : []), ...(args.seed !== null ? ['--seed', String(args.seed)] : [])],
      { cwd: ROOT, mem: '2560M', timeout: 3600, output: process.stderr },
    );
    if (r.status !== 0) throw new Error(`the soak under user-mode-linux exited with ${r.status}`);
    report = JSON.parse(fs.readFileSync(out, 'utf8')) as SoakReport;
    fs.rmSync(out, { force: true });
  }
  const c = report.concurrency;
  const failed =
    c.broken.length > 0 ||
    c.fdsAfter > c.fdsBefore ||
    c.closedByServer < c.misbehaving.stall + c.misbehaving.garbage + c.misbehaving.reset ||
    report.hostile.some((h) => withinBounds(h).length > 0);
  if (!args.quick) {
    const fuzz = fuzzCounts();
    fs.writeFileSync(path.join(ROOT, 'docs', 'reliability.md'), renderReliability(report, fuzz, Date.now() - started));
    log('wrote docs/reliability.md');
  }
  process.stdout.write(
    `${JSON.stringify({ kernel: report.kernel, concurrency: { ...c, broken: c.broken.length }, sequential: { rssSlopeKiB: report.sequential.rssSlopeKiB, fdSlope: report.sequential.fdSlope }, idle: report.idle }, null, 2)}\n`,
  );
  process.exitCode = failed ? 1 : 0;
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`soak: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
