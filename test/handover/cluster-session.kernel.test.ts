// TLS 1.2 session-ID resumption across cluster workers with
// examples/session-cache.ts: the session one worker made is resumed by
// another through the primary's store, and the resumed connection is on kTLS.
import t from 'tap';
import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { MemorySessionStore, serveSessions } from '../../examples/session-cache.js';
import { parity } from '../helpers/parity-log.js';
import { requireKtls } from '../helpers/kernel.js';
import { startWorkers, tlsRequest } from './cluster-primary.js';

cluster.schedulingPolicy = cluster.SCHED_RR;

t.test('a TLS 1.2 session made on one worker resumes on another (newSession/resumeSession store), on kTLS', async (t) => {
  await requireKtls(t);
  const memory = new MemorySessionStore();
  const saved: string[] = [];
  const looked: string[] = [];
  serveSessions({
    set: (id, data, ttl) => (saved.push(id.toString('hex')), memory.set(id, data, ttl)),
    get: (id) => (looked.push(id.toString('hex')), memory.get(id)),
  });
  const w = await startWorkers(2, { CLUSTER_SERVER: 'tls', CLUSTER_SESSIONS: '1' });
  t.teardown(() => w.stop());
  const opts = { maxVersion: 'TLSv1.2' as const, minVersion: 'TLSv1.2' as const };
  const first = await tlsRequest(w.port, randomBytes(1000), opts);
  t.equal(first.clientReused, false, 'the first connection is a full handshake');
  t.equal(first.served.kernel, true, 'on kTLS');
  t.ok(first.session, "the client got the session ('session' event)");
  for (const end = Date.now() + 5000; saved.length === 0 && Date.now() < end;) await new Promise((r) => setTimeout(r, 10));
  t.equal(saved.length, 1, "the worker's 'newSession' saved it in the primary's store");
  // Round-robin: the next connection goes to the other worker.
  const second = await tlsRequest(w.port, randomBytes(1000), { ...opts, session: first.session });
  t.not(second.served.worker, first.served.worker, `served by another worker (${first.served.worker} then ${second.served.worker})`);
  t.equal(second.clientReused, true, 'the client resumed (isSessionReused() === true)');
  t.equal(second.served.reused, true, 'the server side resumed');
  t.equal(second.served.kernel, true, 'the resumed connection is on kTLS (kernel === true)');
  t.same(looked, saved, "the other worker's 'resumeSession' looked the session ID up in the store");
  t.same(
    w.warnings.filter((x) => x.code !== 'KTLS_FALLBACK'),
    [],
    'no tlsClientError',
  );
  parity(t, ['Server@newSession', 'Server@resumeSession'], { kernel: true });
});
