// TLS 1.3 tickets that arrive after the switch become 'session' events with
// blobs ktls.connect and tls.connect resume with (userspace records here where
// the kernel has no kTLS).
import t from 'tap';
import * as ktls from '../../lib/index.js';
import { capabilities } from '../helpers/kernel.js';
import { lateTickets, malformedTicket } from '../helpers/session.js';

for (const suite of ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384'] as const) {
  t.test(`${suite}: tickets after the switch become 'session' events that resume`, async (t) => {
    const can = await capabilities();
    await lateTickets(t, suite, false, can.ulp, can.rekey);
  });
  t.test(`${suite}: tickets after a server KeyUpdate node:tls never saw still become sessions`, async (t) => {
    const can = await capabilities();
    await lateTickets(t, suite, true, can.ulp, can.rekey);
  });
}

t.test('a malformed NewSessionTicket after the switch: decode_error, no session', async (t) => {
  await malformedTicket(t, (await capabilities()).ulp);
});

t.test('closed clients are collected: nothing roots the node:tls state kept for their tickets', async (t) => {
  const { Collected, collect } = await import('../helpers/gc.js');
  const { readBytes } = await import('../helpers/pair.js');
  const { CERTS, listening, portOf } = await import('../helpers/tls.js');
  const tls = await import('node:tls');
  const server = tls.createServer({ key: CERTS.key, cert: CERTS.cert, minVersion: 'TLSv1.3' }, (s) => {
    s.on('error', () => undefined);
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await listening(server);
  const collected = new Collected();
  let sessions = 0;
  const once = async (): Promise<void> => {
    const c = await ktls.connectAsync({ port: portOf(server), host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca });
    c.on('session', () => sessions++);
    c.write('ping');
    await readBytes(c, 4);
    collected.track(c);
    c.destroy();
    await new Promise((r) => c.once('close', r));
  };
  for (let i = 0; i < 50; i++) await once();
  await collect(collected);
  t.ok(sessions > 0, `tickets arrived as 'session' events (${sessions})`);
  t.ok(collected.finalized >= collected.tracked * 0.98, `≥ 98% of ${collected.tracked} clients collected (${collected.finalized})`);
  server.close();
});
