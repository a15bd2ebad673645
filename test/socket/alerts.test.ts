// A peer that breaks the protocol after the switch gets the alert OpenSSL
// would send, then a close: the userspace record layer here (the kernel's
// answers are checked by ktls-verify's handling group on every kernel).
import t from 'tap';
import { constants, type TlsVersion } from '../../lib/native/constants.js';
import * as ktls from '../../lib/index.js';
import { ALERT_CASES, expectAlert } from '../../lib/verify/checks/alerts.js';
import { loopbackPair, sessionKeys } from '../helpers/pair.js';

async function userspacePair(version: TlsVersion) {
  const [raw, peer] = await loopbackPair();
  const keys = sessionKeys(version, 'aes-128-gcm');
  const sock = await ktls.upgrade(peer, keys.b, { kernel: false });
  return { sock, raw, sealer: new ktls.RecordSealer(version, 'aes-128-gcm', keys.ab), opener: new ktls.RecordOpener(version, 'aes-128-gcm', keys.ba) };
}

for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
  for (const c of ALERT_CASES) {
    if (c.versions && !c.versions.includes(version)) continue;
    t.test(`${version}: ${c.title}`, async (t) => {
      const { sock, raw, sealer, opener } = await userspacePair(version);
      const signal = AbortSignal.timeout(10_000);
      await expectAlert(
        { equal: (a, b, m) => void t.equal(a, b, m), ok: (c, m) => void t.ok(c, m), observe: () => undefined, signal },
        c,
        version,
        sock,
        raw,
        sealer,
        opener,
      );
      raw.destroy();
    });
  }
}

t.test('TLSv1.3: user_canceled is not fatal; data after it arrives and close_notify ends the stream', async (t) => {
  const k = constants();
  const { sock, raw, sealer } = await userspacePair('TLSv1.3');
  const chunks: Buffer[] = [];
  sock.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise<string>(
    (resolve) => (sock.once('end', () => resolve('end')), sock.once('error', (e: Error & { code?: string }) => resolve(e.code ?? e.message))),
  );
  raw.write(
    Buffer.concat([
      ...sealer.seal(k.RECORD_ALERT, Buffer.from([1, 90])),
      ...sealer.seal(k.RECORD_APPLICATION_DATA, Buffer.from('still here')),
      ...sealer.seal(k.RECORD_ALERT, Buffer.from([1, 0])),
    ]),
  );
  t.equal(await ended, 'end');
  t.equal(Buffer.concat(chunks).toString(), 'still here');
  raw.destroy();
});
