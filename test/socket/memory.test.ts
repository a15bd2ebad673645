// Closed sockets are garbage: nothing native keeps a KtlsSocket, its handle or
// its read buffers alive once it is destroyed (userspace records here; the
// kernel path in memory.kernel.test.ts).
import t from 'tap';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { Collected, arrayBuffers, collect, liveServerConnections, socketCycles } from '../helpers/gc.js';
import { loopbackPair, readBytes, sessionKeys } from '../helpers/pair.js';
import { CERTS, listening, portOf } from '../helpers/tls.js';

t.test('1000 upgrade/write/destroy cycles on userspace records: sockets are collected, buffers released', async (t) => {
  const { collected, growth } = await socketCycles(1000, { kernel: false });
  t.comment(`collected ${collected.finalized} of ${collected.tracked} sockets; arrayBuffers grew ${(growth / 1024).toFixed(0)} KiB`);
  t.ok(collected.finalized >= collected.tracked * 0.99, `≥ 99% of ${collected.tracked} sockets collected (${collected.finalized})`);
  t.ok(growth < 2 * 1024 * 1024, `arrayBuffers grew by less than 2 MiB (${growth} bytes)`);
});

t.test('a TLSSocket from createTLSSocket keeps only what the switch needs, however much it carried', async (t) => {
  const server = tls.createServer({ key: CERTS.key, cert: CERTS.cert }, (s) => s.pipe(s));
  server.listen(0, '127.0.0.1');
  await listening(server);
  const raw = net.connect({ port: portOf(server), host: '127.0.0.1' });
  await new Promise((resolve) => raw.once('connect', resolve));
  const tlsSocket = ktls.createTLSSocket(raw, { servername: 'localhost', ca: CERTS.ca });
  await new Promise((resolve) => tlsSocket.once('secureConnect', resolve));
  const before = await arrayBuffers();
  const total = 32 << 20;
  const chunk = Buffer.alloc(64 << 10, 7);
  let echoed = 0;
  const allBack = new Promise<void>((resolve) => tlsSocket.on('data', (d: Buffer) => (echoed += d.length) >= total && resolve()));
  for (let sent = 0; sent < total; sent += chunk.length) if (!tlsSocket.write(chunk)) await new Promise((resolve) => tlsSocket.once('drain', resolve));
  await allBack;
  tlsSocket.removeAllListeners('data');
  const growth = (await arrayBuffers()) - before;
  t.comment(`${total >> 20} MiB each way through node:tls: arrayBuffers grew ${(growth / 1024).toFixed(0)} KiB`);
  t.ok(growth < 4 << 20, `arrayBuffers grew by less than 4 MiB (${growth} bytes)`);
  const sock = await ktls.upgradeTLSSocket(tlsSocket);
  const back = readBytes(sock, 5);
  sock.write('after');
  t.equal((await back).toString(), 'after', 'the switch still works');
  sock.destroy();
  server.close();
});

t.test('a live KtlsSocket keeps nothing of its upgrade: the net.Socket and the bytes it had buffered are collected', async (t) => {
  const collected = new Collected();
  // In a function of its own, so that the test's frame holds no net.Socket either.
  const pair = async (): Promise<ktls.KtlsSocket[]> => {
    const [c, s] = await loopbackPair();
    const keys = sessionKeys('TLSv1.3', 'aes-128-gcm');
    collected.track(c);
    collected.track(s);
    return Promise.all([ktls.upgrade(c, keys.a, { kernel: false }), ktls.upgrade(s, keys.b, { kernel: false })]);
  };
  const live: ktls.KtlsSocket[] = [];
  for (let i = 0; i < 20; i++) live.push(...(await pair()));
  await collect(collected);
  t.equal(
    collected.finalized,
    collected.tracked,
    `all ${collected.tracked} upgraded net.Sockets collected while their KtlsSockets live (${collected.finalized})`,
  );
  const back = readBytes(live[1], 2);
  live[0].write('ok');
  t.equal((await back).toString(), 'ok', 'the KtlsSockets still work');
  for (const k of live) k.destroy();
});

t.test('a live server connection keeps nothing of its handshake: node:tls sockets and net.Sockets are collected (userspace records)', async (t) => {
  const { collected, live, close } = await liveServerConnections(20, { kernel: false });
  t.equal(collected.tracked, 40, '20 node:tls sockets and 20 net.Sockets tracked');
  t.equal(collected.finalized, collected.tracked, `all of them collected while the 20 KtlsSockets live (${collected.finalized})`);
  t.ok(live.length === 20 && live.every((s) => !s.destroyed), 'the 20 KtlsSockets are open');
  close();
});
