// Known kernel defects under a real kTLS kernel: where probe() confirms one, the
// suite it breaks stays on userspace records (with the reason on the socket)
// and spliceTo() copies; where the kernel is past the defect, its detector run
// anyway finds nothing, and the suite goes to the kernel.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { KERNEL_DEFECTS, detectDefect } from '../../lib/native/defects.js';
import { createPipe } from '../../lib/tools/pipe.js';
import { capabilities, requireKtls } from '../helpers/kernel.js';
import { loopbackPair, readAll, readBytes, sha256, sessionKeys } from '../helpers/pair.js';
import { CERTS, listening, portOf } from '../helpers/tls.js';

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
          // The row names its first confirmed defect; that one is the reason given.
          const first = can.defects.find((x) => x.area === 'records' && x.version === version && x.cipher === cipher)!;
          t.match(row.defect, first.id, 'probe() marks the row');
          await t.rejects(
            ktls.upgrade(c, keys.a),
            { code: 'ERR_KTLS_UNAVAILABLE', hint: /fallback: "userspace"/ },
            "fallback 'error': refused, with what to do",
          );
          t.equal(c.destroyed, false, 'the net.Socket is left as it was');
          const [a, b] = await Promise.all([ktls.upgrade(c, keys.a, { fallback: 'userspace' }), ktls.upgrade(s, keys.b, { fallback: 'userspace' })]);
          t.equal(a.kernel, false, 'kernel === false');
          t.match(a.fallbackReason, `known kernel defect ${first.id}`, 'fallbackReason names the defect');
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

t.test(
  'ktls.connect() negotiating TLS_AES_128_CCM_SHA256: userspace records and a KTLS_FALLBACK naming the defect where this kernel has one, kernel records where not',
  async (t) => {
    const can = await requireKtls(t);
    const defect = can.ciphers.find((r) => r.version === 'TLSv1.3' && r.cipher === 'aes-128-ccm')?.defect;
    const warnings: Array<Error & { code?: string }> = [];
    const onWarning = (w: Error & { code?: string }): number => warnings.push(w);
    process.on('warning', onWarning);
    t.teardown(() => void process.off('warning', onWarning));
    const server = tls.createServer({ key: CERTS.key, cert: CERTS.cert, minVersion: 'TLSv1.3', ciphers: 'TLS_AES_128_CCM_SHA256' }, (s) => s.pipe(s));
    server.listen(0, '127.0.0.1');
    await listening(server);
    t.teardown(() => void server.close());
    const sock = await ktls.connectAsync({ port: portOf(server), host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca, ciphers: 'TLS_AES_128_CCM_SHA256' });
    t.equal(sock.getCipher()?.standardName, 'TLS_AES_128_CCM_SHA256', 'the CCM suite was negotiated');
    const got = readBytes(sock, 5);
    sock.write('hello');
    t.equal((await got).toString(), 'hello', 'echo');
    await new Promise((r) => setImmediate(r));
    const fallback = warnings.filter((w) => w.code === 'KTLS_FALLBACK');
    if (defect) {
      t.equal(sock.kernel, false, `known defect (${defect}): userspace records`);
      t.match(sock.fallbackReason, /known kernel defect/, 'fallbackReason names it');
      t.equal(fallback.length, 1, 'one KTLS_FALLBACK');
      t.match(fallback[0]?.message, /known kernel defect/, 'the warning carries the reason');
    } else {
      t.equal(sock.kernel, true, 'kernel records');
      t.equal(fallback.length, 0, 'no KTLS_FALLBACK');
    }
    sock.destroy();
  },
);
