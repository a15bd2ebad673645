// node:tls parity after the switch, checked against the node:tls peer of the same
// connection: keying material exporters, Finished messages, certificates, the
// methods that cannot exist. Shared by the host suite (userspace records or
// node:tls-carried suites) and the kTLS suite (kernel records).
import type { Test } from 'tap';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { parity } from './parity-log.js';
import { readAll } from './pair.js';
import { CERTS, listening, portOf } from './tls.js';

export const VARIANTS = [
  { version: 'TLSv1.3', ciphers: 'TLS_AES_128_GCM_SHA256' },
  { version: 'TLSv1.3', ciphers: 'TLS_AES_256_GCM_SHA384' },
  { version: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' },
  { version: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384' },
] as const;

type Peer = Pick<tls.TLSSocket, 'exportKeyingMaterial' | 'getFinished' | 'getPeerFinished'>;
const exportOf = (p: Peer, length: number, label: string, context?: Buffer): Buffer =>
  (p.exportKeyingMaterial.bind(p) as (l: number, lab: string, c?: Buffer) => Buffer)(length, label, context);

/** What `fn` returned (as hex) or the code it threw. */
function outcome(fn: () => Buffer): string {
  try {
    return fn().toString('hex');
  } catch (err) {
    return String((err as NodeJS.ErrnoException).code);
  }
}

/** Exporter outputs and Finished messages of a KtlsSocket equal its node:tls peer's. */
export function sameSession(t: Test, k: ktls.KtlsSocket, peer: Peer, what: string): void {
  for (const [length, label, context] of [
    [32, 'EXPERIMENTAL-ktls', undefined],
    [100, 'EXPERIMENTAL-ktls', Buffer.from('some context')],
    [16, 'EXPERIMENTAL-other', Buffer.alloc(0)],
    [24, 'EXPERIMENTAL-é€', undefined], // the label is UTF-8, as OpenSSL takes node:tls's string
    [16, 'x'.repeat(249), undefined], // TLS 1.3's longest label
  ] as const) {
    t.equal(
      k.exportKeyingMaterial(length, label, context).toString('hex'),
      exportOf(peer, length, label, context).toString('hex'),
      `${what}: exportKeyingMaterial(${length}, '${label}', ${context === undefined ? 'no context' : `${context.length} B context`}) equals the peer's`,
    );
  }
  // TLS 1.3's HkdfLabel holds 249 bytes of label: one more (in UTF-8: 'é' is two) is refused as node:tls refuses it.
  const long = 'é'.repeat(125);
  const theirs = outcome(() => exportOf(peer, 16, long));
  const ours = outcome(() => k.exportKeyingMaterial(16, long));
  t.equal(ours, theirs, `${what}: a 250-byte label: ${theirs} as on node:tls`);
  t.same(k.getFinished(), peer.getPeerFinished(), `${what}: getFinished() is the peer's getPeerFinished()`);
  t.same(k.getPeerFinished(), peer.getFinished(), `${what}: getPeerFinished() is the peer's getFinished()`);
}

/** ktls.connect() against a node:tls server; ktls.createServer() against tls.connect(). */
export async function bothRoles(t: Test, variant: (typeof VARIANTS)[number], expectKernel: boolean): Promise<void> {
  const { version, ciphers } = variant;
  // node:tls takes TLS 1.3 suite names in `ciphers` too (it has no `ciphersuites` option).
  const tlsOpts = { minVersion: version, maxVersion: version, ciphers };

  // ktls client, node:tls server
  let nodeServerSide: tls.TLSSocket | undefined;
  const nodeServer = tls.createServer({ key: CERTS.key, cert: CERTS.cert, ...tlsOpts } as tls.TlsOptions, (s) => {
    nodeServerSide = s;
    s.pipe(s);
  });
  nodeServer.listen(0, '127.0.0.1');
  await listening(nodeServer);
  const client = await ktls.connectAsync({ port: portOf(nodeServer), host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca, ...tlsOpts });
  t.equal(client.kernel, expectKernel, `${version} ${ciphers} client: kernel === ${expectKernel}`);
  t.equal(client.getCipher()?.name, ciphers, `${version}: the suite asked for, ${ciphers}`);
  while (!nodeServerSide) await new Promise((r) => setImmediate(r));
  sameSession(t, client, nodeServerSide, `${version} ${ciphers} ktls client`);
  const plain = client.getPeerCertificate();
  const detailed = client.getPeerCertificate(true);
  t.equal(plain.subject?.CN, 'localhost');
  t.notOk('issuerCertificate' in plain, 'getPeerCertificate(): no issuer chain, as node:tls');
  t.ok('issuerCertificate' in detailed, 'getPeerCertificate(true): the issuer chain');
  t.match(client.getPeerX509Certificate()?.subject ?? '', /CN=localhost/);
  t.match(client.getEphemeralKeyInfo(), { type: 'ECDH' }, 'getEphemeralKeyInfo() as node:tls reported it');
  t.throws(() => client.renegotiate(), { code: 'ERR_KTLS_NO_RENEGOTIATION' });
  if (version === 'TLSv1.2') {
    t.throws(() => client.exportKeyingMaterial(16, 'key expansion'), { code: 'ERR_SSL_TLS_ILLEGAL_EXPORTER_LABEL' }, "TLS 1.2's own label is refused");
    t.throws(() => exportOf(nodeServerSide as Peer, 16, 'key expansion'), 'node:tls refuses it too');
  }
  // The same options against the same server over node:tls alone: the same shared signature algorithms.
  const plainClient = tls.connect({
    port: portOf(nodeServer),
    host: '127.0.0.1',
    servername: 'localhost',
    ca: CERTS.ca,
    ...tlsOpts,
  } as tls.ConnectionOptions);
  await new Promise((r) => plainClient.once('secureConnect', r));
  t.same(client.getSharedSigalgs(), plainClient.getSharedSigalgs(), 'getSharedSigalgs() as a node:tls client of the same server');
  plainClient.destroy();
  const serverSigalgs = nodeServerSide.getSharedSigalgs();
  t.throws(() => client.exportKeyingMaterial(0, 'x'), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => client.exportKeyingMaterial(8, 5 as unknown as string), { code: 'ERR_INVALID_ARG_TYPE' });
  client.end();
  await readAll(client);
  t.throws(() => client.exportKeyingMaterial(8, 'EXPERIMENTAL-ktls'), { code: 'ERR_SOCKET_CLOSED' }, 'the exporter secret is zeroed at close');
  parity(
    t,
    [
      'TLSSocket#exportKeyingMaterial',
      'TLSSocket#getFinished',
      'TLSSocket#getPeerFinished',
      'TLSSocket#getPeerCertificate',
      'TLSSocket#getPeerX509Certificate',
      'TLSSocket#getEphemeralKeyInfo',
      'TLSSocket#getSharedSigalgs',
      'tls.connect',
    ],
    client,
  );
  nodeServer.close();

  // ktls server, node:tls client
  let ktlsServerSide: ktls.KtlsSocket | undefined;
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert, ...tlsOpts }, (s) => {
    ktlsServerSide = s;
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await listening(server);
  const nodeClient = tls.connect({
    port: portOf(server),
    host: '127.0.0.1',
    servername: 'localhost',
    ca: CERTS.ca,
    ...tlsOpts,
  } as tls.ConnectionOptions);
  await new Promise((r) => nodeClient.once('secureConnect', r));
  nodeClient.write('x');
  await new Promise((r) => nodeClient.once('data', r)); // the server has switched
  t.equal(ktlsServerSide?.kernel, expectKernel, `${version} ${ciphers} server: kernel === ${expectKernel}`);
  if (ktlsServerSide) {
    sameSession(t, ktlsServerSide, nodeClient, `${version} ${ciphers} ktls server`);
    t.ok(serverSigalgs.length > 0, 'a node:tls server sees shared sigalgs');
    t.same(ktlsServerSide.getSharedSigalgs(), serverSigalgs, 'getSharedSigalgs() on the server: as the node:tls server of the same client');
    parity(
      t,
      [
        'TLSSocket#exportKeyingMaterial',
        'TLSSocket#getFinished',
        'TLSSocket#getPeerFinished',
        'TLSSocket#getSharedSigalgs',
        'tls.createServer',
        'Server@secureConnection',
      ],
      ktlsServerSide,
    );
  }
  nodeClient.end();
  await new Promise((r) => nodeClient.once('close', r));
  server.close();
}
