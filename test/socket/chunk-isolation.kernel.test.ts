// Each chunk read from kTLS RX owns its memory: nothing of another connection,
// or of this one's past, is reachable from it, and moving it away affects nobody.
import t from 'tap';
import { transferOneChunk, twoConnections } from '../helpers/isolation.js';
import { requireKtls } from '../helpers/kernel.js';

for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
  t.test(`${version}: no chunk's .buffer reaches another connection's plaintext or its own past (kernel records)`, async (t) => {
    await requireKtls(t);
    await twoConnections(t, version, 'aes-128-gcm', { fallback: 'error' });
  });
  t.test(`${version}: transferring a chunk's ArrayBuffer stalls no other connection (kernel records)`, async (t) => {
    await requireKtls(t);
    await transferOneChunk(t, version, 'aes-128-gcm', { fallback: 'error' });
  });
}
