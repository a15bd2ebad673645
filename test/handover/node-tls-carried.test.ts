// A client that negotiates a suite neither kTLS nor the userspace record layer
// can carry (TLS 1.2 CBC, which node:tls offers by default) is served like
// node:tls serves it: node:tls keeps its records, behind the KtlsSocket API.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { readAll, sha256 } from '../helpers/pair.js';
import { CERTS, listening, portOf } from '../helpers/tls.js';

const CBC = { ciphers: 'ECDHE-ECDSA-AES128-SHA', maxVersion: 'TLSv1.2' as const };
const fdCount = (): number => fs.readdirSync('/proc/self/fd').length;

t.test('ktls.createServer serves a TLS 1.2 CBC client through node:tls, with the KtlsSocket API', async (t) => {
  const baseline = fdCount();
  const errors: string[] = [];
  let serverSide: ktls.KtlsSocket | undefined;
  const file = path.join(os.tmpdir(), `ktls-cbc-${process.pid}`);
  const body = randomBytes(200_000);
  fs.writeFileSync(file, body);
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert, ...CBC, ktls: { allowHalfOpen: true } }, (s) => {
    serverSide = s;
    s.on('error', (e: Error & { code?: string }) => errors.push(e.code ?? e.message));
    void readAll(s).then(async (got) => {
      await s.sendFile(file);
      s.end(got);
    });
  });
  server.on('tlsClientError', (e: Error & { code?: string }) => errors.push(e.code ?? e.message));
  server.listen(0, '127.0.0.1');
  await listening(server);
  const client = tls.connect({ port: portOf(server), host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca, ...CBC });
  await new Promise((resolve) => client.once('secureConnect', resolve));
  t.equal(client.getCipher().name, 'ECDHE-ECDSA-AES128-SHA', 'the client negotiated a CBC suite');
  const payload = randomBytes(300_000);
  const got = readAll(client);
  client.end(payload);
  const all = await got;
  t.equal(sha256(all), sha256(Buffer.concat([body, payload])), 'sendFile then the echo, intact');
  t.match(serverSide, { kernel: false, cipher: null, version: 'TLSv1.2' }, 'a KtlsSocket whose records node:tls protects');
  t.same(serverSide?.kernelDirections, { tx: false, rx: false });
  t.equal(serverSide?.getCipher()?.name, 'ECDHE-ECDSA-AES128-SHA', 'getCipher() names the suite');
  t.same(errors, [], 'no error on either side');
  await new Promise((resolve) => server.close(resolve));
  fs.unlinkSync(file);
  for (const until = Date.now() + 2000; fdCount() > baseline && Date.now() < until;) await new Promise((r) => setTimeout(r, 20));
  t.equal(fdCount(), baseline, 'every fd released');
});

t.test('ktls.connect to a server that only speaks a CBC suite works through node:tls', async (t) => {
  const server = tls.createServer({ key: CERTS.key, cert: CERTS.cert, ...CBC }, (s) => s.pipe(s));
  server.listen(0, '127.0.0.1');
  await listening(server);
  const sock = await ktls.connectAsync({ port: portOf(server), host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca, ...CBC });
  t.match(sock, { kernel: false, cipher: null });
  const payload = randomBytes(100_000);
  const got = readAll(sock);
  sock.end(payload);
  t.equal(sha256(await got), sha256(payload), 'echo intact');
  await t.rejects(
    ktls.connectAsync({ port: portOf(server), host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca, ...CBC, ktls: { fallback: 'error' } }),
    { code: 'ERR_KTLS_UNSUPPORTED' },
    "fallback: 'error' refuses the suite",
  );
  server.close();
});
