// TLS 1.3 KeyUpdate under kernel TLS: rekey where the kernel has it (6.14+), a typed error where it does not.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { tlsStats } from '../../lib/probe.js';
import { requireKtls } from '../helpers/kernel.js';
import { rekeyablePair } from '../helpers/keyupdate.js';
import { errorOf, readBytes, sha256 } from '../helpers/pair.js';

t.test('KeyUpdate both ways between two kTLS sockets', async (t) => {
  const caps = await requireKtls(t);
  for (const cipher of ['aes-128-gcm', 'aes-256-gcm', 'chacha20-poly1305'] as const) {
    const [a, b] = await rekeyablePair(cipher);
    t.equal(a.kernel && b.kernel, true, `${cipher}: both ends in the kernel`);
    const one = randomBytes(40_000);
    const gotOne = readBytes(b, one.length);
    a.write(one);
    t.equal(sha256(await gotOne), sha256(one));
    if (!caps.rekey) {
      // 6.1–6.13: the KeyUpdate goes out, then the kernel refuses the second TLS_TX.
      const failed = errorOf(a);
      await t.rejects(a.updateKeys({ requestPeer: true }), { code: 'ERR_KTLS_REKEY_UNSUPPORTED', errno: -16, syscall: 'setsockopt(TLS_TX)' }, `${cipher}: initiating fails with EBUSY`);
      t.match(await failed, { code: 'ERR_KTLS_REKEY_UNSUPPORTED' }, 'and the connection is closed');
      t.match(await errorOf(b), { code: 'ERR_KTLS_REKEY_UNSUPPORTED', errno: -16, syscall: 'setsockopt(TLS_RX)' }, `${cipher}: the receiver fails with a typed error, not a stall`);
      continue;
    }
    const before = (await tlsStats()) ?? {};
    await a.updateKeys({ requestPeer: true });
    const two = randomBytes(70_000);
    a.write(two);
    t.equal(sha256(await readBytes(b, two.length)), sha256(two), `${cipher}: a → b under the next keys`);
    const back = randomBytes(30_000);
    const gotBack = readBytes(a, back.length);
    b.write(back);
    t.equal(sha256(await gotBack), sha256(back), `${cipher}: b → a after answering the request`);
    const after = (await tlsStats()) ?? {};
    const delta = (name: string): number => (after[name] ?? 0) - (before[name] ?? 0);
    t.equal(delta('TlsTxRekeyOk'), 2, 'tls_stat: two TX rekeys (a, then b answering)');
    t.equal(delta('TlsRxRekeyOk'), 2, 'tls_stat: two RX rekeys');
    t.equal(delta('TlsRxRekeyReceived'), 2, 'tls_stat: the kernel saw both KeyUpdate messages');
    a.destroy();
    b.destroy();
  }
});
