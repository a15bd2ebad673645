// tls.Server/https.Server and ktls's servers side by side on userspace records (this host): see raw-connection.ts.
import t from 'tap';
import { rawConnection } from './raw-connection.js';

process.on('warning', () => undefined); // KTLS_FALLBACK: this host has no kTLS

void t.test("the 'connection' socket and emit('connection') as on node:tls (userspace records)", (t) => rawConnection(t, false));
