// KtlsServer counts its connections as tls.Server counts TLSSockets: from
// accept until the KtlsSocket closes. getConnections(), close() waiting for
// them, maxConnections with 'drop', and 'connection' with the raw socket. On
// any kernel (userspace records without kTLS).
import t from 'tap';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { parity } from '../helpers/parity-log.js';
import { CERTS, listening, portOf } from '../helpers/tls.js';

const connections = (s: ktls.KtlsServer): Promise<number> => new Promise((resolve, reject) => s.getConnections((err, n) => (err ? reject(err) : resolve(n))));

const secure = async (port: number): Promise<tls.TLSSocket> => {
  const c = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca });
  await new Promise((resolve, reject) => c.once('secureConnect', resolve).once('error', reject));
  return c;
};

const until = async (cond: () => boolean | Promise<boolean>): Promise<void> => {
  for (const end = Date.now() + 5000; !(await cond()) && Date.now() < end;) await new Promise((r) => setTimeout(r, 10));
};

const gone = (s: { closed: boolean; once(ev: 'close', cb: () => void): unknown }): Promise<void> =>
  new Promise((resolve) => (s.closed ? resolve() : s.once('close', () => resolve())));

t.test("getConnections counts handshakes and KtlsSockets; close() calls back after the last one closes; 'connection' has the raw socket", async (t) => {
  const served: ktls.KtlsSocket[] = [];
  const raws: unknown[] = [];
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert }, (s) => {
    served.push(s);
    s.on('error', () => undefined);
    s.pipe(s);
  });
  server.on('connection', (raw) => raws.push(raw));
  let listened = 0;
  server.on('listening', () => listened++);
  t.equal(server.listening, false, 'not listening before listen()');
  server.listen(0, '127.0.0.1');
  await listening(server);
  t.equal(listened, 1, "'listening' once");
  t.equal(server.listening, true);
  t.match(server.address(), { address: '127.0.0.1', family: 'IPv4', port: portOf(server) });
  t.equal(await connections(server), 0, 'no connection yet');

  // A TCP connection that has not finished its handshake counts.
  const pending = net.connect({ port: portOf(server), host: '127.0.0.1' });
  await new Promise((resolve) => pending.once('connect', resolve));
  await until(() => raws.length === 1);
  t.equal(raws.length, 1, "'connection' for the TCP connection, before any handshake");
  t.ok(raws[0] instanceof net.Socket, "'connection' carries a net.Socket");
  t.equal(await connections(server), 1, 'a connection in handshake counts');

  const a = await secure(portOf(server));
  const b = await secure(portOf(server));
  await until(() => served.length === 2);
  t.equal(raws.length, 3, "'connection' per accepted connection");
  t.equal(served.length, 2);
  t.equal(await connections(server), 3, 'two KtlsSockets and one handshake');

  let closedAt = 0;
  const closeEvent = new Promise<void>((resolve) => server.once('close', () => resolve()));
  const closeCb = new Promise<Error | undefined>((resolve) => server.close((err) => resolve(err)));
  void closeEvent.then(() => (closedAt = Date.now()));
  t.equal(server.listening, false, 'close() stops listening at once');
  const refused = net.connect({ port: (raws[0] as net.Socket).localPort ?? 0, host: '127.0.0.1' });
  const refusal = await new Promise<NodeJS.ErrnoException>((resolve) => refused.once('error', resolve));
  t.equal(refusal.code, 'ECONNREFUSED', 'no new connection after close()');

  pending.destroy();
  await gone(raws[0] as net.Socket);
  await until(async () => (await connections(server)) === 2);
  t.equal(await connections(server), 2, 'the abandoned handshake no longer counts');
  a.end();
  await gone(served[0]);
  t.equal(await connections(server), 1, 'a closed KtlsSocket no longer counts');
  t.equal(closedAt, 0, "no 'close' while a KtlsSocket is open");
  const lastClosed = Date.now();
  b.end();
  await gone(served[1]);
  t.equal(await closeCb, undefined, 'close(callback) is called without an error');
  await closeEvent;
  t.ok(closedAt >= lastClosed, "'close' after the last KtlsSocket closed");
  t.equal(await connections(server), 0);
  parity(
    t,
    ['Server#getConnections', 'Server#close', 'Server@close', 'Server@connection', 'Server#listening', 'Server@listening', 'Server#address', 'Server#listen'],
    served[0],
  );
});

t.test('close(callback) on a server that is not listening calls back with ERR_SERVER_NOT_RUNNING, as net.Server', async (t) => {
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert });
  const err = await new Promise<Error | undefined>((resolve) => server.close(resolve));
  t.match(err, { code: 'ERR_SERVER_NOT_RUNNING' });
  parity(t, 'Server#close');
});

t.test("maxConnections: beyond it a connection is closed and 'drop' carries net.Server's data", async (t) => {
  const served: ktls.KtlsSocket[] = [];
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert }, (s) => {
    served.push(s);
    s.on('error', () => undefined);
    s.pipe(s);
  });
  server.maxConnections = 1;
  const drops: ktls.KtlsDropData[] = [];
  server.on('drop', (d: ktls.KtlsDropData) => drops.push(d));
  server.listen(0, '127.0.0.1');
  await listening(server);
  const a = await secure(portOf(server));
  await until(() => served.length === 1);
  const extra = net.connect({ port: portOf(server), host: '127.0.0.1' });
  extra.on('error', () => undefined);
  let extraPort: number | undefined;
  extra.once('connect', () => (extraPort = extra.localPort));
  await new Promise((resolve) => extra.once('close', resolve));
  t.equal(drops.length, 1, "one 'drop'");
  t.same(drops[0], {
    localAddress: '127.0.0.1',
    localPort: portOf(server),
    localFamily: 'IPv4',
    remoteAddress: '127.0.0.1',
    remotePort: extraPort,
    remoteFamily: 'IPv4',
  });
  t.equal(await connections(server), 1, 'the dropped connection was never counted');
  a.end();
  await gone(served[0]);
  const b = await secure(portOf(server));
  await until(() => served.length === 2);
  t.equal(served.length, 2, 'below the limit again: accepted');
  b.end();
  await gone(served[1]);
  await new Promise((resolve) => server.close(resolve));
  parity(t, ['Server#maxConnections', 'Server@drop'], served[1]);
});

t.test('Symbol.asyncDispose closes the server and waits for its connections', async (t) => {
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert }, (s) => {
    s.on('error', () => undefined);
    s.resume();
    s.end('bye');
  });
  server.listen(0, '127.0.0.1');
  await listening(server);
  const c = await secure(portOf(server));
  c.resume();
  c.end();
  await server[Symbol.asyncDispose]();
  t.equal(server.listening, false);
  t.equal(await connections(server), 0);
  await server[Symbol.asyncDispose]();
  t.pass('a second dispose of a closed server resolves');
  parity(t, 'Server#[Symbol.asyncDispose]');
});

t.test("'secureConnection', 'keylog' and 'OCSPRequest' come as from tls.Server; a bad client is a 'tlsClientError'", async (t) => {
  const served: ktls.KtlsSocket[] = [];
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert });
  server.on('secureConnection', (s: ktls.KtlsSocket) => {
    served.push(s);
    s.on('error', () => undefined);
    s.resume();
    s.end('ok');
  });
  let keylogLines = 0;
  let keylogSocket: unknown;
  server.on('keylog', (line: Buffer, socket: tls.TLSSocket) => {
    if (Buffer.isBuffer(line) && line.length > 0) keylogLines++;
    keylogSocket = socket;
  });
  let ocspAsked = 0;
  server.on('OCSPRequest', (cert: Buffer, issuer: Buffer | null | undefined, done: (err: Error | null, resp?: Buffer) => void) => {
    // issuer: the issuer's certificate where the chain has it (this fixture's chain does not).
    ocspAsked += Buffer.isBuffer(cert) && (issuer === null || issuer === undefined || Buffer.isBuffer(issuer)) ? 1 : 0;
    done(null, Buffer.from('ocsp-response'));
  });
  const clientErrors: Array<Error & { code?: string }> = [];
  server.on('tlsClientError', (err: Error & { code?: string }) => clientErrors.push(err));
  server.listen(0, '127.0.0.1');
  await listening(server);
  // requestOCSP is a tls.TLSSocket option that tls.connect passes on (@types/node lacks it on ConnectionOptions).
  const c = tls.connect({ port: portOf(server), host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca, requestOCSP: true } as tls.ConnectionOptions);
  const ocsp = new Promise<Buffer | undefined>((resolve) => c.once('OCSPResponse', resolve));
  await new Promise((resolve) => c.once('secureConnect', resolve));
  c.resume();
  c.end();
  t.equal((await ocsp)?.toString(), 'ocsp-response', "the client got the 'OCSPRequest' listener's response");
  t.equal(ocspAsked, 1, "'OCSPRequest' with the certificate");
  await until(() => served.length === 1);
  t.equal(served.length, 1, "'secureConnection' with the KtlsSocket");
  t.ok(keylogLines >= 5, `'keylog' lines for the handshake (${keylogLines})`);
  t.ok(keylogSocket instanceof tls.TLSSocket, "'keylog' names the handshaking tls.TLSSocket, as tls.Server");
  await gone(served[0]);

  const bad = net.connect({ port: portOf(server), host: '127.0.0.1' });
  bad.on('error', () => undefined);
  bad.end(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
  await until(() => clientErrors.length === 1);
  t.equal(clientErrors.length, 1, "one 'tlsClientError' for a client that does not speak TLS");
  t.match(clientErrors[0], { code: 'ERR_SSL_HTTP_REQUEST' });
  await new Promise((resolve) => server.close(resolve));
  parity(t, ['Server@secureConnection', 'Server@keylog', 'Server@OCSPRequest', 'Server@tlsClientError'], served[0]);
});
