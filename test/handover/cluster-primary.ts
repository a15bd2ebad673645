// The primary's side of test/handover/cluster*.kernel.test.ts: forks
// cluster-worker.js workers, waits until they listen, and talks TLS to them.
import cluster, { type Worker } from 'node:cluster';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { CERTS } from '../helpers/tls.js';
import type { Served } from './cluster-worker.js';

export type { Served };

/** Workers listening on one port, and what they reported. */
export interface Workers {
  port: number;
  workers: Worker[];
  warnings: Array<{ worker: number; code?: string; message: string }>;
  stop(): Promise<void>;
}

const withTimeout = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    p.then(
      (v) => (clearTimeout(timer), resolve(v)),
      (e: unknown) => (clearTimeout(timer), reject(e instanceof Error ? e : new Error(String(e)))),
    );
  });

/**
 * Forks `n` workers with `env`; resolves once each has listened. With
 * `samePort` the first picks a port and the others are told to listen on it
 * (reusePort: each worker binds its own socket).
 */
export async function startWorkers(n: number, env: Record<string, string>, samePort = false): Promise<Workers> {
  cluster.setupPrimary({ exec: path.join(__dirname, 'cluster-worker.js'), execArgv: [] });
  const out: Workers = { port: 0, workers: [], warnings: [], stop: () => stopAll(out.workers) };
  const fork = (extra: Record<string, string>): Promise<number> => {
    const w = cluster.fork({ ...env, ...extra });
    out.workers.push(w);
    w.on('message', (m: { warning?: string; message?: string }) => {
      if (m.message !== undefined) out.warnings.push({ worker: w.id, code: m.warning, message: m.message });
    });
    const listening = new Promise<number>((resolve, reject) => {
      w.on('message', (m: { listening?: number }) => m.listening !== undefined && resolve(m.listening));
      w.once('exit', (code) => reject(new Error(`worker ${w.id} exited (${code}) before listening`)));
    });
    return withTimeout(listening, 20_000, `worker ${w.id} listening`);
  };
  try {
    if (samePort) {
      out.port = await fork({});
      for (let i = 1; i < n; i++) await fork({ CLUSTER_PORT: String(out.port) });
    } else {
      const ports = await Promise.all(Array.from({ length: n }, () => fork({})));
      out.port = ports[0];
      if (ports.some((p) => p !== out.port)) throw new Error(`workers listen on different ports: ${ports.join(', ')}`);
    }
  } catch (err) {
    await out.stop();
    throw err;
  }
  return out;
}

async function stopAll(workers: Worker[]): Promise<void> {
  await Promise.all(
    workers.map(async (w) => {
      if (w.isDead()) return;
      const exited = new Promise((resolve) => w.once('exit', resolve));
      w.disconnect();
      await withTimeout(exited, 5000, `worker ${w.id} exit`).catch(() => {
        w.kill('SIGKILL');
        return exited;
      });
    }),
  );
}

/** What one TLS request got back: the worker's report and the echoed body. */
export interface Answer {
  served: Served;
  echo: Buffer;
  session?: Buffer;
  clientReused: boolean;
}

/** Sends `body` (length-prefixed) over a TLS connection and reads the answer of cluster-worker's 'tls' server to its end. */
export function tlsRequest(port: number, body: Buffer, options: tls.ConnectionOptions = {}): Promise<Answer> {
  const c = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca, ...options });
  let session: Buffer | undefined;
  c.on('session', (s: Buffer) => (session = s));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  c.once('secureConnect', () => c.write(Buffer.concat([len, body])));
  const chunks: Buffer[] = [];
  c.on('data', (d: Buffer) => chunks.push(d));
  const done = new Promise<Answer>((resolve, reject) => {
    c.once('error', reject);
    c.once('end', () => {
      c.end();
      const all = Buffer.concat(chunks);
      const nl = all.indexOf(10);
      try {
        resolve({ served: JSON.parse(all.subarray(0, nl).toString()) as Served, echo: all.subarray(nl + 1), session, clientReused: c.isSessionReused() });
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  });
  return withTimeout(done, 20_000, 'a TLS request to the cluster').finally(() => c.destroy());
}
