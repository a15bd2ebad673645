// Serving scenarios: static files over HTTP(S) with a realistic size mix
// (ktls createHttpsServer + serveFile against node:https with a read stream or
// readFile; on plain TCP, serveFile's sendfile(2) against the same node:http
// ways), and memory per idle connection (ktls against node:tls, each server in
// its own process).
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { CACHE, fmtBytes, progress, ROOT, stat } from './common.js';
import type { StaticKind } from './ops/static.js';
import { alternate, type Contender, type Ctx, type Row, type ScenarioResult, type Samples } from './sampling.js';
import { ratio, target } from './scenarios.js';
import { syscallNote } from './syscalls.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** The file mix: [size, requests per cycle]. Half the requests are 8 KiB or less; the tail reaches 8 MiB. */
const MIX: Array<[number, number]> = [
  [512, 4],
  [2 * KiB, 4],
  [4 * KiB, 4],
  [8 * KiB, 4],
  [24 * KiB, 4],
  [64 * KiB, 4],
  [256 * KiB, 3],
  [MiB, 2],
  [8 * MiB, 1],
];

/** The files of the mix on disk, and the request order (interleaved sizes, the same for every contender). */
function mixFiles(): { dir: string; paths: string[]; meanBytes: number } {
  const dir = path.join(CACHE, 'static');
  fs.mkdirSync(dir, { recursive: true });
  const names: string[] = [];
  for (const [size, n] of MIX) {
    const name = `mix-${size}.bin`;
    const file = path.join(dir, name);
    if (!fs.existsSync(file) || fs.statSync(file).size !== size) fs.writeFileSync(file, Buffer.alloc(size, 0x61));
    for (let i = 0; i < n; i++) names.push(name);
  }
  // A fixed shuffle, so that large and small requests interleave on every connection.
  const paths = names
    .map((n, i) => [(i * 7919) % names.length, n] as const)
    .sort((x, y) => x[0] - y[0])
    .map(([, n]) => n);
  const meanBytes = MIX.reduce((s, [size, n]) => s + size * n, 0) / names.length;
  return { dir, paths, meanBytes };
}

export const STATIC_METRICS = ['req/s', 'MB/s', 'p50 ms', 'p99 ms', 'server CPU µs/req'];

/** Static files over HTTPS (kTLS; UML here) or plain HTTP (the addon's plain-TCP path). */
export async function staticScenario(ctx: Ctx, plain: boolean, adopt = false): Promise<ScenarioResult> {
  const t0 = Date.now();
  const mix = mixFiles();
  const conns = ctx.where === 'uml' ? 8 : 16;
  const ms = ctx.where === 'uml' ? (ctx.quick ? 1000 : 3000) : ctx.quick ? 1000 : 3000;
  const id = adopt ? 'static-adopt' : plain ? 'static-plain' : 'static';
  const contenders: Contender<StaticKind>[] = adopt
    ? [
        { id: 'serve', label: 'net.Server + ktls.adopt() + http + serveFile (KtlsSocket#sendFile)', spec: 'adopt-serve' },
        { id: 'stream', label: 'http + createReadStream().pipe(res)', spec: 'http-stream' },
      ]
    : plain
      ? [
          { id: 'serve', label: 'http + ktls.serveFile (sendfile(2))', spec: 'http-serve' },
          { id: 'stream', label: 'http + createReadStream().pipe(res)', spec: 'http-stream' },
          { id: 'readfile', label: 'http + res.end(await readFile())', spec: 'http-readfile' },
        ]
      : [
          { id: 'serve', label: 'ktls.createHttpsServer + serveFile', spec: 'ktls-serve' },
          { id: 'stream', label: 'node:https + createReadStream().pipe(res)', spec: 'https-stream' },
          { id: 'readfile', label: 'node:https + res.end(await readFile())', spec: 'https-readfile' },
        ];
  const groups = [{ name: 'mix' }];
  const once = async (kind: StaticKind, s: Samples | null, key: string, runMs: number): Promise<{ summary: string; requests: number }> => {
    const id = Date.now() + Math.random();
    const { port } = await ctx.b.call<{ port: number }>('staticServe', { id, kind, dir: mix.dir });
    try {
      await ctx.b.call('staticMark', { id });
      const r = await ctx.a.call<{ requests: number; bytes: number; seconds: number; p50: number; p99: number; errors: number }>('staticRun', {
        port,
        tls: !plain,
        conns,
        ms: runMs,
        paths: mix.paths,
      });
      const server = await ctx.b.call<{ cpu: { user: number; system: number }; errors: number }>('staticStop', { id });
      if (r.errors + server.errors > 0) throw new Error(`${r.errors} client and ${server.errors} server errors`);
      if (s) {
        s.add(key, 'req/s', r.requests / r.seconds);
        s.add(key, 'MB/s', r.bytes / r.seconds / 1e6);
        s.add(key, 'p50 ms', r.p50);
        s.add(key, 'p99 ms', r.p99);
        s.add(key, 'server CPU µs/req', ((server.cpu.user + server.cpu.system) / r.requests) * 1e6);
      }
      return { summary: `${(r.requests / r.seconds).toFixed(0)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms`, requests: r.requests };
    } catch (err) {
      await ctx.b.call('staticStop', { id }).catch(() => undefined);
      throw err;
    }
  };
  const rows = await alternate(ctx, id, groups, contenders, STATIC_METRICS, async (_g, c, s, key) => (await once(c.spec, s, key, ms)).summary);
  const notes = [await syscallNote(ctx, contenders, (c) => once(c.spec, null, '', 1000).then((r) => r.requests), 'request')];
  const targets = (adopt ? ['stream'] : ['stream', 'readfile']).map((other) =>
    target(
      ctx,
      `${contenders[0].label} vs ${contenders.find((c) => c.id === other)!.label} requests/s`,
      ratio(rows, 'mix', 'serve', other, (r) => r.metrics['req/s']?.median ?? null),
      '>=',
      1.0,
      'req/s ratio',
    ),
  );
  return {
    id,
    title: adopt
      ? 'Static files over plain HTTP through ktls.adopt() (KtlsSocket#sendFile) against a read stream'
      : plain
        ? 'Static files over plain HTTP (the addon’s sendfile path)'
        : 'Static files over HTTPS',
    where: ctx.where,
    kernelLabel: ctx.kernelLabel,
    metrics: STATIC_METRICS,
    rows,
    targets: plain ? targets.map((t) => ({ ...t, functionalOnly: false })) : targets,
    description: `${conns} keep-alive connections request a fixed mix of files for ${ms} ms per run: ${MIX.map(([size, n]) => `${fmtBytes(size)}×${n}`).join(', ')} per cycle of ${mix.paths.length} (half the requests 8 KiB or less, mean ${fmtBytes(Math.round(mix.meanBytes))}).${plain ? '' : ' TLS 1.3 AES-128-GCM.'} Server CPU is the server process's user + system time per request.`,
    notes,
    seconds: (Date.now() - t0) / 1000,
  };
}

// ---------------------------------------------------------------------------
// Memory per idle connection

/** How long the servers sit idle before they are measured. */
const IDLE_SETTLE_MS = 15_000;

export const IDLE_METRICS = ['KiB/conn (RSS + external)', 'RSS KiB/conn', 'external KiB/conn', 'heap KiB/conn', 'kernel sockets'];

/** Per idle connection, in KiB (`kernel`: server sockets whose records the kernel protects). */
export interface IdleCost {
  connections: number;
  kernel: number;
  rssKiB: number;
  externalKiB: number;
  arrayBuffersKiB: number;
  heapKiB: number;
}

/**
 * Memory per idle connection of one kind of server (bench/soak-server.ts in its
 * own process): `n` connections, each having exchanged one message, measured
 * after `settleMs` idle and a full collection, less what it had with one.
 */
export async function idleOnce(kind: 'ktls' | 'node-tls', n: number, settleMs = IDLE_SETTLE_MS): Promise<IdleCost> {
  const dir = path.join(ROOT, 'test', 'fixtures');
  const child = fork(path.join(__dirname, 'soak-server.js'), [kind, path.join(dir, 'server.key'), path.join(dir, 'server.pem')], {
    execArgv: ['--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  type Measure = { rss: number; external: number; arrayBuffers: number; heapUsed: number; kernel: number };
  const next = <T>(): Promise<T> => new Promise((resolve) => child.once('message', (m) => resolve(m as T)));
  const clients: tls.TLSSocket[] = [];
  try {
    const { port } = await next<{ port: number }>();
    const measure = (): Promise<Measure> => {
      const m = next<Measure>();
      child.send({ op: 'measure' });
      return m;
    };
    const ca = fs.readFileSync(path.join(dir, 'ca.pem'));
    const one = (): Promise<tls.TLSSocket> =>
      new Promise((resolve, reject) => {
        const c = tls.connect({ port, host: '127.0.0.1', ca, servername: 'localhost' }, () => {
          c.write('x');
          c.once('data', () => resolve(c));
        });
        c.once('error', reject);
      });
    // One connection first, so what every connection shares (code, caches) is not counted.
    clients.push(await one());
    await new Promise((resolve) => setTimeout(resolve, 100));
    const before = await measure();
    for (let i = 0; i < n; i += 50) clients.push(...(await Promise.all(Array.from({ length: Math.min(50, n - i) }, one))));
    // Idle means idle: V8's memory reducer gives back, after some seconds without work, the
    // pages the handshakes' garbage grew the heap by (for both servers alike).
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    const after = await measure();
    const per = (a: number, b: number): number => (b - a) / n / 1024;
    return {
      connections: n,
      kernel: after.kernel,
      rssKiB: per(before.rss, after.rss),
      externalKiB: per(before.external, after.external),
      arrayBuffersKiB: per(before.arrayBuffers, after.arrayBuffers),
      heapKiB: per(before.heapUsed, after.heapUsed),
    };
  } finally {
    for (const c of clients) c.destroy();
    child.disconnect();
  }
}

/** Memory per idle connection, ktls against node:tls (same kernel, same client, servers in fresh processes). */
export async function idleScenario(ctx: Ctx): Promise<ScenarioResult> {
  const t0 = Date.now();
  const n = ctx.quick ? 300 : 5000;
  const rows: Row[] = [];
  for (const [id, label] of [
    ['ktls', 'ktls.createServer (records in the kernel)'],
    ['node-tls', 'node:tls'],
  ] as const) {
    progress(`idle: ${n} connections to a ${label} server`);
    let c: IdleCost;
    try {
      c = await idleOnce(id, n);
    } catch (err) {
      const reason = (err as Error).message.split('\n')[0];
      progress(`idle: ${label} FAILED: ${reason}`);
      rows.push({ group: `${n} idle`, contender: id, label, available: false, reason, metrics: {} });
      continue;
    }
    const m: Record<string, number> = {
      'KiB/conn (RSS + external)': c.rssKiB + c.externalKiB,
      'RSS KiB/conn': c.rssKiB,
      'external KiB/conn': c.externalKiB,
      'heap KiB/conn': c.heapKiB,
      'kernel sockets': c.kernel,
    };
    progress(`idle: ${label}: ${m['KiB/conn (RSS + external)'].toFixed(1)} KiB per connection (RSS + external)`);
    rows.push({ group: `${n} idle`, contender: id, label, available: true, metrics: Object.fromEntries(IDLE_METRICS.map((k) => [k, stat([m[k]])])) });
  }
  const value = ratio(rows, `${n} idle`, 'ktls', 'node-tls', (r) => r.metrics['KiB/conn (RSS + external)']?.median ?? null);
  return {
    id: 'idle',
    title: 'Memory per idle connection',
    where: ctx.where,
    kernelLabel: ctx.kernelLabel,
    metrics: IDLE_METRICS,
    rows,
    targets: [
      { ...target(ctx, 'ktls vs node:tls memory per idle connection (RSS + external)', value, '<=', 1.0, 'KiB per connection ratio'), functionalOnly: false },
    ],
    description: `${n} connections, each having exchanged one message, held open to an echo server in its own process; the server's RSS and external memory (ArrayBuffers included) after ${IDLE_SETTLE_MS / 1000} s idle and a full collection, less what it had with one connection, per connection. Memory is not a timing: the figure holds under user-mode-linux too.`,
    notes: [],
    seconds: (Date.now() - t0) / 1000,
  };
}
