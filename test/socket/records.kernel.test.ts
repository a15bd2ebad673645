// Control records are ordinary read results: close_notify ends, alerts destroy
// with the alert's name, handshake records become events, a forged record is
// answered with bad_record_mac, and a missing close_notify is a truncation.
import t from 'tap';
import * as ktls from '../../lib/index.js';
import { constants } from '../../lib/native/constants.js';
import { requireKtls } from '../helpers/kernel.js';
import { errorOf, loopbackPair, readAll, sessionKeys, upgradedPair } from '../helpers/pair.js';

const V = 'TLSv1.3';
const C = 'aes-256-gcm';

async function rawAndKernel(version: ktls.TlsVersion = V, cipher: ktls.CipherName = C, options: ktls.UpgradeOptions = {}) {
  const [raw, peer] = await loopbackPair();
  const keys = sessionKeys(version, cipher);
  const sock = await ktls.upgrade(peer, keys.b, options);
  return { raw, sock, sealer: new ktls.RecordSealer(version, cipher, keys.ab), opener: new ktls.RecordOpener(version, cipher, keys.ba) };
}

t.test('close_notify ends the readable side and end() answers with our own close_notify', async (t) => {
  await requireKtls(t);
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const [a, b] = await upgradedPair(version, 'aes-128-gcm');
    const bDone = readAll(b);
    a.end('bye');
    t.equal((await bDone).toString(), 'bye', `${version}: data before close_notify delivered`);
    t.equal(await readAll(a).then((x) => x.length), 0, `${version}: b answered close_notify and a ended cleanly`);
  }
});

t.test('the close_notify we send is a real alert record on the wire', async (t) => {
  await requireKtls(t);
  const { raw, sock, opener } = await rawAndKernel();
  sock.end();
  const wire = await readAll(raw);
  opener.push(wire);
  const rec = opener.next();
  t.same(rec && { type: rec.type, data: [...rec.data] }, { type: constants().RECORD_ALERT, data: [1, 0] });
  t.equal(opener.next(), null, 'nothing after close_notify');
});

t.test('a fatal alert from the peer destroys the socket with the alert name', async (t) => {
  await requireKtls(t);
  const { raw, sock, sealer } = await rawAndKernel();
  const err = errorOf(sock);
  sock.resume();
  raw.write(Buffer.concat(sealer.seal(constants().RECORD_ALERT, Buffer.from([2, 40]))));
  const e = await err;
  t.equal(e.code, 'ERR_KTLS_ALERT');
  t.equal(e.alert, 'handshake_failure');
  t.equal(sock.destroyed, true);
  raw.destroy();
});

t.test('a handshake record becomes a handshake event and data keeps flowing', async (t) => {
  await requireKtls(t);
  const { raw, sock, sealer } = await rawAndKernel();
  const k = constants();
  const msg = Buffer.from([4, 0, 0, 3, 1, 2, 3]); // NewSessionTicket-shaped
  const seen = new Promise<Buffer>((resolve) => sock.once('handshake', resolve));
  raw.write(
    Buffer.concat([
      ...sealer.seal(k.RECORD_APPLICATION_DATA, Buffer.from('before ')),
      ...sealer.seal(k.RECORD_HANDSHAKE, msg),
      ...sealer.seal(k.RECORD_APPLICATION_DATA, Buffer.from('after')),
      ...sealer.seal(k.RECORD_ALERT, Buffer.from([1, 0])),
    ]),
  );
  raw.end();
  const [data, hs] = await Promise.all([readAll(sock), seen]);
  t.ok(hs.equals(msg), 'handshake bytes delivered as the event');
  t.equal(data.toString(), 'before after');
});

t.test('a corrupted record: earlier data delivered, then a typed bad_record_mac error; alertSent tells whether the alert went out', async (t) => {
  await requireKtls(t);
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const { raw, sock, sealer, opener } = await rawAndKernel(version, 'aes-128-gcm');
    const k = constants();
    const good = Buffer.concat(sealer.seal(k.RECORD_APPLICATION_DATA, Buffer.from('good')));
    const bad = Buffer.concat(sealer.seal(k.RECORD_APPLICATION_DATA, Buffer.from('forged')));
    bad[bad.length - 3] ^= 0x40;
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    const err = errorOf(sock);
    const rawSeen: Buffer[] = [];
    raw.on('data', (c: Buffer) => rawSeen.push(c));
    const rawDone = new Promise<string>((resolve) =>
      raw.once('end', () => resolve('end')).once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error')),
    );
    raw.write(Buffer.concat([good, bad]));
    const e = (await err) as ktls.KtlsAlertError;
    t.equal(e.code, 'ERR_KTLS_BAD_RECORD', `${version}: typed error`);
    t.equal(e.alert, 'bad_record_mac');
    t.equal(Buffer.concat(chunks).toString(), 'good', `${version}: the good record before it was delivered`);
    const ending = await rawDone;
    opener.push(Buffer.concat(rawSeen));
    const rec = rawSeen.length ? opener.next() : null;
    if (e.alertSent) {
      t.same(rec && [rec.type, ...rec.data], [k.RECORD_ALERT, 2, 20], `${version}: the peer received a fatal bad_record_mac alert`);
    } else {
      // Linux refuses every send on a kTLS socket whose RX failed (sk_err stays EBADMSG).
      t.equal(rec, null, `${version}: kernel refused to send the alert, and the peer saw no record`);
      t.ok(ending === 'ECONNRESET' || ending === 'end', `${version}: the peer saw the connection end (${ending})`);
    }
    t.comment(`${version}: alert ${e.alertSent ? 'sent' : 'refused by the kernel'}; peer saw ${ending}`);
    raw.destroy();
  }
});

t.test('EOF without close_notify ends the stream as on node:tls, and is a truncation error with allowTruncation false', async (t) => {
  await requireKtls(t);
  const k = constants();
  const strict = await rawAndKernel(V, C, { allowTruncation: false });
  const err = errorOf(strict.sock);
  strict.sock.resume();
  strict.raw.end(Buffer.concat(strict.sealer.seal(k.RECORD_APPLICATION_DATA, Buffer.from('x'))));
  t.equal((await err).code, 'ERR_KTLS_TRUNCATED');

  const lax = await rawAndKernel(V, C);
  lax.raw.end(Buffer.concat(lax.sealer.seal(k.RECORD_APPLICATION_DATA, Buffer.from('x'))));
  t.equal((await readAll(lax.sock)).toString(), 'x', 'by default a plain FIN ends the stream');
  t.equal(lax.sock.closeNotifyReceived, false, 'closeNotifyReceived is false');
});

t.test('a forged record already buffered at upgrade, then half a header: rejected at once with bad_record_mac sent, not at handshakeTimeout', async (t) => {
  await requireKtls(t);
  const k = constants();
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const [raw, peer] = await loopbackPair();
    const keys = sessionKeys(version, 'aes-128-gcm');
    const sealer = new ktls.RecordSealer(version, 'aes-128-gcm', keys.ab);
    const bad = Buffer.concat(sealer.seal(k.RECORD_APPLICATION_DATA, Buffer.from('forged')));
    bad[bad.length - 3] ^= 0x40;
    const next = Buffer.concat(sealer.seal(k.RECORD_APPLICATION_DATA, Buffer.from('never completed')));
    peer.pause();
    raw.write(Buffer.concat([bad, next.subarray(0, 3)]));
    await new Promise((resolve) => peer.once('readable', resolve));
    const rawSeen: Buffer[] = [];
    raw.on('data', (c: Buffer) => rawSeen.push(c));
    const rawEnded = new Promise<string>((resolve) =>
      raw.once('end', () => resolve('end')).once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error')),
    );
    const started = Date.now();
    const e = (await ktls.upgrade(peer, keys.b, { handshakeTimeout: 5000 }).then(
      () => null,
      (err: unknown) => err,
    )) as ktls.KtlsAlertError | null;
    t.match(
      e,
      { code: 'ERR_KTLS_BAD_RECORD', alert: 'bad_record_mac', alertSent: true },
      `${version}: the bad record is the error, not the wait for the next one`,
    );
    t.ok(Date.now() - started < 5000, `${version}: rejected before handshakeTimeout (${Date.now() - started} ms)`);
    t.equal(await rawEnded, 'end', `${version}: the connection was closed after the alert`);
    const opener = new ktls.RecordOpener(version, 'aes-128-gcm', keys.ba);
    opener.push(Buffer.concat(rawSeen));
    const rec = opener.next();
    t.same(rec && [rec.type, ...rec.data], [k.RECORD_ALERT, 2, 20], `${version}: the peer received a fatal bad_record_mac alert`);
    raw.destroy();
  }
});
