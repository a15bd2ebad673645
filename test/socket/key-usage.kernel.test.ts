// Key usage limits under kernel TLS (RFC 8446 §5.5): where the kernel rekeys
// (6.14+), TLS 1.3 replaces a TX key near its limit and asks the peer to replace
// an RX one; where it cannot (older kernels, TLS 1.2), a warning, then a clean
// close with ERR_KTLS_KEY_LIMIT before the limit.
import t from 'tap';
import { requireKtls } from '../helpers/kernel.js';
import { asksPeerBeforeLimit, closesBeforeLimit, rekeysBeforeLimit } from '../helpers/key-usage.js';

const opts = { fallback: 'error' } as const;

t.test('TLS 1.3 near the limit: rekeyed where the kernel can, else closed cleanly (kernel records)', async (t) => {
  const caps = await requireKtls(t);
  t.comment(`this kernel ${caps.rekey ? 'has' : 'lacks'} kTLS rekey`);
  if (caps.rekey) {
    await t.test('TX: our own KeyUpdate', (t) => rekeysBeforeLimit(t, opts));
    await t.test('RX: the peer is asked to update', (t) => asksPeerBeforeLimit(t, opts));
  } else {
    await t.test('no rekey: warning, then close_notify and ERR_KTLS_KEY_LIMIT', (t) => closesBeforeLimit(t, 'TLSv1.3', opts));
  }
});

t.test('TLS 1.2 near the limit: a warning, then close_notify and ERR_KTLS_KEY_LIMIT (kernel records)', async (t) => {
  await requireKtls(t);
  await closesBeforeLimit(t, 'TLSv1.2', opts);
});
