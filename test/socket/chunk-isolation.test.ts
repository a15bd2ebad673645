// Each received chunk owns its memory (userspace records here; kernel records in
// chunk-isolation.kernel.test.ts): nothing of another connection, or of this
// one's past, is reachable from it, and moving it away affects nobody.
import t from 'tap';
import { transferOneChunk, twoConnections } from '../helpers/isolation.js';

for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
  t.test(`${version}: no chunk's .buffer reaches another connection's plaintext or its own past (userspace records)`, (t) =>
    twoConnections(t, version, 'aes-128-gcm', { kernel: false }),
  );
  t.test(`${version}: transferring a chunk's ArrayBuffer stalls no other connection (userspace records)`, (t) =>
    transferOneChunk(t, version, 'aes-128-gcm', { kernel: false }),
  );
}
