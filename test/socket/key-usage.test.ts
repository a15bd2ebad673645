// Key usage limits on userspace records (RFC 8446 §5.5): TLS 1.3 rekeys before
// the limit on its own (TX) or asks the peer to (RX); TLS 1.2 warns, then
// closes cleanly before it. Kernel records: key-usage.kernel.test.ts.
import t from 'tap';
import { asksPeerBeforeLimit, closesBeforeLimit, rekeysBeforeLimit } from '../helpers/key-usage.js';

const opts = { kernel: false } as const;
t.test('TLS 1.3: a TX key near its limit is replaced by a KeyUpdate of our own, and data flows on', (t) => rekeysBeforeLimit(t, opts));
t.test('TLS 1.3: a connection that crosses the margin mid-life (100 records before it, 600 writes) rekeys too', (t) => rekeysBeforeLimit(t, opts, -100, 600));
t.test('TLS 1.3: an RX key near its limit: we ask the peer to update (update_requested)', (t) => asksPeerBeforeLimit(t, opts));
t.test('TLS 1.2: a warning before the limit, then close_notify and ERR_KTLS_KEY_LIMIT', (t) => closesBeforeLimit(t, 'TLSv1.2', opts));
