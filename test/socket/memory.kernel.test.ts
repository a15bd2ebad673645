// Closed kTLS sockets are garbage: nothing native keeps a KtlsSocket, its
// handle or its read buffers alive once it is destroyed.
import t from 'tap';
import { socketCycles } from '../helpers/gc.js';
import { requireKtls } from '../helpers/kernel.js';

t.test('1000 upgrade/write/destroy cycles with kernel records: sockets are collected, buffers released', async (t) => {
  await requireKtls(t);
  const { collected, growth } = await socketCycles(1000, { fallback: 'error' });
  t.comment(`collected ${collected.finalized} of ${collected.tracked} sockets; arrayBuffers grew ${(growth / 1024).toFixed(0)} KiB`);
  t.ok(collected.finalized >= collected.tracked * 0.99, `≥ 99% of ${collected.tracked} sockets collected (${collected.finalized})`);
  t.ok(growth < 2 * 1024 * 1024, `arrayBuffers grew by less than 2 MiB (${growth} bytes)`);
});
