// The TLSSocket / net.Socket members a KtlsSocket carries over from the
// handshake, as node:tls reports them, over userspace records on this kernel.
import t from 'tap';
import * as ktls from '../../lib/index.js';
import { clientMembers, serverMembers } from '../helpers/members.js';

t.test('a client KtlsSocket: ALPN, SNI, addresses, protocol, cipher, flow control and stream events as node:tls', async (t) => {
  await clientMembers(t, (await ktls.probe()).ulp);
});

t.test('a server KtlsSocket: authorized and authorizationError of the client certificate as tls.Server', async (t) => {
  await serverMembers(t, (await ktls.probe()).ulp);
});
