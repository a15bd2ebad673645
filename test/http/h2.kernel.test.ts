// createSecureHttp2Server against node:http2 with the kernel carrying the records: see h2.ts.
import t from 'tap';
import { requireKtls } from '../helpers/kernel.js';
import { h2Scenarios } from './h2.js';

void t.test('HTTP/2 on ktls as on node:http2 (kernel records)', async (t) => {
  await requireKtls(t);
  await h2Scenarios(t, true);
});
