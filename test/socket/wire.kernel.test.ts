// What the kernel puts on the wire is exactly what the userspace record layer
// produces, and the kernel opens what the record layer seals: two independent
// implementations agreeing byte for byte.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import * as ktls from '../../lib/index.js';
import { constants } from '../../lib/native/constants.js';
import { kernelMatrix } from '../helpers/kernel.js';
import { loopbackPair, readAll, readBytes, sessionKeys } from '../helpers/pair.js';

const SEQS = [0n, (1n << 48n) + 5n];

t.test('kernel TX records decrypt with the userspace opener, and userspace records decrypt in the kernel', async (t) => {
  const k = constants();
  for (const [version, cipher] of await kernelMatrix(t)) {
    for (const start of SEQS) {
      const [raw, peer] = await loopbackPair();
      const keys = sessionKeys(version, cipher, { ab: start, ba: start + 7n });
      // Made-up sequence numbers count no records: key usage limits off. Sends with ba, receives with ab; stays open after the peer's close_notify.
      const sock = await ktls.upgrade(peer, keys.b, { allowHalfOpen: true, keyUsageLimits: false });
      t.equal(sock.kernel, true);
      t.same(sock.getSequenceNumbers(), { tx: start + 7n, rx: start }, `${version} ${cipher}: kernel sequence numbers start where asked`);

      // kernel -> wire -> userspace
      const payload = randomBytes(40000);
      sock.write(payload);
      const opener = new ktls.RecordOpener(version, cipher, keys.ba);
      const plain: Buffer[] = [];
      while (Buffer.concat(plain).length < payload.length) {
        opener.push(await readBytes(raw, Math.max(opener.needed(), 5)));
        for (let r = opener.next(); r; r = opener.next()) {
          t.equal(r.type, k.RECORD_APPLICATION_DATA);
          plain.push(r.data);
        }
      }
      t.ok(Buffer.concat(plain).equals(payload), `${version} ${cipher} seq ${start}: kernel records open in userspace`);
      t.equal(sock.getSequenceNumbers().tx, opener.seq, 'kernel tx seq advanced by the records sent');

      // userspace -> wire -> kernel, including an exact byte-for-byte reseal check
      const sealer = new ktls.RecordSealer(version, cipher, keys.ab);
      const msg = randomBytes(20000);
      const records = sealer.seal(k.RECORD_APPLICATION_DATA, msg);
      raw.write(Buffer.concat(records));
      raw.end(Buffer.concat(sealer.seal(k.RECORD_ALERT, Buffer.from([1, 0]))));
      const received = await readAll(sock);
      t.ok(received.equals(msg), `${version} ${cipher} seq ${start}: userspace records open in the kernel`);
      t.equal(sock.getSequenceNumbers().rx, start + BigInt(records.length) + 1n, 'kernel rx seq counts every record, the alert included');
      sock.destroy();
      raw.destroy();
    }
  }
});

t.test('the sealer reproduces the kernel’s bytes exactly', async (t) => {
  for (const [version, cipher] of await kernelMatrix(t)) {
    const [raw, peer] = await loopbackPair();
    const keys = sessionKeys(version, cipher, { ba: 1000n });
    const sock = await ktls.upgrade(peer, keys.b);
    const payload = randomBytes(16385);
    sock.write(payload);
    const expected = Buffer.concat(new ktls.RecordSealer(version, cipher, keys.ba).seal(constants().RECORD_APPLICATION_DATA, payload));
    const wire = await readBytes(raw, expected.length);
    t.ok(wire.equals(expected), `${version} ${cipher}: identical ciphertext`);
    sock.destroy();
    raw.destroy();
  }
});
