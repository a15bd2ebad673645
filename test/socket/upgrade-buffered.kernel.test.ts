// Records that reached the net.Socket before the upgrade, a partial one
// included, are delivered first, in order, and the kernel takes over at the
// next record boundary.
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import * as ktls from '../../lib/index.js';
import { constants } from '../../lib/native/constants.js';
import { requireKtls } from '../helpers/kernel.js';
import { loopbackPair, readAll, sessionKeys } from '../helpers/pair.js';

t.test('bytes buffered by node:net before the upgrade are delivered first, a split record included', async (t) => {
  await requireKtls(t);
  const k = constants();
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const [raw, peer] = await loopbackPair();
    const keys = sessionKeys(version, 'aes-128-gcm', { ab: 42n });
    const sealer = new ktls.RecordSealer(version, 'aes-128-gcm', keys.ab);
    const parts = Array.from({ length: 6 }, (_, i) => Buffer.from(`part ${i} `.repeat(100 + i)));
    const records = parts.map((p) => Buffer.concat(sealer.seal(k.RECORD_APPLICATION_DATA, p)));
    const third = records[2];
    // Two whole records and 3 bytes of the third's header reach node:net first.
    raw.write(Buffer.concat([records[0], records[1], third.subarray(0, 3)]));
    peer.pause();
    await new Promise<void>((resolve) => peer.once('readable', () => resolve()));
    await sleep(20);
    t.ok(peer.readableLength > 0, `${version}: node:net had buffered bytes before the upgrade`);
    const upgrading = ktls.upgrade(peer, keys.b);
    await sleep(20);
    raw.write(third.subarray(3));
    const sock = await upgrading;
    t.equal(sock.kernel, true);
    t.equal(sock.getSequenceNumbers().rx, 45n, 'kernel RX starts after the three records opened in userspace');
    raw.end(Buffer.concat([...records.slice(3), ...sealer.seal(k.RECORD_ALERT, Buffer.from([1, 0]))]));
    t.equal((await readAll(sock)).toString(), Buffer.concat(parts).toString(), `${version}: every byte once, in order`);
  }
});

t.test('many records buffered before the upgrade survive a reader that applies backpressure', async (t) => {
  await requireKtls(t);
  const k = constants();
  const [raw, peer] = await loopbackPair();
  const keys = sessionKeys('TLSv1.3', 'aes-256-gcm');
  const sealer = new ktls.RecordSealer('TLSv1.3', 'aes-256-gcm', keys.ab);
  const parts = Array.from({ length: 20 }, (_, i) => Buffer.from(`record ${i} `.repeat(50)));
  raw.write(Buffer.concat(parts.flatMap((p) => sealer.seal(k.RECORD_APPLICATION_DATA, p))));
  peer.pause();
  await new Promise<void>((resolve) => peer.once('readable', () => resolve()));
  await sleep(30);
  t.ok(peer.readableLength > parts[0].length * 2, 'several records were buffered by node:net');
  const sock = await ktls.upgrade(peer, keys.b, { highWaterMark: 16 });
  raw.end(Buffer.concat(sealer.seal(k.RECORD_ALERT, Buffer.from([1, 0]))));
  t.equal((await readAll(sock)).toString(), Buffer.concat(parts).toString(), 'all 20 records, in order');
});

t.test("after the peer's FIN the kernel refuses TLS: ENOTCONN with fallback 'error', userspace with 'userspace'", async (t) => {
  await requireKtls(t);
  const k = constants();
  for (const fallback of ['error', 'userspace'] as const) {
    const [raw, peer] = await loopbackPair();
    const keys = sessionKeys('TLSv1.3', 'aes-128-gcm');
    const sealer = new ktls.RecordSealer('TLSv1.3', 'aes-128-gcm', keys.ab);
    peer.pause();
    raw.end(Buffer.concat([...sealer.seal(k.RECORD_APPLICATION_DATA, Buffer.from('last words')), ...sealer.seal(k.RECORD_ALERT, Buffer.from([1, 0]))]));
    await sleep(50); // the FIN is in: the socket is in CLOSE_WAIT
    if (fallback === 'error') {
      await t.rejects(ktls.upgrade(peer, keys.b, { fallback }), { code: 'ENOTCONN', syscall: 'setsockopt(TCP_ULP)' });
      t.equal(peer.destroyed, false, 'the net.Socket is left as it was');
      t.equal(peer.isPaused(), true, 'still paused, as we left it');
      const all = readAll(peer);
      peer.resume();
      t.equal((await all).length, 5 + 10 + 1 + 16 + 5 + 2 + 1 + 16, 'its bytes are all still readable');
    } else {
      const sock = await ktls.upgrade(peer, keys.b, { fallback, allowHalfOpen: true });
      t.equal(sock.kernel, false, 'served in userspace');
      t.equal((await readAll(sock)).toString(), 'last words');
      sock.destroy();
    }
    raw.destroy();
  }
});
