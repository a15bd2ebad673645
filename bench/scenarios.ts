// The benchmark scenarios: for each, its contenders, groups, metrics and
// targets, and what one run of a contender does in the worker pair. Each runs
// its contenders alternately (rotating the order every round, sampling.ts) and
// keeps per-round samples; the report shows their median and spread.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CACHE, GiB, MiB, fmtBytes, progress, type Cpu } from './common.js';
import { FEATURES } from './features.js';
import { syscallNote } from './syscalls.js';
import type { RecvKind, RecvResult, SendKind, SendResult } from './ops/bulk.js';
import type { EchoKind } from './ops/echo.js';
import type { HsKind } from './ops/handshake.js';
import { alternate, newKeys, perGB, type Contender, type Ctx, type Row, Samples, type ScenarioResult, type TargetResult } from './sampling.js';

/** Ids of the receivers and echo servers a scenario starts in a worker. */
let nextId = 0;

// ---------------------------------------------------------------------------
// Bulk transfers (file send, and the addon's plain-TCP path)

interface TransferSpec {
  send: SendKind;
  recv: RecvKind;
  keys?: boolean;
}

export const TRANSFER_METRICS = ['MB/s', 'sender user s/GB', 'sender sys s/GB', 'receiver user s/GB', 'receiver sys s/GB'];

async function transferOnce(ctx: Ctx, spec: TransferSpec, file: string, size: number, count: number, s: Samples, key: string): Promise<string> {
  const total = size * count;
  const id = ++nextId;
  const keys = spec.keys ? newKeys() : undefined;
  const { port } = await ctx.b.call<{ port: number }>('recvStart', { id, kind: spec.recv, total, keys });
  if (port < 0) throw new Error('receiver ended before listening');
  const limit = 60_000;
  const sentP = ctx.a.call<SendResult>('send', { kind: spec.send, port, file, count, keys }, limit);
  const gotP = ctx.b.call<RecvResult>('recvResult', { id }, limit);
  // Whichever side fails first is the reason (a receiver that failed leaves the sender waiting for its limit).
  const [sent, got] = await Promise.all([sentP, gotP]);
  const seconds = Number(BigInt(got.t1) - BigInt(sent.t0)) / 1e9;
  const mbs = total / 1e6 / seconds;
  s.add(key, 'MB/s', mbs);
  s.add(key, 'sender user s/GB', perGB(sent.cpu.user, total));
  s.add(key, 'sender sys s/GB', perGB(sent.cpu.system, total));
  s.add(key, 'receiver user s/GB', perGB(got.cpu.user, total));
  s.add(key, 'receiver sys s/GB', perGB(got.cpu.system, total));
  s.note(key, sent.method);
  return `${mbs.toFixed(0)} MB/s (${fmtBytes(total)} in ${seconds.toFixed(2)} s)`;
}

/** File sizes and how many times each is sent per run, so every run moves a sensible amount. */
export function bulkPlan(quick: boolean, where: 'native' | 'uml'): Array<{ size: number; count: number }> {
  // Bytes per run for each file size. UML is slow (one CPU, every syscall a trap, ~2 ms per small
  // file): far smaller totals there and no 1 GiB file; quick mode keeps the middle sizes only.
  const plan: Array<[number, number]> =
    where === 'uml'
      ? quick
        ? [
            [64 * 1024, 4 * MiB],
            [MiB, 16 * MiB],
          ]
        : [
            [4096, MiB],
            [64 * 1024, 8 * MiB],
            [MiB, 32 * MiB],
            [64 * MiB, 64 * MiB],
          ]
      : quick
        ? [
            [4096, 16 * MiB],
            [64 * 1024, 64 * MiB],
            [MiB, 64 * MiB],
            [64 * MiB, 64 * MiB],
          ]
        : [
            [4096, 64 * MiB],
            [64 * 1024, 256 * MiB],
            [MiB, 512 * MiB],
            [64 * MiB, 512 * MiB],
            [GiB, GiB],
          ];
  return plan.map(([size, total]) => ({ size, count: Math.max(1, Math.round(total / size)) }));
}

export function prepareFiles(sizes: number[]): Map<number, string> {
  const dir = path.join(CACHE, 'files');
  fs.mkdirSync(dir, { recursive: true });
  const files = new Map<number, string>();
  for (const size of sizes) {
    const file = path.join(dir, `file-${size}`);
    if (!fs.existsSync(file) || fs.statSync(file).size !== size) {
      progress(`creating ${fmtBytes(size)} test file`);
      const fd = fs.openSync(file, 'w');
      const chunk = randomBytes(Math.min(size, 4 * MiB));
      for (let off = 0; off < size; off += chunk.length) fs.writeSync(fd, chunk, 0, Math.min(chunk.length, size - off));
      fs.closeSync(fd);
    }
    files.set(size, file);
  }
  return files;
}

function sendFileGate(): string | null {
  return FEATURES.sendFile();
}

export const BULK_CONTENDERS: Contender<TransferSpec>[] = [
  { id: 'ktls-sendfile', label: 'ktls sendFile()', spec: { send: 'ktls-sendfile', recv: 'ktls', keys: true }, unavailable: sendFileGate },
  { id: 'ktls-write', label: 'ktls write() of file chunks', spec: { send: 'ktls-write', recv: 'ktls', keys: true } },
  { id: 'tls-pipe', label: 'node:tls createReadStream().pipe()', spec: { send: 'tls-pipe', recv: 'tls' } },
  { id: 'tls-pipe-1m', label: 'node:tls pipe, 1 MiB highWaterMark', spec: { send: 'tls-pipe-1m', recv: 'tls' } },
  { id: 'ktls-user', label: 'ktls userspace fallback', spec: { send: 'ktls-user', recv: 'ktls-user', keys: true } },
  { id: 'c-ktls-sendfile', label: 'C kTLS sendfile() loop (ceiling)', spec: { send: 'c-ktls-sendfile', recv: 'ktls', keys: true } },
  { id: 'tcp-sendfile', label: 'plain TCP sendfile() (C, no crypto)', spec: { send: 'c-sendfile', recv: 'net' } },
  { id: 'net-pipe', label: 'net.Socket pipe (no crypto)', spec: { send: 'net-pipe', recv: 'net' } },
];

export const PLAIN_CONTENDERS: Contender<TransferSpec>[] = [
  { id: 'addon-write', label: 'addon KtlsSocket write() (plain TCP)', spec: { send: 'addon-write', recv: 'addon' } },
  { id: 'net-pipe', label: 'net.Socket pipe', spec: { send: 'net-pipe', recv: 'net' } },
  // Same C receiver as the C sendfile loop, so the ratio compares senders only.
  { id: 'addon-sendfile', label: 'addon KtlsSocket sendFile() (plain TCP)', spec: { send: 'addon-sendfile', recv: 'c' }, unavailable: sendFileGate },
  { id: 'c-sendfile', label: 'C sendfile() loop', spec: { send: 'c-sendfile', recv: 'c' } },
  { id: 'c-write', label: 'C pread()+write() loop', spec: { send: 'c-write', recv: 'c' } },
];

export function ratio(rows: Row[], group: string, a: string, b: string, metric: (r: Row) => number | null): number | null {
  const ra = rows.find((r) => r.group === group && r.contender === a);
  const rb = rows.find((r) => r.group === group && r.contender === b);
  if (!ra?.available || !rb?.available) return null;
  const va = metric(ra);
  const vb = metric(rb);
  return va !== null && vb !== null && vb !== 0 ? va / vb : null;
}
const mbs = (r: Row): number | null => r.metrics['MB/s']?.median ?? null;
const senderCpu = (r: Row): number | null => {
  const u = r.metrics['sender user s/GB']?.median;
  const s = r.metrics['sender sys s/GB']?.median;
  return u === undefined || s === undefined ? null : u + s;
};

export function target(ctx: Ctx, label: string, value: number | null, op: '>=' | '<=', threshold: number, detail: string): TargetResult {
  const met = value === null ? null : op === '>=' ? value >= threshold : value <= threshold;
  return { label, value, op, threshold, met, functionalOnly: ctx.where === 'uml', detail };
}

export async function bulkScenario(ctx: Ctx): Promise<ScenarioResult> {
  const t0 = Date.now();
  const plan = bulkPlan(ctx.quick, ctx.where);
  const groups = plan.map((p) => ({ name: fmtBytes(p.size), ...p }));
  for (const g of groups) await ctx.a.call('warm', { file: ctx.files.get(g.size)! });
  const rows = await alternate(ctx, 'bulk', groups, BULK_CONTENDERS, TRANSFER_METRICS, (g, c, s, key) =>
    transferOnce(ctx, c.spec, ctx.files.get(g.size)!, g.size, g.count, s, key),
  );
  const targets: TargetResult[] = [];
  for (const g of groups.filter((x) => x.size >= MiB)) {
    targets.push(
      target(
        ctx,
        `${g.name}: sendFile vs node:tls pipe throughput`,
        ratio(rows, g.name, 'ktls-sendfile', 'tls-pipe', mbs),
        '>=',
        2.5,
        'ktls sendFile MB/s ÷ node:tls createReadStream().pipe() MB/s',
      ),
    );
    targets.push(
      target(
        ctx,
        `${g.name}: sendFile vs C kTLS sendfile loop`,
        ratio(rows, g.name, 'ktls-sendfile', 'c-ktls-sendfile', mbs),
        '>=',
        0.9,
        'ktls sendFile MB/s ÷ C loop MB/s',
      ),
    );
    targets.push(
      target(
        ctx,
        `${g.name}: sendFile sender CPU/GB vs node:tls pipe`,
        ratio(rows, g.name, 'ktls-sendfile', 'tls-pipe', senderCpu),
        '<=',
        0.4,
        'sender (user+sys) CPU s/GB, ktls sendFile ÷ node:tls pipe',
      ),
    );
  }
  return {
    id: 'bulk',
    title: 'Bulk file send',
    where: ctx.where,
    kernelLabel: ctx.kernelLabel,
    metrics: TRANSFER_METRICS,
    rows,
    targets,
    description: `Page-cached files sent over loopback TLS 1.3 AES-128-GCM (keys installed directly with upgrade(); node:tls with its own handshake), each file sent ${plan.map((p) => `${fmtBytes(p.size)}×${p.count}`).join(', ')} times per run. Throughput is from the sender's first byte to the receiver's last (CLOCK_MONOTONIC across processes); CPU is per side, per GB of file data.`,
    notes: [],
    seconds: (Date.now() - t0) / 1000,
  };
}

export async function plainScenario(ctx: Ctx): Promise<ScenarioResult> {
  const t0 = Date.now();
  const plan = bulkPlan(ctx.quick, ctx.where);
  const groups = plan.map((p) => ({ name: fmtBytes(p.size), ...p }));
  for (const g of groups) await ctx.a.call('warm', { file: ctx.files.get(g.size)! });
  const rows = await alternate(ctx, 'plain-tcp', groups, PLAIN_CONTENDERS, TRANSFER_METRICS, (g, c, s, key) =>
    transferOnce(ctx, c.spec, ctx.files.get(g.size)!, g.size, g.count, s, key),
  );
  const targets: TargetResult[] = [];
  for (const g of groups) {
    targets.push(
      target(
        ctx,
        `${g.name}: addon write() path vs net.Socket`,
        ratio(rows, g.name, 'addon-write', 'net-pipe', mbs),
        '>=',
        1.0,
        'addon KtlsSocket pipe MB/s ÷ net.Socket pipe MB/s (same read stream, plain TCP)',
      ),
    );
    // Per-file costs dominate small files: the floor is the C loop's open + fstat + sendfile + close.
    const floor = g.size <= 4096 ? 0.5 : g.size < 1024 * 1024 ? 0.8 : 0.95;
    targets.push(
      target(
        ctx,
        `${g.name}: addon sendFile vs C sendfile`,
        ratio(rows, g.name, 'addon-sendfile', 'c-sendfile', mbs),
        '>=',
        floor,
        'addon sendFile MB/s ÷ C sendfile loop MB/s (plain TCP)',
      ),
    );
  }
  return {
    id: 'plain',
    title: "The addon's own I/O path on plain TCP",
    where: ctx.where,
    kernelLabel: ctx.kernelLabel,
    metrics: TRANSFER_METRICS,
    rows,
    targets: targets.map((t) => ({ ...t, functionalOnly: false })),
    notes: [await sendFileBreakdown(ctx, rows)],
    description: `No ULP, no keys: KtlsSocket's recvmsg/sendmsg/sendfile machinery against net.Socket and C loops, on any kernel. Same file plan as the bulk scenario (${plan.map((p) => `${fmtBytes(p.size)}×${p.count}`).join(', ')}); each side receives with its own kind of socket (addon, net.Socket, C recv loop). The C loops open, fstat and close the file for every send, as a file server (and sendFile(path)) must.`,
    seconds: (Date.now() - t0) / 1000,
  };
}

/** Where a 4 KiB sendFile()'s time goes, per call, against the C loop's time per file (from the rows). */
async function sendFileBreakdown(ctx: Ctx, rows: Row[]): Promise<string> {
  const size = 4096;
  const file = ctx.files.get(size);
  if (!file) return 'Per-call breakdown: no 4 KiB file in this plan.';
  if (FEATURES.sendFile()) return `Per-call breakdown: ${FEATURES.sendFile()}`;
  const n = ctx.quick ? 5000 : 50000;
  const c = await ctx.a.call<{ sendFile: number; syscalls: number; fileOnly: number }>('sendFileCost', { file, n });
  const cRow = rows.find((r) => r.group === fmtBytes(size) && r.contender === 'c-sendfile');
  const cMBs = cRow?.metrics['MB/s']?.median;
  const cUs = cMBs ? size / cMBs : null; // bytes ÷ (bytes/µs)
  const fmt = (v: number): string => `${v.toFixed(2)} µs`;
  return (
    `Per-call breakdown of a 4 KiB sendFile() (${n} calls in a row): **${fmt(c.sendFile)}** in all = ` +
    `${fmt(c.syscalls)} for its syscalls through the addon (open + fstat + sendfile + close, of which open + fstat + close ${fmt(c.fileOnly)}) + ` +
    `${fmt(Math.max(0, c.sendFile - c.syscalls))} for the op, its promise and the write queue` +
    (cUs !== null ? `; the C loop spends ${fmt(cUs)} per file (from its MB/s above).` : '.')
  );
}

// ---------------------------------------------------------------------------
// Small messages: request/response echo over many connections

export const ECHO_METRICS = ['req/s', 'p50 ms', 'p99 ms', 'client user s/GB', 'client sys s/GB', 'server user s/GB', 'server sys s/GB'];

async function echoOnce(ctx: Ctx, kind: EchoKind, size: number, conns: number, ms: number, s: Samples, key: string): Promise<string> {
  const id = ++nextId;
  const keys = newKeys();
  const { port } = await ctx.b.call<{ port: number }>('echoServe', { id, kind, keys });
  try {
    await ctx.a.call('echoConnect', { kind, port, conns, keys });
    await ctx.b.call('echoMark', { id });
    const r = await ctx.a.call<{ requests: number; seconds: number; p50: number; p99: number; cpu: Cpu }>('echoRun', { size, ms });
    const server = await ctx.b.call<{ cpu: Cpu }>('echoStop', { id });
    const bytes = r.requests * size;
    s.add(key, 'req/s', r.requests / r.seconds);
    s.add(key, 'p50 ms', r.p50);
    s.add(key, 'p99 ms', r.p99);
    s.add(key, 'client user s/GB', perGB(r.cpu.user, bytes));
    s.add(key, 'client sys s/GB', perGB(r.cpu.system, bytes));
    s.add(key, 'server user s/GB', perGB(server.cpu.user, bytes));
    s.add(key, 'server sys s/GB', perGB(server.cpu.system, bytes));
    return `${r.requests} requests, ${(r.requests / r.seconds).toFixed(0)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms`;
  } catch (err) {
    await ctx.b.call('echoStop', { id }).catch(() => undefined);
    throw err;
  }
}

export async function smallScenario(ctx: Ctx, plain: boolean): Promise<ScenarioResult> {
  const t0 = Date.now();
  const conns = ctx.where === 'uml' ? (ctx.quick ? 8 : 32) : ctx.quick ? 16 : 64;
  const ms = ctx.where === 'uml' ? (ctx.quick ? 500 : 1500) : ctx.quick ? 800 : 3000;
  const groups = [1024, 8192].map((size) => ({ name: fmtBytes(size), size }));
  const contenders: Contender<EchoKind>[] = plain
    ? [
        { id: 'addon', label: 'addon KtlsSocket (plain TCP)', spec: 'addon' },
        { id: 'net', label: 'net.Socket', spec: 'net' },
      ]
    : [
        { id: 'ktls', label: 'ktls (connect/createServer)', spec: 'ktls' },
        { id: 'tls', label: 'node:tls', spec: 'tls' },
      ];
  const rows = await alternate(ctx, plain ? 'small-plain' : 'small', groups, contenders, ECHO_METRICS, (g, c, s, key) =>
    echoOnce(ctx, c.spec, g.size, conns, ms, s, key),
  );
  const notes = [
    await syscallNote(
      ctx,
      contenders,
      async (c) => Number(/^(\d+) requests/.exec(await echoOnce(ctx, c.spec, 1024, conns, 1000, new Samples(), 'syscalls'))?.[1] ?? 0),
      'request',
    ),
  ];
  const ratioOf = (g: string, m: string): number | null => ratio(rows, g, contenders[0].id, contenders[1].id, (r) => r.metrics[m]?.median ?? null);
  const targets = groups.map((g) =>
    target(ctx, `${g.name}: ${contenders[0].label} vs ${contenders[1].label} requests/s`, ratioOf(g.name, 'req/s'), '>=', 1.0, 'req/s ratio'),
  );
  return {
    id: plain ? 'small-plain' : 'small',
    title: plain ? 'Small messages on plain TCP (addon vs net.Socket)' : 'Small messages (request/response echo)',
    where: ctx.where,
    kernelLabel: ctx.kernelLabel,
    metrics: ECHO_METRICS,
    rows,
    targets: plain ? targets.map((t) => ({ ...t, functionalOnly: false })) : targets,
    description: `${conns} connections each send a request of the group's size and wait for its echo, for ${ms} ms per run (connections and handshakes made before timing).${plain ? '' : ' TLS 1.3 AES-128-GCM; ktls via ktls.connect()/createServer().'} CPU is per GB of request payload.`,
    notes,
    seconds: (Date.now() - t0) / 1000,
  };
}

// ---------------------------------------------------------------------------
// splice: spliceTo and splice-echo vs read + write in JS

export async function spliceScenario(ctx: Ctx): Promise<ScenarioResult> {
  const t0 = Date.now();
  const size = MiB;
  const count = ctx.where === 'uml' ? (ctx.quick ? 8 : 32) : ctx.quick ? 64 : 256;
  const total = size * count;
  const groups = [{ name: 'receive' }, { name: 'echo' }];
  type Spec = { recv?: RecvKind; echo?: EchoKind };
  const contenders: Contender<Spec>[] = [
    { id: 'splice', label: 'splice (spliceTo / spliceEcho)', spec: {} },
    { id: 'js', label: 'JS read + write', spec: {} },
  ];
  const rows = await alternate(ctx, 'splice', groups, contenders, TRANSFER_METRICS, async (g, c, s, key) => {
    if (g.name === 'receive') {
      if (c.id === 'splice' && FEATURES.spliceTo()) throw new Error(FEATURES.spliceTo()!);
      return transferOnce(
        ctx,
        { send: 'ktls-write', recv: c.id === 'splice' ? 'ktls-spliceTo' : 'ktls-readwrite', keys: true },
        ctx.files.get(size)!,
        size,
        count,
        s,
        key,
      );
    }
    if (c.id === 'splice' && FEATURES.spliceEcho()) throw new Error(FEATURES.spliceEcho()!);
    const id = ++nextId;
    const keys = newKeys();
    const { port } = await ctx.b.call<{ port: number }>('echoServe', { id, kind: c.id === 'splice' ? 'splice-echo' : 'js-echo', keys });
    await ctx.b.call('echoMark', { id });
    const r = await ctx.a.call<{ seconds: number; cpu: Cpu }>('bulkEcho', { kind: 'js-echo', port, total, keys });
    const server = await ctx.b.call<{ cpu: Cpu }>('echoStop', { id });
    s.add(key, 'MB/s', total / 1e6 / r.seconds);
    s.add(key, 'sender user s/GB', perGB(r.cpu.user, total));
    s.add(key, 'sender sys s/GB', perGB(r.cpu.system, total));
    s.add(key, 'receiver user s/GB', perGB(server.cpu.user, total));
    s.add(key, 'receiver sys s/GB', perGB(server.cpu.system, total));
    return `${(total / 1e6 / r.seconds).toFixed(0)} MB/s echoed`;
  });
  for (const r of rows) {
    if (r.available) continue;
    const why = r.contender === 'splice' ? (r.group === 'receive' ? FEATURES.spliceTo() : FEATURES.spliceEcho()) : null;
    if (why) r.reason = why;
  }
  return {
    id: 'splice',
    title: 'splice and splice-echo',
    where: ctx.where,
    kernelLabel: ctx.kernelLabel,
    metrics: TRANSFER_METRICS,
    rows,
    targets: [],
    description: `receive: a kTLS sender writes ${fmtBytes(total)}; the receiver moves it to /dev/null with spliceTo() or with 'data' + fs.writeSync. echo: the client (a KtlsSocket) sends ${fmtBytes(total)} and reads it back; the server echoes with ktls.spliceEcho() or with 'data' → write(). "sender" is the client, "receiver" the server.`,
    notes: [],
    seconds: (Date.now() - t0) / 1000,
  };
}

// ---------------------------------------------------------------------------
// Handshake latency under emulated RTT

export const HS_METRICS = ['TTFB ms', 'segments'];
/** OpenSSL at 20 ms RTT (from issue #6), the anchor for TLS 1.3. */
export const HS_ANCHOR: Record<string, number> = { 'ktls-full': 69, 'ktls-full-tfo': 49, 'ktls-resumed-tfo': 42.5 };

export async function handshakeScenario(ctx: Ctx, netem: string | null, rttMs: number): Promise<ScenarioResult> {
  const t0 = Date.now();
  const n = ctx.quick ? 2 : 8;
  type Spec = { kind: HsKind; resumed: boolean; fastOpen: boolean; coalesce: boolean };
  const mk = (kind: HsKind, resumed: boolean, fastOpen: boolean, coalesce: boolean): Contender<Spec> => ({
    id: `${kind}-${resumed ? 'resumed' : 'full'}${fastOpen ? '-tfo' : ''}${kind === 'ktls' && !coalesce ? '-nocoalesce' : ''}`,
    label: `${kind === 'ktls' ? 'ktls' : 'node:tls'} ${resumed ? 'resumed' : 'full'}${fastOpen ? ' + TFO' : ''}${kind === 'ktls' && !coalesce ? ', no flight coalescing' : ''}`,
    spec: { kind, resumed, fastOpen, coalesce },
    unavailable: () => netem ?? (fastOpen ? FEATURES.fastOpen() : null) ?? (kind === 'ktls' && !coalesce ? FEATURES.coalesce() : null),
  });
  // ktls coalesces handshake flights by default (ktls: { coalesce: true }); node:tls writes them as OpenSSL does.
  const contenders = [
    mk('tls', false, false, false),
    mk('tls', true, false, false),
    mk('ktls', false, false, true),
    mk('ktls', false, false, false),
    mk('ktls', true, false, true),
    mk('ktls', false, true, true),
    mk('ktls', true, true, true),
    mk('ktls', true, true, false),
  ];
  const groups = (['TLSv1.2', 'TLSv1.3'] as const).map((v) => ({ name: v === 'TLSv1.2' ? 'TLS 1.2' : 'TLS 1.3', version: v }));
  const rows = await alternate(ctx, 'handshake', groups, contenders, HS_METRICS, async (g, c, s, key) => {
    const { port } = await ctx.b.call<{ port: number }>('hsServe', {
      kind: c.spec.kind,
      version: g.version,
      fastOpen: c.spec.fastOpen,
      coalesce: c.spec.coalesce,
    });
    try {
      const samples = await ctx.a.call<Array<{ ms: number; segments: number | null; synData: boolean | null; resumed: boolean }>>('hsClient', {
        kind: c.spec.kind,
        port,
        version: g.version,
        fastOpen: c.spec.fastOpen,
        coalesce: c.spec.coalesce,
        resumed: c.spec.resumed,
        n,
      });
      const ms = samples.map((x) => x.ms).sort((a, b) => a - b);
      const med = ms[Math.floor(ms.length / 2)];
      s.add(key, 'TTFB ms', med);
      const segs = samples.map((x) => x.segments).filter((x): x is number => x !== null);
      if (segs.length) s.add(key, 'segments', segs.sort((a, b) => a - b)[Math.floor(segs.length / 2)]);
      const resumed = samples.filter((x) => x.resumed).length;
      const syn = samples.filter((x) => x.synData === true).length;
      const notes = [`${resumed}/${samples.length} resumed`];
      if (c.spec.fastOpen) notes.push(`${syn}/${samples.length} with SYN data`);
      if (!segs.length) notes.push(`segments: ${FEATURES.tcpInfo() ?? 'TCP_INFO unreadable'}`);
      s.note(key, notes.join('; '));
      return `TTFB median ${med.toFixed(1)} ms (${notes.join('; ')})`;
    } finally {
      await ctx.b.call('hsStop');
    }
  });
  const t13 = (id: string): number | null => rows.find((r) => r.group === 'TLS 1.3' && r.contender === id)?.metrics['TTFB ms']?.median ?? null;
  const targets = Object.entries(HS_ANCHOR).map(([id, anchor]) => {
    const v = t13(id);
    const scaled = (anchor * rttMs) / 20;
    return {
      label: `TLS 1.3 ${id.replace('ktls-', '').replace('-tfo', ' + TFO')}: TTFB vs OpenSSL anchor (${scaled} ms at ${rttMs} ms RTT)`,
      value: v === null ? null : v / scaled,
      op: '<=' as const,
      threshold: 1.0,
      met: v === null ? null : v <= scaled,
      functionalOnly: ctx.where === 'uml',
      detail: 'measured ktls TTFB ÷ OpenSSL anchor',
    };
  });
  return {
    id: 'handshake',
    title: `Handshake latency at ${rttMs} ms RTT`,
    where: ctx.where,
    kernelLabel: ctx.kernelLabel,
    metrics: HS_METRICS,
    rows,
    targets,
    description: `netem delay ${rttMs / 2} ms on loopback (RTT ${rttMs} ms). Time from connect() to the first byte of the response to a 1-byte request sent right after the handshake (ktls: after the switch to the kernel); median of ${n} handshakes per run after one untimed priming connection (which also supplies the session for resumed runs). Segments: TCP_INFO segs_in + segs_out on the client at that moment. ECDSA P-256 certificate.`,
    notes: netem ? [netem] : [],
    seconds: (Date.now() - t0) / 1000,
  };
}

/** Adds netem delay to lo (only inside UML or a private network namespace). Returns an undo, or throws. */
export function addNetem(delayMs: number): () => void {
  execFileSync('tc', ['qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', `${delayMs}ms`], { stdio: 'pipe' });
  try {
    fs.writeFileSync('/proc/sys/net/ipv4/tcp_fastopen', '3');
  } catch {
    // TFO contenders then show no SYN data
  }
  return () => execFileSync('tc', ['qdisc', 'del', 'dev', 'lo', 'root'], { stdio: 'pipe' });
}
