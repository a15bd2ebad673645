// KtlsServer and KtlsSocket members that mirror tls.Server / net.Socket: SNI
// contexts, the default context, ticket keys, ref/unref; address(),
// readyState and bufferSize. On any kernel (userspace records without kTLS).
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { parity } from '../helpers/parity-log.js';
import { readAll } from '../helpers/pair.js';
import { CERTS, listening, portOf } from '../helpers/tls.js';

const peerCN = async (port: number, servername: string): Promise<string> => {
  const c = tls.connect({ port, host: '127.0.0.1', servername, rejectUnauthorized: false });
  await new Promise((r) => c.once('secureConnect', r));
  const cn = String(c.getPeerCertificate().subject?.CN);
  c.destroy();
  return cn;
};

t.test('addContext and setSecureContext pick the certificate of new handshakes, as on tls.Server', async (t) => {
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert }, (s) => s.on('error', () => undefined));
  server.on('tlsClientError', () => undefined);
  server.listen(0, '127.0.0.1');
  await listening(server);
  const port = portOf(server);
  t.equal(await peerCN(port, 'localhost'), 'localhost', 'the default context');
  server.addContext('other.test', { key: CERTS.clientKey, cert: CERTS.clientCert });
  t.equal(await peerCN(port, 'other.test'), 'ktls-test-client', 'SNI other.test gets the added context');
  t.equal(await peerCN(port, 'localhost'), 'localhost', 'others keep the default');
  server.setSecureContext({ key: CERTS.clientKey, cert: CERTS.clientCert });
  t.equal(await peerCN(port, 'localhost'), 'ktls-test-client', 'the new default context');
  parity(t, ['Server#addContext', 'Server#setSecureContext']);
  server.close();
});

t.test('getTicketKeys/setTicketKeys are the tls.Server ticket keys', async (t) => {
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert });
  t.equal(server.getTicketKeys().length, 48);
  const keys = randomBytes(48);
  server.setTicketKeys(keys);
  t.same(server.getTicketKeys(), keys);
  t.same(server.tlsServer.getTicketKeys(), keys);
  parity(t, ['Server#getTicketKeys', 'Server#setTicketKeys']);
});

t.test('unref() lets the process exit while the server listens; ref() keeps it alive', async (t) => {
  const index = path.resolve(__dirname, '..', '..', 'lib', 'index.js');
  // The timer is unref'd: only the listening server can keep the process alive until it fires.
  const script = (calls: string): string =>
    `const k = require(${JSON.stringify(index)}); const s = k.createServer({}); s.listen(0, '127.0.0.1', () => { ${calls}; setTimeout(() => { console.log('still alive'); s.close(); }, 500).unref(); });`;
  const unref = spawnSync(process.execPath, ['-e', script('t = s.unref(); if (t !== s) process.exit(3)')], { encoding: 'utf8', timeout: 10_000 });
  t.equal(unref.status, 0, unref.stderr);
  t.equal(unref.stdout, '', 'unref(): the process exited with the server listening');
  const ref = spawnSync(process.execPath, ['-e', script('s.unref(); t = s.ref(); if (t !== s) process.exit(3)')], { encoding: 'utf8', timeout: 10_000 });
  t.equal(ref.status, 0, ref.stderr);
  t.equal(ref.stdout.trim(), 'still alive', 'ref(): the server kept it alive');
  parity(t, ['Server#ref', 'Server#unref']);
});

t.test('KtlsSocket address(), readyState and bufferSize, as net.Socket', async (t) => {
  const server = tls.createServer({ key: CERTS.key, cert: CERTS.cert }, (s) => s.pipe(s));
  server.listen(0, '127.0.0.1');
  await listening(server);
  const sock = await ktls.connectAsync({ port: portOf(server), host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca });
  t.same(sock.address(), { address: '127.0.0.1', family: 'IPv4', port: sock.localPort });
  t.equal(sock.readyState, 'open');
  t.equal(sock.bufferSize, 0);
  const all = readAll(sock);
  sock.end('bye');
  t.equal(sock.readyState, 'readOnly', 'after end(): readOnly');
  t.equal((await all).toString(), 'bye');
  await new Promise((r) => (sock.closed ? r(undefined) : sock.once('close', r)));
  t.equal(sock.readyState, 'closed');
  t.equal(sock.bufferSize, undefined);
  parity(t, ['TLSSocket#address', 'TLSSocket#readyState', 'TLSSocket#bufferSize', 'TLSSocket#end'], sock);
  server.close();
});
