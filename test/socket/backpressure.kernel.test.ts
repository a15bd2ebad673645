// A slow reader makes the writer wait; nothing is lost either way.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireKtls } from '../helpers/kernel.js';
import { sha256, upgradedPair } from '../helpers/pair.js';
import { parity } from '../helpers/parity-log.js';

t.test('a slow reader loses nothing and the writer sees backpressure', async (t) => {
  await requireKtls(t);
  const [a, b] = await upgradedPair('TLSv1.2', 'aes-256-gcm', { highWaterMark: 64 * 1024 });
  const data = randomBytes(8 * 1024 * 1024);
  let sawBackpressure = false;
  const writer = (async () => {
    for (let off = 0; off < data.length; off += 256 * 1024) {
      if (!a.write(data.subarray(off, off + 256 * 1024))) {
        sawBackpressure = true;
        await new Promise((resolve) => a.once('drain', resolve));
      }
    }
    a.end();
  })();
  const got: Buffer[] = [];
  let n = 0;
  for await (const chunk of b) {
    got.push(chunk as Buffer);
    if (++n % 16 === 0) await sleep(5); // slower than the writer
  }
  await writer;
  t.ok(sawBackpressure, 'write() returned false while the reader lagged');
  t.equal(sha256(Buffer.concat(got)), sha256(data), '8 MiB intact');
  parity(t, 'TLSSocket@drain', a);
});
