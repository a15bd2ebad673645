// node:tls parity after the switch on this kernel (userspace records where it has
// no kTLS), and for a suite kTLS cannot carry (node:tls keeps the records).
import t from 'tap';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { VARIANTS, bothRoles, sameSession } from '../helpers/parity.js';
import { CERTS, listening, portOf } from '../helpers/tls.js';

for (const variant of VARIANTS) {
  t.test(`${variant.version} ${variant.ciphers}: the KtlsSocket answers as its node:tls peer does`, async (t) => {
    const caps = await ktls.probe();
    await bothRoles(t, variant, caps.ulp);
  });
}

t.test('a TLS 1.2 CBC suite carried by node:tls: the exporter is node:tls own', async (t) => {
  let serverSide: ktls.KtlsSocket | undefined;
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert }, (s) => {
    serverSide = s;
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await listening(server);
  const client = tls.connect({
    port: portOf(server),
    host: '127.0.0.1',
    servername: 'localhost',
    ca: CERTS.ca,
    maxVersion: 'TLSv1.2',
    ciphers: 'ECDHE-ECDSA-AES128-SHA',
  });
  await new Promise((r) => client.once('secureConnect', r));
  client.write('x');
  await new Promise((r) => client.once('data', r));
  t.equal(serverSide?.cipher, null, 'node:tls carries the records');
  if (serverSide) sameSession(t, serverSide, client, 'CBC ktls server');
  client.end();
  await new Promise((r) => client.once('close', r));
  server.close();
});
