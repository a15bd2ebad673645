// tls.TLSSocket members after the switch on this kernel (userspace records
// where it has no kTLS): local certificate, ticket, counters, resumption,
// resetAndDestroy(), setMaxSendFragment(), handshake-only members, and a
// post-handshake CertificateRequest refused.
import t from 'tap';
import { capabilities } from '../helpers/kernel.js';
import { clientMembers, handshakeOnlyMembers, postHandshakeAuth, resetAndDestroy, serverMembers, ticketParser } from '../helpers/tls-members.js';

const kernel = async (): Promise<boolean> => (await capabilities()).ulp;

for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
  t.test(`${version} client: getCertificate, getTLSTicket, bytes counters, getCipher/getProtocol, resumption`, async (t) => {
    await clientMembers(t, version, await kernel());
  });
  t.test(`${version} server: getCertificate/getX509Certificate are its own, no ticket`, async (t) => {
    await serverMembers(t, version, await kernel());
  });
  t.test(`${version}: the ticket inside a session blob is node:tls's getTLSTicket()`, async (t) => {
    await ticketParser(t, version);
  });
}

t.test('resetAndDestroy(): the peer gets ECONNRESET', async (t) => {
  await resetAndDestroy(t, await kernel());
});

t.test('setMaxSendFragment() is the record size limit; handshake-only members throw typed errors', async (t) => {
  const can = await capabilities();
  await handshakeOnlyMembers(t, can.ulp, can.txMaxPayloadLen);
});

t.test('a TLS 1.3 CertificateRequest after the switch: unexpected_message and ERR_KTLS_POST_HANDSHAKE_AUTH', async (t) => {
  await postHandshakeAuth(t, false);
});
