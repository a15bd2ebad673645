// TLS 1.3 tickets after the switch onto kernel TLS (see session.test.ts).
import t from 'tap';
import { requireKtls } from '../helpers/kernel.js';
import { lateTickets, malformedTicket } from '../helpers/session.js';

for (const suite of ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384'] as const) {
  t.test(`${suite}: tickets after the switch become 'session' events that resume`, async (t) => {
    const can = await requireKtls(t);
    await lateTickets(t, suite, false, true, can.rekey);
  });
  t.test(`${suite}: tickets after a server KeyUpdate node:tls never saw still become sessions`, async (t) => {
    const can = await requireKtls(t);
    await lateTickets(t, suite, true, true, can.rekey);
  });
}
t.test('a malformed NewSessionTicket after the switch: decode_error, no session', async (t) => {
  await requireKtls(t);
  await malformedTicket(t, true);
});
