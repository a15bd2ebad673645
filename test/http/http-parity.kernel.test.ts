// https.Server and KtlsHttpsServer side by side on kernel records: see http-parity.ts.
import t from 'tap';
import { requireKtls } from '../helpers/kernel.js';
import { httpParity } from './http-parity.js';

void t.test('HTTP paths as on https.Server (kernel records)', async (t) => {
  await requireKtls(t);
  await httpParity(t, true);
});
