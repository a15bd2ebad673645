// A peer that floods records carrying no data (empty records, warning alerts,
// KeyUpdates), shared by the host suite (userspace records) and the kTLS suite.
import type { Test } from 'tap';
import * as ktls from '../../lib/index.js';
import type { CipherName, TlsVersion } from '../../lib/native/constants.js';
import { constants } from '../../lib/native/constants.js';
import { RecordOpener, RecordSealer } from '../../lib/record/layer.js';
import { errorOf, loopbackPair, sessionKeys } from './pair.js';
import { rekeyablePair } from './keyupdate.js';
import { openAll } from '../../lib/verify/util.js';

const CIPHER: CipherName = 'aes-128-gcm';

/** A ktls socket whose peer is a plain net.Socket that seals its own records. */
async function sealingPeer(version: TlsVersion, options: ktls.UpgradeOptions) {
  const [c, s] = await loopbackPair();
  const keys = sessionKeys(version, CIPHER);
  const sock = await ktls.upgrade(s, keys.b, options);
  const wire: Buffer[] = [];
  c.on('data', (d: Buffer) => wire.push(d));
  c.on('error', () => undefined);
  const sealer = new RecordSealer(version, CIPHER, keys.ab);
  const received = (): Array<{ type: number; data: Buffer }> => {
    const opener = new RecordOpener(version, CIPHER, keys.ba);
    opener.push(Buffer.concat(wire));
    return openAll(opener);
  };
  return { c, sock, sealer, received };
}

/**
 * `count` records of `type` (body `body`) then `tail` as application data.
 * `limited`: the socket must refuse the flood (unexpected_message, ERR_KTLS_PEER_LIMIT); else deliver `tail`.
 */
export async function flood(
  t: Test,
  version: TlsVersion,
  what: { type: number; body: Buffer; count: number; limited: boolean },
  options: ktls.UpgradeOptions,
): Promise<void> {
  const { c, sock, sealer, received } = await sealingPeer(version, options);
  const records = [];
  for (let i = 0; i < what.count; i++) records.push(...sealer.seal(what.type, what.body));
  records.push(...sealer.seal(constants().RECORD_APPLICATION_DATA, Buffer.from('tail')));
  c.write(Buffer.concat(records));
  if (what.limited) {
    sock.resume();
    const err = await errorOf(sock);
    t.equal(err.code, 'ERR_KTLS_PEER_LIMIT', `${what.count} records: destroyed with ERR_KTLS_PEER_LIMIT`);
    t.equal(err.alert, 'unexpected_message', 'naming the alert sent');
    await new Promise((resolve) => c.once('close', resolve));
    const got = received();
    t.same(
      got.map((r) => [r.type, ...r.data]),
      [[constants().RECORD_ALERT, 2, 10]],
      'the peer reads one fatal unexpected_message alert, then the close',
    );
  } else {
    const data = await new Promise<string>((resolve) => sock.once('data', (d: Buffer) => resolve(d.toString())));
    t.equal(data, 'tail', `${what.count} records within the limit: the data after them arrives`);
    t.equal(sock.destroyed, false, 'and the socket lives on');
  }
  sock.destroy();
  c.destroy();
}

/** `count` KeyUpdates from a KtlsSocket peer: over the limit the receiver refuses them. */
export async function keyUpdateFlood(t: Test, count: number, limited: boolean, options: ktls.UpgradeOptions): Promise<void> {
  const [a, b] = await rekeyablePair(CIPHER, options);
  const aErr = new Promise<(Error & { code?: string; alert?: string }) | null>((resolve) => (a.once('error', resolve), a.once('close', () => resolve(null))));
  const updates = Array.from({ length: count }, () => a.updateKeys().catch(() => undefined));
  await Promise.all(updates);
  a.write('after');
  if (limited) {
    a.resume();
    b.resume();
    const err = await errorOf(b);
    t.equal(err.code, 'ERR_KTLS_PEER_LIMIT', `${count} KeyUpdates: destroyed with ERR_KTLS_PEER_LIMIT`);
    t.equal(err.alert, 'unexpected_message', 'naming the alert sent');
    const seen = await aErr;
    t.equal(seen?.code, 'ERR_KTLS_ALERT', 'the flooding peer reads a fatal alert');
    t.equal(seen?.alert, 'unexpected_message', 'unexpected_message');
  } else {
    const data = await new Promise<string>((resolve) => b.once('data', (d: Buffer) => resolve(d.toString())));
    t.equal(data, 'after', `${count} KeyUpdates within the limit: data flows on`);
  }
  a.destroy();
  b.destroy();
}

/**
 * KeyUpdates with update_requested arriving while our reply cannot go out (the
 * requester is not reading) share one reply, as OpenSSL's do: memory stays
 * bounded however many arrive.
 */
export async function repliesCoalesce(t: Test, requests: number, options: ktls.UpgradeOptions): Promise<void> {
  const [a, b] = await rekeyablePair(CIPHER, { ...options, peerLimits: { keyUpdates: requests } });
  // b's writes back up behind a peer that does not read, so replies wait in b's queue.
  a.pause();
  b.resume();
  const block = Buffer.alloc(1 << 20);
  while (b.write(block));
  let replies = 0;
  let rxUpdates = 0;
  b.on('keyUpdate', (u: { direction: string }) => (u.direction === 'tx' ? replies++ : rxUpdates++));
  await Promise.all(Array.from({ length: requests }, () => a.updateKeys({ requestPeer: true })));
  await new Promise<void>((resolve) => {
    const check = (): void => void (rxUpdates >= requests ? resolve() : setTimeout(check, 10));
    check();
  });
  t.equal(rxUpdates, requests, `b followed all ${requests} KeyUpdates`);
  t.equal(replies, 0, 'no reply went out yet: b is blocked behind unread data');
  const aFollowed = new Promise<void>((resolve) => a.on('keyUpdate', (u: { direction: string }) => u.direction === 'rx' && resolve()));
  a.resume();
  await aFollowed;
  const echo = new Promise<string>((resolve) => a.on('data', (d: Buffer) => d.toString().endsWith('done') && resolve('done')));
  b.write('done');
  await echo;
  t.equal(replies, 1, `${requests} requests, one reply`);
  a.destroy();
  b.destroy();
}
