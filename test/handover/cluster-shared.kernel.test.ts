// node:cluster with shared handles (SCHED_NONE: every worker accepts on the
// primary's socket) and with reusePort (every worker binds its own socket to
// one port, the kernel spreads connections). Fast Open works in both: the
// worker holds a real listening socket.
import t, { type Test } from 'tap';
import cluster from 'node:cluster';
import { createHash, randomBytes } from 'node:crypto';
import { parity } from '../helpers/parity-log.js';
import { requireKtls } from '../helpers/kernel.js';
import { startWorkers, tlsRequest, type Served } from './cluster-primary.js';

cluster.schedulingPolicy = cluster.SCHED_NONE;
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const serveMany = async (t: Test, port: number, n: number): Promise<Served[]> => {
  const out: Served[] = [];
  for (let i = 0; i < n; i++) {
    const body = randomBytes(30_000 + i);
    const a = await tlsRequest(port, body);
    t.equal(sha256(a.echo), sha256(body), `connection ${i}: the echo is intact`);
    out.push(a.served);
  }
  return out;
};

t.test('shared handle: ktls.createServer with fastOpen in 2 workers serves every connection on kTLS, intact', async (t) => {
  await requireKtls(t);
  const w = await startWorkers(2, { CLUSTER_SERVER: 'tls', CLUSTER_FASTOPEN: '16' });
  t.teardown(() => w.stop());
  const served = await serveMany(t, w.port, 6);
  t.ok(
    served.every((s) => s.kernel),
    'every connection on kTLS (kernel === true)',
  );
  // Which worker accept() wakes is the kernel's choice: the spread is not asserted here.
  t.comment(`served by workers ${served.map((s) => s.worker).join(' ')}`);
  t.same(w.warnings, [], 'no KTLS_FASTOPEN warning: each worker set TCP_FASTOPEN on the shared socket');
  parity(t, ['Server#listen', 'Server@secureConnection'], { kernel: true });
});

t.test('reusePort: each worker binds its own socket to one port and the kernel spreads connections over them', async (t) => {
  await requireKtls(t);
  const w = await startWorkers(2, { CLUSTER_SERVER: 'tls', CLUSTER_REUSEPORT: '1', CLUSTER_FASTOPEN: '16' }, true);
  t.teardown(() => w.stop());
  // The kernel picks a socket by the hash of each 4-tuple: 24 connections all to one of two is 2^-23.
  const served = await serveMany(t, w.port, 24);
  t.ok(
    served.every((s) => s.kernel),
    'every connection on kTLS (kernel === true)',
  );
  t.equal(new Set(served.map((s) => s.worker)).size, 2, `connections spread over both workers (${served.map((s) => s.worker).join(' ')})`);
  t.same(w.warnings, [], 'no warning: Fast Open set on each worker socket');
  parity(t, 'Server#listen', { kernel: true });
});
