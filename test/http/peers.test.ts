// curl and openssl s_client against node:tls and ktls on userspace records (this host): see peers.ts.
import t from 'tap';
import { peers } from './peers.js';

process.on('warning', () => undefined); // KTLS_FALLBACK: this host has no kTLS

void t.test('peers nobody here wrote, as with node:tls (userspace records)', (t) => peers(t, false));
