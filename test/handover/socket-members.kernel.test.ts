// The TLSSocket / net.Socket members a KtlsSocket carries over from the
// handshake, as node:tls reports them, with the kernel carrying the records.
import t from 'tap';
import { requireKtls } from '../helpers/kernel.js';
import { clientMembers, serverMembers } from '../helpers/members.js';

t.test('a client KtlsSocket: ALPN, SNI, addresses, protocol, cipher, flow control and stream events as node:tls', async (t) => {
  await requireKtls(t);
  await clientMembers(t, true);
});

t.test('a server KtlsSocket: authorized and authorizationError of the client certificate as tls.Server', async (t) => {
  await requireKtls(t);
  await serverMembers(t, true);
});
