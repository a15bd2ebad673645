// Handshake flights leave coalesced: a flight is not sent one record per TCP segment.
import t from 'tap';
import * as ktls from '../../lib/index.js';
import { CERTS, portOf } from '../helpers/tls.js';

process.on('warning', () => undefined); // KTLS_FALLBACK on hosts without kTLS

async function handshake(version: 'TLSv1.2' | 'TLSv1.3', coalesce: boolean): Promise<{ server: ktls.KtlsSocket; client: ktls.KtlsSocket }> {
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert, minVersion: version, maxVersion: version, ktls: { coalesce } });
  const accepted = new Promise<ktls.KtlsSocket>((resolve) => server.once('secureConnection', resolve));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const client = await ktls.connectAsync({ host: '127.0.0.1', port: portOf(server), ca: CERTS.ca, servername: 'localhost', ktls: { coalesce } });
  const s = await accepted;
  server.close();
  return { server: s, client };
}

for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
  t.test(`${version}: the server's flights fill segments instead of one per record`, async (t) => {
    const coalesced = await handshake(version, true);
    const perRecord = await handshake(version, false);
    const c = coalesced.server.handshakeTcp;
    const p = perRecord.server.handshakeTcp;
    t.ok(c && p, 'TCP_INFO counters were taken at the switch');
    // TLS 1.2: two server flights (ServerHello…Done, CCS+Finished); TLS 1.3: one flight, then the tickets.
    t.equal(c!.dataSegmentsOut, 2, `coalesced: 2 data segments (${JSON.stringify(c)})`);
    t.ok(p!.dataSegmentsOut >= 6, `record per segment: ${p!.dataSegmentsOut} data segments`);
    for (const s of [coalesced, perRecord]) {
      s.client.destroy();
      s.server.destroy();
    }
  });
}
