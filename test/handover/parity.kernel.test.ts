// node:tls parity after the switch onto kernel TLS: exporters, Finished messages,
// certificates and the methods that cannot exist, against the node:tls peer.
import t from 'tap';
import { requireKtls } from '../helpers/kernel.js';
import { upgradedPair } from '../helpers/pair.js';
import { VARIANTS, bothRoles } from '../helpers/parity.js';

for (const variant of VARIANTS) {
  t.test(`${variant.version} ${variant.ciphers}: the KtlsSocket answers as its node:tls peer does`, async (t) => {
    await requireKtls(t);
    await bothRoles(t, variant, true);
  });
}

t.test('a bare upgrade() has no exporter secret and says so', async (t) => {
  await requireKtls(t);
  const [a, b] = await upgradedPair('TLSv1.3', 'aes-128-gcm');
  t.throws(() => a.exportKeyingMaterial(16, 'EXPERIMENTAL-ktls'), { code: 'ERR_KTLS_NO_EXPORTER' });
  t.equal(a.getFinished(), undefined);
  a.destroy();
  b.destroy();
});
