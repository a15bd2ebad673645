// tls.Server/https.Server and ktls's servers side by side on kernel records: see raw-connection.ts.
import t from 'tap';
import { requireKtls } from '../helpers/kernel.js';
import { rawConnection } from './raw-connection.js';

void t.test("the 'connection' socket and emit('connection') as on node:tls (kernel records)", async (t) => {
  await requireKtls(t);
  await rawConnection(t, true);
});
