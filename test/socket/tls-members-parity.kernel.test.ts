// tls.TLSSocket members after the switch onto kernel TLS (see tls-members-parity.test.ts).
import t from 'tap';
import { requireKtls } from '../helpers/kernel.js';
import { clientMembers, handshakeOnlyMembers, postHandshakeAuth, resetAndDestroy, serverMembers } from '../helpers/tls-members.js';

for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
  t.test(`${version} client: getCertificate, getTLSTicket, bytes counters, getCipher/getProtocol, resumption`, async (t) => {
    await requireKtls(t);
    await clientMembers(t, version, true);
  });
  t.test(`${version} server: getCertificate/getX509Certificate are its own, no ticket`, async (t) => {
    await requireKtls(t);
    await serverMembers(t, version, true);
  });
}

t.test('resetAndDestroy(): the peer gets ECONNRESET (kernel records)', async (t) => {
  await requireKtls(t);
  await resetAndDestroy(t, true);
});

t.test('setMaxSendFragment() is the kernel record size limit (false without TLS_TX_MAX_PAYLOAD_LEN); handshake-only members throw typed errors', async (t) => {
  const can = await requireKtls(t);
  await handshakeOnlyMembers(t, true, can.txMaxPayloadLen);
});

t.test('a TLS 1.3 CertificateRequest after the switch under kernel RX: unexpected_message and ERR_KTLS_POST_HANDSHAKE_AUTH', async (t) => {
  await requireKtls(t);
  await postHandshakeAuth(t, true);
});
