// createSecureHttp2Server against node:http2, userspace records (the host): see h2.ts.
import t from 'tap';
import { h2Scenarios } from './h2.js';

void t.test('HTTP/2 on ktls as on node:http2 (userspace records)', (t) => h2Scenarios(t, false));
