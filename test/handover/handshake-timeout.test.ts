// Nothing waits without a timeout: a handshake that stalls, on either side,
// ends with ERR_TLS_HANDSHAKE_TIMEOUT (node:tls's own code) within the
// configured handshakeTimeout, and its connection is closed.
import t from 'tap';
import * as net from 'node:net';
import type * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { CERTS, listening, portOf } from '../helpers/tls.js';

t.test('a client that connects and says nothing gets ERR_TLS_HANDSHAKE_TIMEOUT and a closed connection', async (t) => {
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert, handshakeTimeout: 300 });
  const failed = new Promise<Error & { code?: string }>((resolve) => server.once('tlsClientError', resolve));
  server.listen(0, '127.0.0.1');
  await listening(server);
  const start = Date.now();
  const client = net.connect({ port: portOf(server), host: '127.0.0.1', allowHalfOpen: true });
  client.on('error', () => undefined);
  const closed = new Promise((resolve) => client.once('end', resolve));
  t.match(await failed, { code: 'ERR_TLS_HANDSHAKE_TIMEOUT' });
  await closed;
  const took = Date.now() - start;
  t.ok(took >= 250 && took < 5000, `timed out after ${took} ms (handshakeTimeout 300)`);
  client.destroy();
  await new Promise((resolve) => server.close(resolve));
});

t.test('ktls.connect to a server that never answers rejects with ERR_TLS_HANDSHAKE_TIMEOUT', async (t) => {
  const silent = net.createServer(() => undefined);
  silent.listen(0, '127.0.0.1');
  await listening(silent);
  const accepted: net.Socket[] = [];
  silent.on('connection', (s) => accepted.push(s.resume()));
  await t.rejects(ktls.connectAsync({ port: portOf(silent), host: '127.0.0.1', ca: CERTS.ca, ktls: { handshakeTimeout: 300 } }), {
    code: 'ERR_TLS_HANDSHAKE_TIMEOUT',
  });
  await new Promise((resolve) => accepted[0].once('end', resolve));
  t.pass('the client closed its connection');
  for (const s of accepted) s.destroy();
  silent.close();
});

/** A TLSSocket from createTLSSocket, connected to a plain TCP server that treats each connection with `serve`. */
async function tlsSocketTo(serve: (s: net.Socket) => void): Promise<{ raw: net.Socket; tlsSocket: tls.TLSSocket; server: net.Server }> {
  const server = net.createServer(serve);
  server.listen(0, '127.0.0.1');
  await listening(server);
  const raw = net.connect({ port: portOf(server), host: '127.0.0.1' });
  await new Promise((resolve) => raw.once('connect', resolve));
  const tlsSocket = ktls.createTLSSocket(raw, { servername: 'localhost', ca: CERTS.ca });
  tlsSocket.on('error', () => undefined);
  return { raw, tlsSocket, server };
}

t.test('upgradeTLSSocket rejects, not hangs, when the connection closes before the handshake ends', async (t) => {
  const { tlsSocket, server } = await tlsSocketTo((s) => s.once('data', () => s.destroy()));
  await t.rejects(ktls.upgradeTLSSocket(tlsSocket, { handshakeTimeout: 5000 }), { code: /^(ERR_SOCKET_CLOSED|ECONNRESET)$/ });
  server.close();
});

t.test('upgradeTLSSocket of a handshake that never finishes rejects at its handshakeTimeout', async (t) => {
  const { raw, tlsSocket, server } = await tlsSocketTo(() => undefined);
  await t.rejects(ktls.upgradeTLSSocket(tlsSocket, { handshakeTimeout: 300 }), { code: 'ERR_TLS_HANDSHAKE_TIMEOUT' });
  t.equal(raw.destroyed, true, 'its connection is closed');
  server.close();
});
