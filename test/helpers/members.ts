// The TLSSocket / net.Socket members a KtlsSocket carries over from the
// connection node:tls negotiated, each compared with what node:tls itself says
// on the same kind of connection. Shared by the host suite (userspace records)
// and the kTLS suite (kernel records).
import type { Test } from 'tap';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { loadBinding } from '../../lib/native/binding.js';
import { readAll } from './pair.js';
import { parity } from './parity-log.js';
import { CERTS, listening, portOf } from './tls.js';

const closed = (s: ktls.KtlsSocket): Promise<unknown> => new Promise((r) => (s.closed ? r(undefined) : s.once('close', r)));

/** Client side: ALPN, SNI, addresses, the protocol and cipher, flow control and the stream events. */
export async function clientMembers(t: Test, expectKernel: boolean): Promise<void> {
  const server = tls.createServer({ key: CERTS.key, cert: CERTS.cert, ALPNProtocols: ['h-test', 'http/1.1'] }, (s) => {
    s.on('data', (d: Buffer) => {
      // A 1 MiB reply to 'big' fills the client's buffers while it is paused.
      if (d.toString() === 'big') s.end(Buffer.alloc(1 << 20, 7));
      else s.write(d);
    });
    s.on('end', () => s.end());
  });
  server.listen(0, '127.0.0.1');
  await listening(server);
  const opts = { port: portOf(server), host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca, ALPNProtocols: ['h-test'] };
  const ref = tls.connect(opts);
  await new Promise((r) => ref.once('secureConnect', r));
  const sock = await ktls.connectAsync(opts);
  t.equal(sock.kernel, expectKernel, `kernel === ${expectKernel}`);

  t.equal(sock.alpnProtocol, ref.alpnProtocol, `alpnProtocol ${String(ref.alpnProtocol)}, as node:tls`);
  t.equal(sock.servername, 'localhost', 'servername: the SNI name this client sent');
  t.equal(sock.authorized, true, 'authorized, as node:tls');
  t.equal(sock.authorizationError, ref.authorizationError, 'authorizationError, as node:tls (none)');
  t.equal(sock.encrypted, true, 'encrypted');
  t.equal(sock.getProtocol(), ref.getProtocol(), `getProtocol() ${String(ref.getProtocol())}`);
  t.same(sock.getCipher(), ref.getCipher(), 'getCipher() as node:tls');
  for (const k of ['remoteAddress', 'remotePort', 'remoteFamily', 'localAddress', 'localFamily'] as const) t.equal(sock[k], ref[k], `${k} as node:tls`);
  t.not(sock.localPort, undefined, 'localPort');
  t.equal(sock.localPort, (sock.address() as net.AddressInfo).port, 'localPort is address().port');
  t.equal(sock.pending, false, 'pending: false, connected');
  t.equal(sock.connecting, false, 'connecting: false');
  ref.destroy();

  const b = loadBinding().binding!;
  const k = b.constants;
  sock.setNoDelay(false);
  t.equal(b.getsockoptInt(sock.fd, k.SOL_TCP, k.TCP_NODELAY), 0, 'setNoDelay(false) clears TCP_NODELAY');
  sock.setNoDelay(true);
  t.not(b.getsockoptInt(sock.fd, k.SOL_TCP, k.TCP_NODELAY), 0, 'setNoDelay(true) sets it');
  t.equal(sock.timeout, undefined, 'timeout: undefined until setTimeout');
  sock.setTimeout(5000);
  t.equal(sock.timeout, 5000, 'timeout: as set');
  sock.setTimeout(0);

  // 'data' while flowing; pause() holds back the 1 MiB reply until resume().
  const echoed = await new Promise<string>((r) => {
    sock.once('data', (d: Buffer) => r(d.toString()));
    sock.write('ping');
  });
  t.equal(echoed, 'ping', "'data'");
  sock.pause();
  t.equal(sock.isPaused(), true, 'pause()');
  sock.write('big');
  let early = 0;
  const count = (d: Buffer): void => {
    early += d.length;
  };
  sock.on('data', count);
  await new Promise((r) => setTimeout(r, 200));
  t.equal(early, 0, 'paused: no data delivered');
  sock.off('data', count);
  sock.resume();
  const all = readAll(sock);
  t.equal(sock.isPaused(), false, 'resume()');
  const ended = new Promise((r) => sock.once('end', r));
  sock.end();
  t.equal((await all).length, 1 << 20, 'every byte after resume()');
  await ended;
  t.pass("'end' at the peer's close_notify");
  await closed(sock);
  t.pass("'close'");
  server.close();
  parity(
    t,
    [
      'TLSSocket#alpnProtocol',
      'TLSSocket#servername',
      'TLSSocket#authorized',
      'TLSSocket#authorizationError',
      'TLSSocket#encrypted',
      'TLSSocket#getProtocol',
      'TLSSocket#getCipher',
      'TLSSocket#remoteAddress',
      'TLSSocket#remotePort',
      'TLSSocket#remoteFamily',
      'TLSSocket#localAddress',
      'TLSSocket#localPort',
      'TLSSocket#localFamily',
      'TLSSocket#pending',
      'TLSSocket#connecting',
      'TLSSocket#setNoDelay',
      'TLSSocket#timeout',
      'TLSSocket#pause',
      'TLSSocket#resume',
      'TLSSocket@data',
      'TLSSocket@end',
      'TLSSocket@close',
    ],
    sock,
  );
}

/** Server side: the client certificate's verification shows in authorized / authorizationError as on tls.Server. */
export async function serverMembers(t: Test, expectKernel: boolean): Promise<void> {
  const seen: Array<{ authorized: boolean; error: unknown; servername: unknown }> = [];
  const refSeen: typeof seen = [];
  const kernels: boolean[] = [];
  // Trusting the CA, the client certificate verifies; trusting only the server's certificate, it does not.
  for (const ca of [CERTS.ca, CERTS.cert]) {
    const options = { key: CERTS.key, cert: CERTS.cert, requestCert: true, rejectUnauthorized: false, ca };
    const server = ktls.createServer(options, (s) => {
      seen.push({ authorized: s.authorized, error: s.authorizationError, servername: s.servername });
      kernels.push(s.kernel);
      s.on('end', () => s.end());
      s.on('data', (d: Buffer) => s.write(d));
    });
    const ref = tls.createServer(options, (s) => {
      refSeen.push({ authorized: s.authorized, error: s.authorizationError, servername: s.servername });
      s.on('end', () => s.end());
      s.on('data', (d: Buffer) => s.write(d));
    });
    server.listen(0, '127.0.0.1');
    ref.listen(0, '127.0.0.1');
    await Promise.all([listening(server), listening(ref)]);
    for (const target of [server, ref] as const) {
      const c = tls.connect({ port: portOf(target), host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca, key: CERTS.clientKey, cert: CERTS.clientCert });
      await new Promise((r) => c.once('secureConnect', r));
      c.write('x');
      await new Promise((r) => c.once('data', r));
      c.end();
      await new Promise((r) => c.once('close', r));
    }
    server.close();
    ref.close();
  }
  t.same(seen, refSeen, 'authorized, authorizationError and servername as tls.Server saw them');
  t.same(
    seen.map((s) => s.authorized),
    [true, false],
    'one client verified, one not',
  );
  t.ok(typeof seen[1]?.error === 'string' || seen[1]?.error instanceof Error, 'the unverified one has an authorizationError');
  t.same(kernels, [expectKernel, expectKernel], `kernel === ${expectKernel}`);
  parity(t, ['TLSSocket#authorized', 'TLSSocket#authorizationError', 'TLSSocket#servername', 'Server@secureConnection'], { kernel: expectKernel });
}
