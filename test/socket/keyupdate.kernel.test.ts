// TLS 1.3 KeyUpdate under kernel TLS: rekey where the kernel has it (6.14+), a typed error where it does not.
import t from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import * as ktls from '../../lib/index.js';
import { CERTS, FIXTURES } from '../helpers/tls.js';
import { tlsStats } from '../../lib/native/probe.js';
import { carries, requireKtls } from '../helpers/kernel.js';
import { rekeyablePair } from '../helpers/keyupdate.js';
import { errorOf, loopbackPair, readBytes, sessionKeys, sha256 } from '../helpers/pair.js';

t.test('KeyUpdate both ways between two kTLS sockets', async (t) => {
  const caps = await requireKtls(t);
  t.comment(`this kernel ${caps.rekey ? 'has' : 'lacks'} kTLS rekey`);
  for (const cipher of ['aes-128-gcm', 'aes-256-gcm', 'chacha20-poly1305'] as const) {
    if (!carries(caps, 'TLSv1.3', cipher)) {
      // ChaCha20 before 5.11: the kernel cannot install it at all, so there is nothing to rekey in it.
      const [c, s] = await loopbackPair();
      await t.rejects(ktls.upgrade(c, sessionKeys('TLSv1.3', cipher).a), { code: 'ERR_KTLS_UNAVAILABLE' }, `${cipher}: this kernel cannot carry it`);
      t.equal(c.destroyed, false, 'the socket is left as it was');
      c.destroy();
      s.destroy();
      continue;
    }
    const [a, b] = await rekeyablePair(cipher);
    t.equal(a.kernel && b.kernel, true, `${cipher}: both ends in the kernel`);
    const one = randomBytes(40_000);
    const gotOne = readBytes(b, one.length);
    a.write(one);
    t.equal(sha256(await gotOne), sha256(one));
    if (!caps.rekey) {
      // 6.1–6.13: the KeyUpdate goes out, then the kernel refuses the second TLS_TX.
      const failed = errorOf(a);
      await t.rejects(
        a.updateKeys({ requestPeer: true }),
        { code: 'ERR_KTLS_REKEY_UNSUPPORTED', errno: -16, syscall: 'setsockopt(TLS_TX)' },
        `${cipher}: initiating fails with EBUSY`,
      );
      t.match(await failed, { code: 'ERR_KTLS_REKEY_UNSUPPORTED' }, 'and the connection is closed');
      t.match(
        await errorOf(b),
        { code: 'ERR_KTLS_REKEY_UNSUPPORTED', errno: -16, syscall: 'setsockopt(TLS_RX)' },
        `${cipher}: the receiver fails with a typed error, not a stall`,
      );
      continue;
    }
    const before = (await tlsStats()) ?? {};
    await a.updateKeys({ requestPeer: true });
    const two = randomBytes(70_000);
    a.write(two);
    t.equal(sha256(await readBytes(b, two.length)), sha256(two), `${cipher}: a → b under the next keys`);
    const back = randomBytes(30_000);
    const gotBack = readBytes(a, back.length);
    b.write(back);
    t.equal(sha256(await gotBack), sha256(back), `${cipher}: b → a after answering the request`);
    const after = (await tlsStats()) ?? {};
    const delta = (name: string): number => (after[name] ?? 0) - (before[name] ?? 0);
    t.equal(delta('TlsTxRekeyOk'), 2, 'tls_stat: two TX rekeys (a, then b answering)');
    t.equal(delta('TlsRxRekeyOk'), 2, 'tls_stat: two RX rekeys');
    t.equal(delta('TlsRxRekeyReceived'), 2, 'tls_stat: the kernel saw both KeyUpdate messages');
    a.destroy();
    b.destroy();
  }
});

t.test('openssl s_server sends KeyUpdate (K: update requested) to a ktls client', async (t) => {
  const caps = await requireKtls(t);
  const port = 20000 + Math.floor(Math.random() * 20000);
  const server = spawn(
    'openssl',
    [
      's_server',
      '-accept',
      `127.0.0.1:${port}`,
      '-tls1_3',
      '-naccept',
      '1',
      '-cert',
      path.join(FIXTURES, 'server.pem'),
      '-key',
      path.join(FIXTURES, 'server.key'),
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  t.teardown(() => server.kill());
  let serverOut = '';
  server.stdout.on('data', (d: Buffer) => (serverOut += d.toString()));
  let sock: ktls.KtlsSocket | undefined;
  for (let i = 0; i < 100 && !sock; i++) {
    sock = await ktls.connectAsync({ port, host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca }).catch(async () => {
      await new Promise((r) => setTimeout(r, 100));
      return undefined;
    });
  }
  t.equal(sock?.kernel, true, 'client socket in the kernel');
  const s = sock!;
  const updates: string[] = [];
  s.on('keyUpdate', (e: { direction: string; requested: boolean }) => updates.push(`${e.direction} ${e.requested}`));
  let received = '';
  s.on('data', (d: Buffer) => (received += d.toString())); // reading is what meets the KeyUpdate record
  const waitFor = async (what: () => boolean): Promise<void> => {
    for (let i = 0; i < 200 && !what(); i++) await new Promise((r) => setTimeout(r, 50));
  };
  server.stdin.write('K\n'); // s_server: send a KeyUpdate requesting ours
  if (!caps.rekey) {
    t.match(await errorOf(s), { code: 'ERR_KTLS_REKEY_UNSUPPORTED', syscall: 'setsockopt(TLS_RX)' }, 'a typed error naming the missing rekey, not a stall');
    return;
  }
  await waitFor(() => updates.length === 2);
  t.same(updates, ['rx true', 'tx false'], 'followed the server and answered with our own KeyUpdate');
  server.stdin.write('hello\n');
  await waitFor(() => received.includes('hello\n'));
  t.equal(received, 'hello\n', "data under the server's next key");
  s.write('ping-after-update\n');
  await waitFor(() => serverOut.includes('ping-after-update'));
  t.match(serverOut, 'ping-after-update', 'OpenSSL opened our records under our next key');
  s.destroy();
});
