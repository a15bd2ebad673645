// connect()/createServer() on whatever kernel runs the suite: on one without
// kTLS the connection keeps working in userspace (kernel === false, one warning),
// or fails with ERR_KTLS_UNAVAILABLE when fallback is 'error'.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { readAll, readBytes, sha256 } from '../helpers/pair.js';
import { CERTS, listening, portOf } from '../helpers/tls.js';

t.test('ktls server and ktls client work on this kernel, in the kernel where it can', async (t) => {
  const caps = await ktls.probe();
  const warnings: string[] = [];
  const messages: string[] = [];
  process.on('warning', (w: Error & { code?: string }) => (warnings.push(w.code ?? ''), messages.push(w.message)));
  const sockets: ktls.KtlsSocket[] = [];
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert }, (s) => {
    sockets.push(s);
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await listening(server);
  for (let i = 0; i < 2; i++) {
    const payload = randomBytes(200_000);
    const sock = await ktls.connectAsync({ port: portOf(server), host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca });
    t.equal(sock.kernel, caps.ulp, `kernel ${caps.kernelRelease}: client kernel === ${caps.ulp}`);
    if (caps.ulp) t.equal(sock.fallbackReason, undefined, 'no fallbackReason on kernel records');
    else t.match(sock.fallbackReason, /no TLS upper-layer protocol .*ENOENT/, 'fallbackReason: the kernel has no tls ULP (ENOENT)');
    t.equal(sock.getProtocol(), 'TLSv1.3');
    // Echo before FIN: a peer whose FIN lands before the server's switch is served
    // in userspace by design (TCP_ULP answers ENOTCONN in CLOSE_WAIT), with a warning.
    const got = readBytes(sock, payload.length);
    sock.write(payload);
    t.equal(sha256(await got), sha256(payload), 'echo intact');
    const ended = readAll(sock);
    sock.resume(); // readBytes left it paused
    sock.end();
    await ended;
  }
  t.equal(sockets[0]?.kernel, caps.ulp, 'server socket likewise');
  await new Promise((r) => setImmediate(r));
  t.equal(warnings.filter((w) => w === 'KTLS_FALLBACK').length, caps.ulp ? 0 : 1, 'one fallback warning per process (per reason), only without kTLS');
  if (!caps.ulp) t.match(messages[warnings.indexOf('KTLS_FALLBACK')], /no TLS upper-layer protocol .*ENOENT/, 'the warning carries the reason');
  server.close();
});

t.test("fallback: 'error' rejects where the kernel cannot, and works where it can", async (t) => {
  const caps = await ktls.probe();
  const server = tls.createServer({ key: CERTS.key, cert: CERTS.cert }, (s) => s.pipe(s));
  server.listen(0, '127.0.0.1');
  await listening(server);
  const attempt = ktls.connectAsync({ port: portOf(server), host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca, ktls: { fallback: 'error' } });
  if (caps.ulp) {
    const sock = await attempt;
    t.equal(sock.kernel, true);
    sock.destroy();
  } else {
    await t.rejects(attempt, { code: 'ERR_KTLS_UNAVAILABLE' });
  }
  server.close();
});
