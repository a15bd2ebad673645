// Session resumption across a node:cluster of ktls servers: how many
// connections resume when one client's connections are spread over 4 workers
// (round-robin), with ticket keys shared through rotateTicketKeys() versus each
// worker's own key; the workers' CPU per connection, full versus resumed; and
// the time to the first response byte (under netem's RTT where available).
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { nowNs } from './common.js';
import type { ClusterConfig, WorkerStats } from './cluster-server.js';
import { CERTS } from './ops/common.js';
import { alternate, type Contender, type Ctx, type ScenarioResult, type TargetResult } from './sampling.js';

export const RES_METRICS = ['resumed %', 'server CPU ms/conn', 'TTFB ms'];
const WORKERS = 4;

/** A running cluster (bench/cluster-server.ts), driven over IPC. */
class Cluster {
  readonly port: number;
  readonly #child: ChildProcess;
  private constructor(child: ChildProcess, port: number) {
    this.#child = child;
    this.port = port;
  }

  static async start(cfg: ClusterConfig): Promise<Cluster> {
    const child = fork(path.join(__dirname, 'cluster-server.js'), [JSON.stringify(cfg)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the cluster did not start within 60 s')), 60_000);
      child.once('message', (m: { port: number }) => (clearTimeout(timer), resolve(m.port)));
      child.once('exit', (code) => (clearTimeout(timer), reject(new Error(`the cluster exited (${code})`))));
    });
    return new Cluster(child, port);
  }

  stats(): Promise<WorkerStats[]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no stats from the cluster within 10 s')), 10_000);
      this.#child.once('message', (m: { stats: WorkerStats[] }) => (clearTimeout(timer), resolve(m.stats)));
      this.#child.send('stats');
    });
  }

  stop(): void {
    this.#child.send('stop');
  }
}

/** One connection from a node:tls client (as a browser would be): TTFB of a 1-byte request, and the session it leaves. */
async function connectOnce(port: number, version: ClusterConfig['version'], session?: Buffer): Promise<{ ms: number; reused: boolean; session?: Buffer }> {
  const t0 = nowNs();
  const c = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca, minVersion: version, maxVersion: version, session });
  let latest: Buffer | undefined;
  c.on('session', (s: Buffer) => (latest = s));
  const closed = new Promise((r) => c.once('close', r));
  await new Promise<void>((resolve, reject) => c.once('secureConnect', resolve).once('error', reject));
  const first = new Promise<bigint>((r) => c.once('data', () => r(nowNs())));
  c.write('q');
  const t1 = await first;
  const reused = c.isSessionReused();
  c.resume();
  await closed;
  return { ms: Number(t1 - t0) / 1e6, reused, session: latest ?? c.getSession() };
}

const sum = (l: WorkerStats[], k: keyof WorkerStats): number => l.reduce((a, w) => a + w[k], 0);

/**
 * `id` 'resumption' runs where the kTLS scenarios run (UML here: offload and
 * rates, CPU only functional); 'resumption-cpu' runs on this kernel, without
 * netem, for CPU figures that are real (userspace records where it lacks kTLS:
 * the handshakes are the same OpenSSL work).
 */
export async function resumptionScenario(
  ctx: Ctx,
  netem: string | null,
  rttMs: number,
  id: 'resumption' | 'resumption-cpu' = 'resumption',
): Promise<ScenarioResult> {
  const t0 = Date.now();
  const n = ctx.quick ? 12 : 40;
  type Spec = { keys: ClusterConfig['keys']; resume: boolean };
  const contenders: Array<Contender<Spec>> = [
    { id: 'shared-full', label: 'shared ticket keys, full handshakes', spec: { keys: 'shared', resume: false } },
    { id: 'shared-resumed', label: 'shared ticket keys, resumption offered', spec: { keys: 'shared', resume: true } },
    { id: 'own-resumed', label: "each worker's own key, resumption offered", spec: { keys: 'own', resume: true } },
  ];
  const groups = (['TLSv1.2', 'TLSv1.3'] as const).map((v) => ({ name: v === 'TLSv1.2' ? 'TLS 1.2' : 'TLS 1.3', version: v }));
  const clusters = new Map<string, Promise<Cluster>>();
  const clusterFor = (version: ClusterConfig['version'], keys: ClusterConfig['keys']): Promise<Cluster> => {
    const k = `${version}/${keys}`;
    let c = clusters.get(k);
    if (!c) {
      // Untimed connections first, full and resumed, so every worker has run (and compiled) both paths before CPU is counted.
      c = Cluster.start({ workers: WORKERS, version, keys }).then(async (cl) => {
        let session: Buffer | undefined;
        for (let i = 0; i < 3 * WORKERS; i++) session = (await connectOnce(cl.port, version, i % 2 ? session : undefined)).session;
        return cl;
      });
      clusters.set(k, c);
    }
    return c;
  };
  const offload = new Map<string, { conns: number; kernel: number; resumed: number }>();
  let rows;
  try {
    rows = await alternate(ctx, 'resumption', groups, contenders, RES_METRICS, async (g, c, s, key) => {
      const cl = await clusterFor(g.version, c.spec.keys);
      // The client's first connection gives it a session (untimed, uncounted).
      let session = c.spec.resume ? (await connectOnce(cl.port, g.version)).session : undefined;
      const before = await cl.stats();
      const ttfb: number[] = [];
      let reused = 0;
      for (let i = 0; i < n; i++) {
        const r = await connectOnce(cl.port, g.version, session);
        if (c.spec.resume) session = r.session ?? session;
        ttfb.push(r.ms);
        if (r.reused) reused++;
      }
      const after = await cl.stats();
      const per = after.map((w, i) => w.conns - (before[i]?.conns ?? 0));
      const conns = sum(after, 'conns') - sum(before, 'conns');
      const kernel = sum(after, 'kernel') - sum(before, 'kernel');
      const serverResumed = sum(after, 'resumed') - sum(before, 'resumed');
      const errors = sum(after, 'errors') - sum(before, 'errors');
      if (conns !== n) throw new Error(`the workers counted ${conns} connections of ${n} (${errors} hand-over errors)`);
      const cpuMs = (sum(after, 'cpuUs') - sum(before, 'cpuUs')) / 1000 / n;
      ttfb.sort((a, b) => a - b);
      const med = ttfb[Math.floor(ttfb.length / 2)];
      s.add(key, 'resumed %', (100 * reused) / n);
      s.add(key, 'server CPU ms/conn', cpuMs);
      s.add(key, 'TTFB ms', med);
      const note = `per worker ${per.join('/')}; the servers saw ${serverResumed}/${n} resumed; ${kernel}/${n} switched to ${ctx.where === 'uml' || kernel ? 'the kernel' : 'kTLS'}`;
      s.note(key, note);
      const o = offload.get(`${g.name} ${c.label}`) ?? { conns: 0, kernel: 0, resumed: 0 };
      offload.set(`${g.name} ${c.label}`, { conns: o.conns + n, kernel: o.kernel + kernel, resumed: o.resumed + serverResumed });
      return `${reused}/${n} resumed, ${cpuMs.toFixed(2)} ms CPU/conn, TTFB ${med.toFixed(1)} ms (${note})`;
    });
  } finally {
    for (const c of clusters.values())
      void c.then(
        (cl) => cl.stop(),
        () => undefined,
      );
  }
  const m = (group: string, id: string, metric: string): number | null =>
    rows.find((r) => r.group === group && r.contender === id)?.metrics[metric]?.median ?? null;
  const targets: TargetResult[] = [];
  const where = id === 'resumption-cpu' ? 'cluster, this kernel, ' : 'cluster, kTLS, ';
  for (const g of groups) {
    const rate = m(g.name, 'shared-resumed', 'resumed %');
    targets.push({
      label: `${where}${g.name}: connections that resume over ${WORKERS} workers with shared ticket keys`,
      value: rate === null ? null : rate / 100,
      op: '>=',
      threshold: 0.95,
      met: rate === null ? null : rate >= 95,
      functionalOnly: false,
      detail: 'client-reported isSessionReused() over all connections',
    });
    const full = m(g.name, 'shared-full', 'server CPU ms/conn');
    const res = m(g.name, 'shared-resumed', 'server CPU ms/conn');
    targets.push({
      label: `${where}${g.name}: server CPU per connection, resumed ÷ full`,
      value: full && res !== null ? res / full : null,
      op: '<=',
      threshold: 0.85,
      met: full && res !== null ? res / full <= 0.85 : null,
      functionalOnly: ctx.where === 'uml',
      detail: 'workers’ user+system CPU over the timed connections ÷ connections (handshake, switch, a 1-byte exchange, close)',
    });
  }
  return {
    id,
    title: `Session resumption across ${WORKERS} cluster workers${id === 'resumption-cpu' ? ', CPU on this kernel' : ''}`,
    where: ctx.where,
    kernelLabel: ctx.kernelLabel,
    metrics: RES_METRICS,
    rows,
    targets,
    description: `A node:cluster of ${WORKERS} ktls.createServer() workers (round-robin: the primary accepts and hands connections out in turn). One node:tls client makes ${n} connections one after another per run, each offering the session its previous connection left (resumption offered) or none (full); so consecutive connections land on different workers. Ticket keys: shared (every worker runs rotateTicketKeys() with the same secret) or each worker's own random key (a cluster's default). Server CPU: the workers' user + system time over the timed connections, per connection. TTFB: connect() to the first byte of the response to a 1-byte request${netem ? '' : `, netem delay ${rttMs / 2} ms on loopback (RTT ${rttMs} ms)`}.`,
    notes: [
      ...(netem ? [netem] : []),
      ...[...offload].map(([k, o]) => `${k}, all rounds: ${o.kernel}/${o.conns} connections with kernel === true, ${o.resumed} of them resumed`),
    ],
    seconds: (Date.now() - t0) / 1000,
  };
}
