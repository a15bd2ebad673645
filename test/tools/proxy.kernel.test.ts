// proxy(): what the plain side sends around the moment proxy() takes it over, under kernel TLS.
import t from 'tap';
import { randomBytes, randomInt } from 'node:crypto';
import * as net from 'node:net';
import * as ktls from '../../lib/index.js';
import { requireKtls } from '../helpers/kernel.js';
import { readAll, sha256, upgradedPair } from '../helpers/pair.js';
import { portOf } from '../helpers/tls.js';

t.before(async () => {
  await requireKtls(t);
});

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Whether `socket` emits 'end' within 5 s (it was already in the kernel, so it comes on the next poll). */
function ends(socket: net.Socket): Promise<boolean> {
  if (socket.readableEnded) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 5000);
    socket.once('end', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

t.test('proxy delivers every byte the plain side sends before and while it starts, once and in order', async (t) => {
  for (let run = 0; run < 20; run++) {
    const data = randomBytes(256 * 1024);
    // Many small writes from the moment of connecting, spread over many event-loop turns.
    const backend = net.createServer({ allowHalfOpen: true }, (sock) => {
      void (async () => {
        for (let off = 0; off < data.length; await turn()) {
          for (let i = 0; i < 20 && off < data.length; i++) {
            const n = randomInt(1, 300);
            sock.write(data.subarray(off, off + n));
            off += n;
          }
        }
        sock.end();
      })();
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', () => resolve()));
    const [a, b] = await upgradedPair('TLSv1.3', 'aes-128-gcm');
    const plain = net.connect({ port: portOf(backend), host: '127.0.0.1', allowHalfOpen: true });
    await new Promise((resolve) => plain.once('connect', resolve));
    while (plain.readableLength === 0) await turn(); // node:net holds some of it when proxy() starts
    const got = readAll(a);
    const proxied = ktls.proxy(b, plain);
    a.end();
    const result = await proxied;
    t.equal(sha256(await got), sha256(data), `run ${run}: the TLS peer got every byte once, in order`);
    t.equal(result.toTls, data.length, `run ${run}: toTls counts every byte`);
    t.ok(await ends(plain), `run ${run}: afterwards node:net reads the plain socket again (its EOF arrives as 'end')`);
    plain.destroy();
    backend.close();
  }
});
