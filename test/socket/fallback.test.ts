// The userspace record layer behind the same KtlsSocket API: data intact,
// close_notify, and `kernel === false`.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import * as ktls from '../../lib/index.js';
import { readAll, sha256, upgradedPair, loopbackPair, sessionKeys } from '../helpers/pair.js';

t.test('userspace record layer carries data both ways for every version × cipher', async (t) => {
  for (const version of ktls.VERSIONS) {
    for (const cipher of ktls.CIPHER_NAMES) {
      for (const size of [1, 16385, 1024 * 1024]) {
        const [a, b] = await upgradedPair(version, cipher, { kernel: false });
        t.equal(a.kernel, false);
        t.same(a.kernelDirections, { tx: false, rx: false });
        const ab = randomBytes(size);
        const ba = randomBytes(size);
        const reads = Promise.all([readAll(b), readAll(a)]);
        a.end(ab);
        b.end(ba);
        const [gotB, gotA] = await reads;
        t.equal(sha256(gotB), sha256(ab), `${version} ${cipher} ${size} B a->b`);
        t.equal(sha256(gotA), sha256(ba), `${version} ${cipher} ${size} B b->a`);
      }
    }
  }
});

t.test("fallback: 'userspace' works on this kernel whether or not it has kTLS", async (t) => {
  const caps = await ktls.probe();
  const [c, s] = await loopbackPair();
  const keys = sessionKeys('TLSv1.2', 'aes-256-gcm');
  const [a, b] = await Promise.all([ktls.upgrade(c, keys.a, { fallback: 'userspace' }), ktls.upgrade(s, keys.b, { fallback: 'userspace' })]);
  t.equal(a.kernel, caps.ulp, `kernel ${caps.kernelRelease}: socket.kernel is ${caps.ulp}`);
  const done = readAll(b);
  a.end('over the fallback');
  t.equal((await done).toString(), 'over the fallback');
  t.equal((await readAll(a)).length, 0, 'close_notify answered');
  t.same(a.getSequenceNumbers(), { tx: 2n, rx: 1n }, 'data record + close_notify sent, close_notify received');
});

t.test('a seal failure reaches the write callback and destroys the socket with its code', async (t) => {
  const [c, s] = await loopbackPair();
  const keys = sessionKeys('TLSv1.3', 'aes-128-gcm', { ab: (1n << 64n) - 1n });
  const opts = { kernel: false, keyUsageLimits: false }; // a made-up sequence number: no records counted
  const [a, b] = await Promise.all([ktls.upgrade(c, keys.a, opts), ktls.upgrade(s, keys.b, opts)]);
  b.resume();
  const err = new Promise<Error & { code?: string }>((resolve) => a.once('error', resolve));
  const results: Array<string | null> = [];
  a.write('the last sequence number', (e) => results.push(e ? ((e as Error & { code?: string }).code ?? 'error') : null));
  a.write('one too many', (e) => results.push(e ? ((e as Error & { code?: string }).code ?? 'error') : null));
  t.equal((await err).code, 'ERR_KTLS_SEQ_EXHAUSTED');
  t.same(results, [null, 'ERR_KTLS_SEQ_EXHAUSTED'], 'the record at 2^64-1 went out, the next one failed');
  b.destroy();
});
