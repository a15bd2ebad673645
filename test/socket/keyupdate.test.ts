// TLS 1.3 KeyUpdate over the userspace record layer: both ends follow, requests are answered.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { rekeyablePair } from '../helpers/keyupdate.js';
import { readBytes, sha256, upgradedPair } from '../helpers/pair.js';

for (const cipher of ['aes-128-gcm', 'aes-256-gcm', 'chacha20-poly1305'] as const) {
  t.test(`${cipher}: updateKeys({ requestPeer }) rekeys both directions and data flows on`, async (t) => {
    const [a, b] = await rekeyablePair(cipher, { kernel: false });
    const events: string[] = [];
    a.on('keyUpdate', (e: { direction: string; requested: boolean }) => events.push(`a ${e.direction} ${e.requested}`));
    b.on('keyUpdate', (e: { direction: string; requested: boolean }) => events.push(`b ${e.direction} ${e.requested}`));
    const one = randomBytes(50_000);
    const gotOne = readBytes(b, one.length);
    a.write(one);
    await a.updateKeys({ requestPeer: true });
    const two = randomBytes(70_000);
    a.write(two);
    t.equal(sha256(await gotOne), sha256(one));
    t.equal(sha256(await readBytes(b, two.length)), sha256(two), 'a → b under the next keys');
    const back = randomBytes(30_000);
    const gotBack = readBytes(a, back.length);
    b.write(back);
    t.equal(sha256(await gotBack), sha256(back), 'b → a after b answered the request');
    t.same(events.sort(), ['a rx false', 'a tx true', 'b rx true', 'b tx false']);
    t.same(a.getSequenceNumbers(), { tx: 5n, rx: 2n }, 'sequence numbers restart at 0 with each new key (70000 B = 5 records; 30000 B = 2)');
    a.destroy();
    b.destroy();
  });
}

t.test('updateKeys without the traffic secrets rejects before sending anything; TLS 1.2 has none', async (t) => {
  const [a, b] = await upgradedPair('TLSv1.3', 'aes-128-gcm', { kernel: false });
  await t.rejects(a.updateKeys(), { code: 'ERR_KTLS_REKEY_NO_SECRET' });
  const got = readBytes(b, 5);
  a.write('still');
  t.equal((await got).toString(), 'still', 'nothing was sent: the connection goes on');
  const [c, d] = await upgradedPair('TLSv1.2', 'aes-128-gcm', { kernel: false });
  await t.rejects(c.updateKeys(), { code: 'ERR_KTLS_UNSUPPORTED' });
  for (const s of [a, b, c, d]) s.destroy();
});
