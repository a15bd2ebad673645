// node:cluster in round-robin mode (SCHED_RR, the Linux default): the primary
// accepts and passes each connection to a worker, whose KtlsServer (or
// KtlsHttpsServer) does the handshake and moves it to kTLS. Fast Open cannot be
// set from a worker here (the primary owns the listening socket): a warning says so.
import t from 'tap';
import cluster from 'node:cluster';
import { createHash, randomBytes } from 'node:crypto';
import * as https from 'node:https';
import { parity } from '../helpers/parity-log.js';
import { requireKtls } from '../helpers/kernel.js';
import { CERTS } from '../helpers/tls.js';
import { startWorkers, tlsRequest, type Served } from './cluster-primary.js';

cluster.schedulingPolicy = cluster.SCHED_RR;
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

t.test('round-robin: ktls.createServer in 2 workers serves every connection on kTLS, intact, spread over both', async (t) => {
  await requireKtls(t);
  const w = await startWorkers(2, { CLUSTER_SERVER: 'tls', CLUSTER_FASTOPEN: '16' });
  t.teardown(() => w.stop());
  const answers = [];
  for (let i = 0; i < 8; i++) {
    const body = randomBytes(50_000 + i * 1000);
    const a = await tlsRequest(w.port, body);
    t.equal(sha256(a.echo), sha256(body), `connection ${i}: the echo is intact`);
    t.equal(a.served.sha256, sha256(body), `connection ${i}: the worker read the request intact`);
    answers.push(a.served);
  }
  t.ok(
    answers.every((s) => s.kernel),
    'every connection on kTLS (kernel === true)',
  );
  const byWorker = new Set(answers.map((s) => s.worker));
  t.equal(byWorker.size, 2, `connections spread over both workers (${answers.map((s) => s.worker).join(' ')})`);
  const fastOpen = w.warnings.filter((x) => x.code === 'KTLS_FASTOPEN');
  t.equal(fastOpen.length, 2, 'each round-robin worker warns that it cannot set Fast Open');
  t.ok(
    fastOpen.every((x) => /round-robin cluster worker/.test(x.message)),
    'the warning names the round-robin worker',
  );
  t.same(
    w.warnings.filter((x) => x.code !== 'KTLS_FASTOPEN'),
    [],
    'no other warning or tlsClientError',
  );
  parity(t, ['Server#listen', 'Server@secureConnection'], { kernel: true });
});

t.test('round-robin: ktls.createHttpsServer in 2 workers serves every request on kTLS, spread over both', async (t) => {
  await requireKtls(t);
  const w = await startWorkers(2, { CLUSTER_SERVER: 'https' });
  t.teardown(() => w.stop());
  const served: Served[] = [];
  for (let i = 0; i < 6; i++) {
    const body = randomBytes(20_000 + i);
    const text = await new Promise<string>((resolve, reject) => {
      const req = https.request({ port: w.port, host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca, method: 'POST', path: '/', agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d)).on('end', () => resolve(Buffer.concat(chunks).toString()));
      });
      req.setTimeout(20_000, () => req.destroy(new Error('request timed out')));
      req.on('error', reject);
      req.end(body);
    });
    const s = JSON.parse(text) as Served;
    t.equal(s.sha256, sha256(body), `request ${i}: the body arrived intact`);
    served.push(s);
  }
  t.ok(
    served.every((s) => s.kernel),
    'every request on kTLS',
  );
  t.equal(new Set(served.map((s) => s.worker)).size, 2, `requests spread over both workers (${served.map((s) => s.worker).join(' ')})`);
  t.same(w.warnings, [], 'no warning or tlsClientError');
});
