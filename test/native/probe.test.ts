// probe() reports what this kernel really does: on a kTLS kernel the AES-GCM
// core installs both ways and /proc/net/tls_stat exists; elsewhere the ULP is
// missing with ENOENT.
import t from 'tap';
import * as ktls from '../../lib/index.js';

t.test('probe() matches what upgrade() can do on this kernel', async (t) => {
  const caps = await ktls.probe();
  t.comment(`kernel ${caps.kernelRelease}: ulp=${caps.ulp} ${caps.ulpError ?? ''}`);
  if (caps.ulp) {
    for (const v of ktls.VERSIONS) {
      for (const c of ['aes-128-gcm', 'aes-256-gcm'] as const) {
        t.match(
          caps.ciphers.find((r) => r.version === v && r.cipher === c),
          { tx: true, rx: true },
          `${v} ${c} installs both ways`,
        );
      }
    }
    t.equal(caps.ciphers.length, ktls.VERSIONS.length * ktls.CIPHER_NAMES.length, 'every version × cipher was tried');
    t.type(caps.stats?.TlsCurrTxSw, 'number', '/proc/net/tls_stat was read');
    t.type(caps.txZerocopyRo, 'boolean');
  } else {
    t.equal(caps.ulpError, 'ENOENT', 'no tls ULP: ENOENT');
    t.same(caps.ciphers, [], 'no cipher rows without the ULP');
  }
});
