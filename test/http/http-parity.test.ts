// https.Server and KtlsHttpsServer side by side on userspace records (this host): see http-parity.ts.
import t from 'tap';
import { httpParity } from './http-parity.js';

process.on('warning', () => undefined); // KTLS_FALLBACK: this host has no kTLS

void t.test('HTTP paths as on https.Server (userspace records)', (t) => httpParity(t, false));
