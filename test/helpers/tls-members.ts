// tls.TLSSocket members of a KtlsSocket beyond the negotiated parameters: the
// local certificate, the session ticket, plaintext byte counters, the session
// resumed, resetAndDestroy(), setMaxSendFragment(), the members that cannot
// exist after the switch, and a post-handshake CertificateRequest. Shared by the
// host suite (userspace records) and the kTLS suite (kernel records).
import type { Test } from 'tap';
import * as tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import * as ktls from '../../lib/index.js';
import { constants, type TlsVersion } from '../../lib/native/constants.js';
import { ticketOf } from '../../lib/record/session.js';
import { expectAlert } from '../../lib/verify/checks/alerts.js';
import { parity } from './parity-log.js';
import { errorOf, loopbackPair, readBytes, sessionKeys } from './pair.js';
import { CERTS, listening, portOf } from './tls.js';

const der = (pem: string | Buffer): Buffer => new X509Certificate(pem).raw;

/** A node:tls server asking for a client certificate, echoing; its connections in `sides`. */
async function nodeServer(version: TlsVersion): Promise<{ server: tls.Server; sides: tls.TLSSocket[] }> {
  const sides: tls.TLSSocket[] = [];
  const server = tls.createServer({ key: CERTS.key, cert: CERTS.cert, ca: CERTS.ca, requestCert: true, minVersion: version, maxVersion: version }, (s) => {
    sides.push(s);
    s.on('error', () => undefined);
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await listening(server);
  return { server, sides };
}

const clientOptions = (server: tls.Server, version: TlsVersion): ktls.KtlsConnectOptions => ({
  port: portOf(server),
  host: '127.0.0.1',
  servername: 'localhost',
  ca: CERTS.ca,
  key: CERTS.clientKey,
  cert: CERTS.clientCert,
  minVersion: version,
  maxVersion: version,
  ktls: { waitForTicket: 2000 },
});

/** Client side against node:tls: certificate, ticket, counters, cipher, protocol, resumption. */
export async function clientMembers(t: Test, version: TlsVersion, expectKernel: boolean): Promise<void> {
  const { server, sides } = await nodeServer(version);
  const client = await ktls.connectAsync(clientOptions(server, version));
  t.equal(client.kernel, expectKernel, `kernel === ${expectKernel}`);
  parity(t, ['TLSSocket#getCertificate', 'TLSSocket#getX509Certificate', 'TLSSocket#getTLSTicket', 'TLSSocket#bytesRead', 'TLSSocket#bytesWritten'], client);
  parity(t, ['TLSSocket#getCipher', 'TLSSocket#getProtocol', 'TLSSocket#isSessionReused'], client);
  client.write('hello, world');
  t.equal((await readBytes(client, 12)).toString(), 'hello, world');
  const peer = sides[0];
  t.equal(client.bytesWritten, 12, 'bytesWritten: plaintext bytes, as node:tls');
  t.equal(client.bytesRead, 12, 'bytesRead: plaintext bytes, as node:tls');
  t.equal(peer.bytesRead, 12, "the node:tls peer's bytesRead agrees");
  t.same(client.getCipher(), peer.getCipher(), "getCipher() is the peer's");
  t.equal(client.getProtocol(), peer.getProtocol(), "getProtocol() is the peer's");
  t.equal(client.isSessionReused(), false, 'a full handshake');
  t.ok(client.getX509Certificate()?.raw.equals(der(CERTS.clientCert)), 'getX509Certificate(): our certificate');
  const mine = client.getCertificate() as tls.PeerCertificate;
  const seen = peer.getPeerCertificate();
  t.ok(mine.raw.equals(seen.raw), "getCertificate() is what the peer's getPeerCertificate() sees");
  t.same(mine.subject, seen.subject);
  t.equal(mine.fingerprint256, seen.fingerprint256);
  const session = client.getSession();
  t.ok(session, 'a session');
  const ticket = client.getTLSTicket();
  t.ok(ticket && ticket.length > 0, 'getTLSTicket(): the session ticket');
  t.same(ticket, session && ticketOf(session), "the ticket inside getSession()'s blob");
  // The resumed connection, through ktls and through node:tls.
  const again = await ktls.connectAsync({ ...clientOptions(server, version), session });
  t.equal(again.isSessionReused(), true, 'ktls.connect({ session }) resumes: isSessionReused() after the switch');
  t.equal(again.kernel, expectKernel);
  again.destroy();
  const node = tls.connect({ ...clientOptions(server, version), session } as tls.ConnectionOptions);
  await new Promise((r) => node.once('secureConnect', r));
  t.equal(node.isSessionReused(), true, 'tls.connect({ session }) resumes');
  node.destroy();
  client.destroy();
  t.equal(client.getCertificate(), null, 'getCertificate() is null once destroyed, as node:tls');
  server.close();
}

/** The ticket parser agrees with node:tls's getTLSTicket() (both versions). */
export async function ticketParser(t: Test, version: TlsVersion): Promise<void> {
  const { server } = await nodeServer(version);
  const node = tls.connect(clientOptions(server, version) as tls.ConnectionOptions).resume();
  const session = await new Promise<Buffer>((r) => node.once('session', r));
  t.ok(node.getTLSTicket(), 'node:tls has a ticket');
  t.same(ticketOf(session), node.getTLSTicket(), "ticketOf(session) is node:tls's getTLSTicket()");
  t.equal(ticketOf(Buffer.from([0x30, 0x03, 0x02, 0x01])), undefined, 'a cut-short blob: none');
  t.equal(ticketOf(Buffer.alloc(0)), undefined);
  node.destroy();
  server.close();
}

/** Server side: its certificate, no ticket. */
export async function serverMembers(t: Test, version: TlsVersion, expectKernel: boolean): Promise<void> {
  let side: ktls.KtlsSocket | undefined;
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert, minVersion: version, maxVersion: version }, (s) => {
    side = s;
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await listening(server);
  const node = tls.connect({ port: portOf(server), host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca, maxVersion: version });
  await new Promise((r) => node.once('secureConnect', r));
  node.write('x');
  await new Promise((r) => node.once('data', r));
  if (!side) throw new Error('no server side');
  t.equal(side.kernel, expectKernel, `kernel === ${expectKernel}`);
  parity(t, ['TLSSocket#getCertificate', 'TLSSocket#getX509Certificate', 'TLSSocket#getTLSTicket'], side);
  const seen = node.getPeerCertificate();
  t.ok(side.getX509Certificate()?.raw.equals(seen.raw), "getX509Certificate() is the certificate the client's getPeerCertificate() sees");
  t.equal((side.getCertificate() as tls.PeerCertificate).fingerprint256, seen.fingerprint256, 'getCertificate(): its fingerprint');
  t.equal(side.getTLSTicket(), undefined, 'a server has no ticket, as node:tls');
  node.end();
  await new Promise((r) => node.once('close', r));
  server.close();
}

/** resetAndDestroy(): the peer reads ECONNRESET, this side closes without an error. */
export async function resetAndDestroy(t: Test, expectKernel: boolean): Promise<void> {
  const { server, sides } = await nodeServer('TLSv1.3');
  const client = await ktls.connectAsync(clientOptions(server, 'TLSv1.3'));
  t.equal(client.kernel, expectKernel, `kernel === ${expectKernel}`);
  parity(t, 'TLSSocket#resetAndDestroy', client);
  client.write('x');
  await readBytes(client, 1);
  const peer = sides[0];
  const peerErr = new Promise<NodeJS.ErrnoException>((resolve) => peer.once('error', resolve));
  let clientErr: Error | undefined;
  client.once('error', (e) => (clientErr = e));
  t.equal(client.resetAndDestroy(), client, 'returns the socket');
  t.equal(client.destroyed, true);
  await new Promise((r) => client.once('close', r));
  t.equal(clientErr, undefined, 'no error on this side');
  t.equal((await peerErr).code, 'ECONNRESET', 'the peer gets a reset');
  t.doesNotThrow(() => client.resetAndDestroy(), 'again on a destroyed socket: harmless');
  server.close();
}

/**
 * setMaxSendFragment() maps to the record size limit; the handshake-only members throw why.
 * `kernelRecordSize`: the kernel has TLS_TX_MAX_PAYLOAD_LEN (without it, kernel TX cannot limit records: false, as documented).
 */
export async function handshakeOnlyMembers(t: Test, expectKernel: boolean, kernelRecordSize: boolean): Promise<void> {
  const { server } = await nodeServer('TLSv1.3');
  const client = await ktls.connectAsync(clientOptions(server, 'TLSv1.3'));
  t.equal(client.kernel, expectKernel, `kernel === ${expectKernel}`);
  const limits = !expectKernel || kernelRecordSize;
  if (limits) parity(t, ['TLSSocket#setMaxSendFragment', 'TLSSocket#disableRenegotiation'], client);
  else parity(t, ['TLSSocket#disableRenegotiation'], client);
  t.equal(client.setMaxSendFragment(1024), limits, `setMaxSendFragment(1024): ${limits}${limits ? '' : ' (this kernel has no TLS_TX_MAX_PAYLOAD_LEN)'}`);
  const size = limits ? 1024 : 16384;
  t.equal(client.maxRecordSize, size, limits ? 'is the record size limit' : 'the limit stays 16384');
  t.equal(client.setMaxSendFragment(511), false, 'below 512: false, as OpenSSL');
  t.equal(client.setMaxSendFragment(16385), false, 'above 16384: false');
  t.equal(client.maxRecordSize, size, 'unchanged');
  t.throws(() => client.setMaxSendFragment('1024' as unknown as number), { code: 'ERR_INVALID_ARG_TYPE' });
  t.doesNotThrow(() => client.disableRenegotiation(), 'disableRenegotiation(): renegotiation is already refused');
  t.throws(() => client.setSession(Buffer.alloc(8)), { code: 'ERR_KTLS_AFTER_HANDSHAKE' });
  t.throws(() => client.setServername('example.com'), { code: 'ERR_KTLS_AFTER_HANDSHAKE' });
  t.throws(() => client.setServername(5 as unknown as string), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => client.setKeyCert({ key: CERTS.clientKey, cert: CERTS.clientCert }), { code: 'ERR_KTLS_AFTER_HANDSHAKE' });
  t.throws(() => client.enableTrace(), { code: 'ERR_KTLS_UNSUPPORTED' });
  client.write('after');
  t.equal((await readBytes(client, 5)).toString(), 'after', 'the connection still works');
  client.destroy();
  server.close();
}

/** A TLS 1.3 CertificateRequest after the handshake: unexpected_message, ERR_KTLS_POST_HANDSHAKE_AUTH. */
export async function postHandshakeAuth(t: Test, kernel: boolean): Promise<void> {
  const [raw, mine] = await loopbackPair();
  const keys = sessionKeys('TLSv1.3', 'aes-128-gcm');
  const sock = await ktls.upgrade(mine, keys.b, { kernel });
  t.equal(sock.kernel, kernel, `kernel === ${kernel}`);
  const sealer = new ktls.RecordSealer('TLSv1.3', 'aes-128-gcm', keys.ab);
  const opener = new ktls.RecordOpener('TLSv1.3', 'aes-128-gcm', keys.ba);
  // certificate_request_context "\xaa", extensions: signature_algorithms [ecdsa_secp256r1_sha256]
  const body = [1, 0xaa, 0, 8, 0, 13, 0, 4, 0, 2, 4, 3];
  const request = Buffer.from([13, 0, 0, body.length, ...body]);
  const events: Buffer[] = [];
  sock.on('handshake', (m: Buffer) => events.push(m));
  const late = errorOf(sock);
  await expectAlert(
    { equal: (a, b, m) => void t.equal(a, b, m), ok: (c, m) => void t.ok(c, m), observe: () => undefined, signal: AbortSignal.timeout(10_000) },
    {
      id: 'post-handshake-auth',
      title: 'CertificateRequest',
      input: (s) => s.seal(constants().RECORD_HANDSHAKE, request),
      alert: () => 'unexpected_message',
      code: 'ERR_KTLS_POST_HANDSHAKE_AUTH',
    },
    'TLSv1.3',
    sock,
    raw,
    sealer,
    opener,
  );
  t.equal((await late).syscall, undefined, 'a protocol error, not a system one');
  raw.destroy();
}
