// A peer's records that carry no data are bounded under kernel RX too: over the
// limit it gets unexpected_message and the socket ERR_KTLS_PEER_LIMIT. KeyUpdate
// floods and reply coalescing need kernel rekey (6.14+); before it the first
// KeyUpdate already ends the connection (keyupdate.kernel.test.ts).
import t from 'tap';
import { constants } from '../../lib/native/constants.js';
import { requireKtls } from '../helpers/kernel.js';
import { rekeyablePair } from '../helpers/keyupdate.js';
import { flood, keyUpdateFlood, repliesCoalesce } from '../helpers/peer-limits.js';

const opts = { fallback: 'error' } as const;

// kTLS's recvmsg reads on past an empty application-data record (it returns
// only once it has copied something): the flood never reaches ktls, and costs
// the kernel what the same bytes of data would.
for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
  t.test(`${version}: kernel RX consumes 1000 empty records itself; the data after them arrives`, async (t) => {
    await requireKtls(t);
    const k = constants();
    await flood(t, version, { type: k.RECORD_APPLICATION_DATA, body: Buffer.alloc(0), count: 1000, limited: false }, opts);
  });
}

t.test('TLSv1.2: 5 warning alerts pass, 6 are refused (kernel records)', async (t) => {
  await requireKtls(t);
  const k = constants();
  const warning = Buffer.from([1, 100]);
  await flood(t, 'TLSv1.2', { type: k.RECORD_ALERT, body: warning, count: 5, limited: false }, opts);
  await flood(t, 'TLSv1.2', { type: k.RECORD_ALERT, body: warning, count: 6, limited: true }, opts);
});

t.test('KeyUpdate floods and reply coalescing (kernel records, where the kernel rekeys)', async (t) => {
  const caps = await requireKtls(t);
  t.comment(`this kernel ${caps.rekey ? 'has' : 'lacks'} kTLS rekey`);
  if (!caps.rekey) {
    // No flood to bound: the first KeyUpdate cannot be sent (nor followed).
    const [a, b] = await rekeyablePair('aes-128-gcm', opts);
    for (const s of [a, b]) s.on('error', () => undefined);
    await t.rejects(a.updateKeys(), { code: 'ERR_KTLS_REKEY_UNSUPPORTED' }, 'this kernel cannot rekey: updateKeys() rejects');
    a.destroy();
    b.destroy();
    return;
  }
  await keyUpdateFlood(t, 32, false, opts);
  await keyUpdateFlood(t, 33, true, opts);
  await repliesCoalesce(t, 200, opts);
});
