// One-direction upgrades: tx-only sockets read the peer's raw bytes (those node:net
// had buffered first), rx-only sockets end with a plain FIN.
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import * as ktls from '../../lib/index.js';
import { constants } from '../../lib/native/constants.js';
import { loopbackPair, readAll, sessionKeys } from '../helpers/pair.js';

const OPTS: ktls.UpgradeOptions = { fallback: 'userspace' };

t.test('a tx-only socket delivers raw bytes, buffered ones first, and seals what it sends', async (t) => {
  const [raw, peer] = await loopbackPair();
  const keys = sessionKeys('TLSv1.2', 'aes-128-gcm');
  raw.write('plain before ');
  peer.pause();
  await new Promise<void>((resolve) => peer.once('readable', () => resolve()));
  await sleep(10);
  // allowHalfOpen: our side keeps sending after the peer's FIN.
  const sock = await ktls.upgrade(peer, { version: 'TLSv1.2', cipher: 'aes-128-gcm', tx: keys.b.tx! }, { ...OPTS, allowHalfOpen: true });
  const reading = readAll(sock);
  const wire = readAll(raw);
  raw.end('and after');
  t.equal((await reading).toString(), 'plain before and after');
  sock.end('sealed');
  const opener = new ktls.RecordOpener('TLSv1.2', 'aes-128-gcm', keys.ba);
  opener.push(await wire);
  const data = opener.next();
  t.equal(data?.data.toString(), 'sealed');
  t.same(opener.next()?.data, Buffer.from([1, 0]), 'then close_notify');
});

t.test('an rx-only socket ends with a FIN and no error', async (t) => {
  const [raw, peer] = await loopbackPair();
  const keys = sessionKeys('TLSv1.3', 'aes-128-gcm');
  const sock = await ktls.upgrade(peer, { version: 'TLSv1.3', cipher: 'aes-128-gcm', rx: keys.b.rx! }, OPTS);
  let error: Error | undefined;
  sock.on('error', (e) => (error = e));
  const closed = new Promise((r) => sock.once('close', r));
  const sealer = new ktls.RecordSealer('TLSv1.3', 'aes-128-gcm', keys.ab);
  const wire = readAll(raw);
  raw.write(
    Buffer.concat([...sealer.seal(constants().RECORD_APPLICATION_DATA, Buffer.from('hi')), ...sealer.seal(constants().RECORD_ALERT, Buffer.from([1, 0]))]),
  );
  t.equal((await readAll(sock)).toString(), 'hi');
  t.equal((await wire).length, 0, 'the peer got a FIN and nothing else');
  await closed;
  t.equal(error, undefined);
});
