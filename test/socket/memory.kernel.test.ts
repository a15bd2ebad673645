// Closed kTLS sockets are garbage: nothing native keeps a KtlsSocket, its
// handle or its read buffers alive once it is destroyed.
import t from 'tap';
import { liveServerConnections, socketCycles } from '../helpers/gc.js';
import { requireKtls } from '../helpers/kernel.js';

t.test('1000 upgrade/write/destroy cycles with kernel records: sockets are collected, buffers released', async (t) => {
  await requireKtls(t);
  const { collected, growth } = await socketCycles(1000, { fallback: 'error' });
  t.comment(`collected ${collected.finalized} of ${collected.tracked} sockets; arrayBuffers grew ${(growth / 1024).toFixed(0)} KiB`);
  t.ok(collected.finalized >= collected.tracked * 0.99, `≥ 99% of ${collected.tracked} sockets collected (${collected.finalized})`);
  t.ok(growth < 2 * 1024 * 1024, `arrayBuffers grew by less than 2 MiB (${growth} bytes)`);
});

t.test('a live server connection keeps nothing of its handshake: node:tls sockets and net.Sockets are collected (kernel records)', async (t) => {
  await requireKtls(t);
  const { collected, live, close } = await liveServerConnections(20, { fallback: 'error' });
  t.equal(collected.tracked, 40, '20 node:tls sockets and 20 net.Sockets tracked');
  t.equal(collected.finalized, collected.tracked, `all of them collected while the 20 KtlsSockets live (${collected.finalized})`);
  t.ok(
    live.every((s) => s.kernel),
    'all 20 on kernel records',
  );
  close();
});
