// A node:cluster of ktls servers for the resumption scenario. Forked by the
// bench with one JSON argument; as primary it forks the workers and answers
// its parent over IPC ('stats', 'stop'); each worker runs ktls.createServer
// with either ticket keys derived from one shared secret (rotateTicketKeys)
// or its own random key (what a cluster gets by default), answers a 1-byte
// request, and counts its connections, resumptions, kernel offload and CPU.
import cluster from 'node:cluster';
import * as ktls from '../lib/index.js';
import { CERTS } from './ops/common.js';

export interface ClusterConfig {
  workers: number;
  version: 'TLSv1.2' | 'TLSv1.3';
  keys: 'shared' | 'own';
}

export interface WorkerStats {
  id: number;
  conns: number;
  resumed: number;
  kernel: number;
  /** Connections whose hand-over failed. */
  errors: number;
  cpuUs: number;
}

type ToPrimary = { stats: WorkerStats } | { listening: number };

const SECRET = 'the resumption benchmark shares this secret among its workers';

function worker(cfg: ClusterConfig): void {
  const stats: WorkerStats = { id: cluster.worker?.id ?? 0, conns: 0, resumed: 0, kernel: 0, errors: 0, cpuUs: 0 };
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert, minVersion: cfg.version, maxVersion: cfg.version }, (s) => {
    stats.conns++;
    if (s.isSessionReused()) stats.resumed++;
    if (s.kernel) stats.kernel++;
    s.on('error', () => undefined);
    s.once('data', () => s.end('r'));
  });
  server.on('tlsClientError', () => stats.errors++);
  if (cfg.keys === 'shared') ktls.rotateTicketKeys(server, { secret: SECRET });
  server.listen(0, '127.0.0.1', () => process.send?.({ listening: (server.address() as { port: number }).port } satisfies ToPrimary));
  process.on('message', (m: string) => {
    if (m !== 'stats') return;
    const cpu = process.cpuUsage();
    process.send?.({ stats: { ...stats, cpuUs: cpu.user + cpu.system } } satisfies ToPrimary);
  });
}

async function primary(cfg: ClusterConfig): Promise<void> {
  cluster.setupPrimary({ args: [JSON.stringify(cfg)] });
  const workers = Array.from({ length: cfg.workers }, () => cluster.fork());
  const ports = await Promise.all(
    workers.map((w) => new Promise<number>((resolve) => w.on('message', (m: ToPrimary) => 'listening' in m && resolve(m.listening)))),
  );
  // Round-robin: every worker listens on the one port the primary holds.
  process.send?.({ port: ports[0], ports });
  process.on('message', (m: string) => {
    if (m === 'stats') {
      void Promise.all(
        workers.map(
          (w) =>
            new Promise<WorkerStats>((resolve) => {
              const on = (r: ToPrimary): void => {
                if ('stats' in r) {
                  w.off('message', on);
                  resolve(r.stats);
                }
              };
              w.on('message', on);
              w.send('stats');
            }),
        ),
      ).then((stats) => process.send?.({ stats }));
    } else if (m === 'stop') {
      for (const w of workers) w.kill();
      process.exit(0);
    }
  });
  process.on('disconnect', () => {
    for (const w of workers) w.kill();
    process.exit(0);
  });
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as ClusterConfig;
if (cluster.isPrimary) void primary(cfg);
else worker(cfg);
