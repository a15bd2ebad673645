// Bytes cross a kernel-TLS pair intact, both ways at once, for every version × cipher the kernel has.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { kernelMatrix } from '../helpers/kernel.js';
import { readAll, sha256, upgradedPair } from '../helpers/pair.js';

const SIZES = [1, 16384, 16385, 8 * 1024 * 1024];

t.test('every supported version × cipher carries 1 B, 16 KiB, 16 KiB+1 and 8 MiB each way', async (t) => {
  for (const [version, cipher] of await kernelMatrix(t)) {
    for (const size of SIZES) {
      const [a, b] = await upgradedPair(version, cipher);
      t.equal(a.kernel && b.kernel, true, `${version} ${cipher}: both ends use the kernel`);
      const ab = randomBytes(size);
      const ba = randomBytes(size);
      const reads = Promise.all([readAll(b), readAll(a)]);
      a.end(ab);
      b.end(ba);
      const [gotB, gotA] = await reads;
      t.equal(sha256(gotB), sha256(ab), `${version} ${cipher} ${size} B a->b`);
      t.equal(sha256(gotA), sha256(ba), `${version} ${cipher} ${size} B b->a`);
      t.equal(a.bytesWritten, size);
      t.equal(b.bytesRead, size);
    }
  }
});

t.test('many small writes arrive in order', async (t) => {
  await kernelMatrix(t);
  const [a, b] = await upgradedPair('TLSv1.3', 'aes-128-gcm');
  const parts = Array.from({ length: 500 }, (_, i) => Buffer.from(`message ${i};`));
  const got = readAll(b);
  for (const p of parts) a.write(p);
  a.end();
  t.equal((await got).toString(), Buffer.concat(parts).toString());
  b.destroy();
});
