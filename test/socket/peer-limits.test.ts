// A peer's records that carry no data are bounded (userspace records here;
// kernel records in peer-limits.kernel.test.ts): over the limit it gets
// unexpected_message and the socket ERR_KTLS_PEER_LIMIT, as OpenSSL caps them.
import t from 'tap';
import * as ktls from '../../lib/index.js';
import { constants } from '../../lib/native/constants.js';
import { flood, keyUpdateFlood, repliesCoalesce } from '../helpers/peer-limits.js';

const opts = { kernel: false } as const;
const k = constants();

for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
  t.test(`${version}: 32 empty records pass, 33 are refused (userspace records)`, async (t) => {
    await flood(t, version, { type: k.RECORD_APPLICATION_DATA, body: Buffer.alloc(0), count: 32, limited: false }, opts);
    await flood(t, version, { type: k.RECORD_APPLICATION_DATA, body: Buffer.alloc(0), count: 33, limited: true }, opts);
  });
}

t.test('TLSv1.2: 5 warning alerts pass, 6 are refused (userspace records)', async (t) => {
  const warning = Buffer.from([1, 100]); // no_renegotiation
  await flood(t, 'TLSv1.2', { type: k.RECORD_ALERT, body: warning, count: 5, limited: false }, opts);
  await flood(t, 'TLSv1.2', { type: k.RECORD_ALERT, body: warning, count: 6, limited: true }, opts);
});

t.test('TLSv1.3: user_canceled alerts count as warnings (userspace records)', async (t) => {
  await flood(t, 'TLSv1.3', { type: k.RECORD_ALERT, body: Buffer.from([1, 90]), count: 6, limited: true }, opts);
});

t.test('the limits are options: 100 empty records under { emptyRecords: 100 } pass', async (t) => {
  await flood(
    t,
    'TLSv1.3',
    { type: k.RECORD_APPLICATION_DATA, body: Buffer.alloc(0), count: 100, limited: false },
    { ...opts, peerLimits: { emptyRecords: 100 } },
  );
});

t.test('32 KeyUpdates pass, 33 are refused (userspace records)', async (t) => {
  await keyUpdateFlood(t, 32, false, opts);
  await keyUpdateFlood(t, 33, true, opts);
});

t.test('1000 KeyUpdate requests while the reply cannot be sent get one reply (userspace records)', (t) => repliesCoalesce(t, 1000, opts));

t.test('peerLimits is validated before anything is touched', async (t) => {
  const { loopbackPair, sessionKeys } = await import('../helpers/pair.js');
  const [c, s] = await loopbackPair();
  const keys = sessionKeys('TLSv1.3', 'aes-128-gcm');
  const cases: Array<[unknown, string]> = [
    [null, 'ERR_INVALID_ARG_TYPE'],
    [{ keyUpdates: '3' }, 'ERR_INVALID_ARG_TYPE'],
    [{ emptyRecords: -1 }, 'ERR_INVALID_ARG_VALUE'],
    [{ windowMs: 0 }, 'ERR_INVALID_ARG_VALUE'],
    [{ warningAlerts: 1.5 }, 'ERR_INVALID_ARG_VALUE'],
  ];
  for (const [peerLimits, code] of cases)
    await t.rejects(
      ktls.upgrade(c, keys.a, { kernel: false, peerLimits: peerLimits as ktls.PeerLimits }),
      { code },
      `peerLimits ${JSON.stringify(peerLimits)}: ${code}`,
    );
  t.equal(c.destroyed, false, 'the socket is left as it was');
  c.destroy();
  s.destroy();
});
