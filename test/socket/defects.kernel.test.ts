// Known kernel defects under a real kTLS kernel: where probe() confirms one, the
// suite it breaks stays on userspace records (with the reason on the socket)
// and spliceTo() copies; where the kernel is past the defect, its detector run
// anyway finds nothing, and the suite goes to the kernel.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as ktls from '../../lib/index.js';
import { KERNEL_DEFECTS, detectDefect } from '../../lib/native/defects.js';
import { createPipe } from '../../lib/tools/pipe.js';
import { capabilities, requireKtls } from '../helpers/kernel.js';
import { loopbackPair, readAll, sha256, sessionKeys } from '../helpers/pair.js';

for (const d of KERNEL_DEFECTS.filter((x) => x.area === 'records')) {
  for (const version of d.versions) {
    for (const cipher of d.ciphers) {
      t.test(`${d.id}, ${version} ${cipher}: confirmed → userspace records with the reason; absent → kernel records`, async (t) => {
        const can = await requireKtls(t);
        const row = can.ciphers.find((r) => r.version === version && r.cipher === cipher);
        if (!row?.tx || !row.rx) {
          t.ok(row?.error, `${version} ${cipher} does not install here at all (${row?.error}): nothing to carry`);
          return;
        }
        const found = can.defects.find((x) => x.id === d.id && x.version === version && x.cipher === cipher);
        const [c, s] = await loopbackPair();
        const keys = sessionKeys(version, cipher);
        if (found) {
          t.comment(`${d.id} confirmed: ${found.observed}`);
          t.match(row.defect, d.id, 'probe() marks the row');
          await t.rejects(ktls.upgrade(c, keys.a), { code: 'ERR_KTLS_UNAVAILABLE' }, "fallback 'error': refused");
          t.equal(c.destroyed, false, 'the net.Socket is left as it was');
          const [a, b] = await Promise.all([ktls.upgrade(c, keys.a, { fallback: 'userspace' }), ktls.upgrade(s, keys.b, { fallback: 'userspace' })]);
          t.equal(a.kernel, false, 'kernel === false');
          t.match(a.fallbackReason, new RegExp(`known kernel defect ${d.id}`), 'fallbackReason names the defect');
          const data = randomBytes(100_000);
          const got = readAll(b);
          a.end(data);
          t.equal(sha256(await got), sha256(data), 'the data arrives intact on userspace records');
          b.destroy();
        } else {
          t.equal(await detectDefect(d.id, version, cipher), null, `this kernel does not have ${d.id} (detector run anyway)`);
          t.equal(row.defect, undefined, 'probe() does not mark the row');
          const [a, b] = await Promise.all([ktls.upgrade(c, keys.a), ktls.upgrade(s, keys.b)]);
          t.equal(a.kernel && b.kernel, true, 'kernel records');
          t.equal(a.fallbackReason, undefined, 'no fallbackReason');
          const data = randomBytes(100_000);
          const got = readAll(b);
          a.end(data);
          t.equal(sha256(await got), sha256(data), 'the data arrives intact on kernel records');
          b.destroy();
        }
      });
    }
  }
}

t.test('spliceTo(): splice(2) where the kernel consumes what it splices, recvmsg and copy where it does not; every byte once', async (t) => {
  const can = await capabilities();
  await requireKtls(t);
  const found = can.defects.find((x) => x.area === 'splice');
  if (found) t.comment(`splice defect confirmed: ${found.id}: ${found.observed}`);
  else t.equal(await detectDefect('splice-peek', 'TLSv1.3', 'aes-128-gcm'), null, 'a second splice finds nothing left (detector run anyway)');
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const [c, s] = await loopbackPair();
    const keys = sessionKeys(version, 'aes-128-gcm');
    const [a, b] = await Promise.all([ktls.upgrade(c, keys.a), ktls.upgrade(s, keys.b, { allowHalfOpen: true })]);
    t.equal(b.kernelDirections.rx, true, `${version}: kernel RX`);
    const [r, w] = createPipe();
    const reader = new net.Socket({ fd: r, readable: true, writable: false });
    const out = readAll(reader);
    const data = randomBytes(2 * 1024 * 1024);
    a.end(data);
    const n = await b.spliceTo(w);
    fs.closeSync(w);
    t.equal(n, data.length, `${version}: spliceTo moved every byte once`);
    t.equal(sha256(await out), sha256(data), `${version}: the pipe holds the data`);
    b.destroy();
  }
});
