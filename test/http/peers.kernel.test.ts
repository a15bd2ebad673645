// curl and openssl s_client against node:tls and ktls on kernel records: see peers.ts.
import t from 'tap';
import { requireKtls } from '../helpers/kernel.js';
import { peers } from './peers.js';

void t.test('peers nobody here wrote, as with node:tls (kernel records)', async (t) => {
  await requireKtls(t);
  await peers(t, true);
});
