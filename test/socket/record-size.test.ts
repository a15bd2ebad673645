// maxRecordSize with the userspace record layer: honoured on the wire, validated before use.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import * as ktls from '../../lib/index.js';
import { loopbackPair, sessionKeys, sha256 } from '../helpers/pair.js';
import { recordSizesOnWire } from '../helpers/wire.js';

for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
  t.test(`${version}: the userspace record layer splits writes at maxRecordSize`, async (t) => {
    const [c, s] = await loopbackPair();
    const keys = sessionKeys(version, 'chacha20-poly1305');
    const a = await ktls.upgrade(c, keys.a, { kernel: false, maxRecordSize: 1000 });
    t.equal(a.maxRecordSize, 1000, 'the option is applied');
    const data = randomBytes(4500);
    const wire = recordSizesOnWire(s, keys.ab, version, 'chacha20-poly1305', data.length + 3000);
    a.write(data);
    a.maxRecordSize = 3000;
    a.write(data.subarray(0, 3000));
    const { plaintexts, opened } = await wire;
    t.same(plaintexts, [1000, 1000, 1000, 1000, 500, 3000]);
    t.equal(sha256(opened), sha256(Buffer.concat([data, data.subarray(0, 3000)])));
    a.destroy();
    s.destroy();
  });
}

t.test('maxRecordSize outside 64..16384 is a RangeError and changes nothing', async (t) => {
  const [c, s] = await loopbackPair();
  const a = await ktls.upgrade(c, sessionKeys('TLSv1.3', 'aes-128-gcm').a, { kernel: false });
  for (const bad of [63, 16385, 1.5, Number.NaN]) t.throws(() => a.setMaxRecordSize(bad), { code: 'ERR_INVALID_ARG_VALUE', name: 'RangeError' });
  t.equal(a.maxRecordSize, 16384);
  a.destroy();
  s.destroy();
});
