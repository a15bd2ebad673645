// The quick soak (bench/soak.ts): concurrent connections through
// ktls.createServer with a tenth of the clients misbehaving, sequential
// connections for the RSS and fd slopes, and memory per idle connection.
// `npm run soak` is the full run behind docs/reliability.md.
import t from 'tap';
import { QUICK, runSoak } from '../../bench/soak.js';
import { HOSTILE_BOUNDS, HOSTILE_KINDS, withinBounds } from '../../bench/soak-hostile.js';
import { requireKtls } from '../helpers/kernel.js';

t.test('quick soak: no byte lost under load with misbehaving clients, every connection closed, fds flat; hostile peers within bounds', async (t) => {
  await requireKtls(t);
  const r = await runSoak(QUICK, (line) => t.comment(line));
  const c = r.concurrency;
  t.same(c.broken, [], `all ${c.wellBehaved} well-behaved connections intact (${c.bytesChecked} bytes checked)`);
  t.equal(c.intact, c.wellBehaved);
  t.equal(c.closedByServer, c.misbehaving.reset + c.misbehaving.stall + c.misbehaving.garbage, 'every misbehaving client was dealt with and closed');
  t.equal(c.kernelSockets, c.serverSockets, 'every server socket ran in the kernel');
  t.ok(c.misbehaving.stall === 0 || (c.tlsClientErrors.ERR_TLS_HANDSHAKE_TIMEOUT ?? 0) >= c.misbehaving.stall, 'stalled handshakes ended by handshakeTimeout');
  t.equal(c.fdsAfter, c.fdsBefore, 'open fds back at their baseline after the concurrent phase');
  const s = r.sequential;
  const first = s.samples[1];
  const last = s.samples[s.samples.length - 1];
  t.equal(last.fds, first.fds, `fds flat over ${s.connections} sequential connections (${first.fds} → ${last.fds})`);
  t.ok(
    last.heapKiB - first.heapKiB < 8 * 1024,
    `heap grew by less than 8 MiB over ${s.connections} connections (${(last.heapKiB - first.heapKiB).toFixed(0)} KiB)`,
  );
  t.ok(
    last.arrayBuffersKiB - first.arrayBuffersKiB < 2 * 1024,
    `ArrayBuffers grew by less than 2 MiB (${(last.arrayBuffersKiB - first.arrayBuffersKiB).toFixed(0)} KiB)`,
  );
  t.equal(r.idle.ktls.kernel, r.idle.ktls.connections + 1, 'the idle ktls connections are kernel sockets');
  t.same(
    r.hostile.map((h) => h.kind),
    HOSTILE_KINDS,
    'every hostile kind ran',
  );
  for (const h of r.hostile) t.same(withinBounds(h), [], `hostile ${h.kind}: within bounds (${JSON.stringify(HOSTILE_BOUNDS)})`);
});
