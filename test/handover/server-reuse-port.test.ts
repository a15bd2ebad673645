// reusePort: SO_REUSEPORT on the listening socket, so several KtlsServers
// (processes, cluster workers) share one port and the kernel spreads
// connections over them. On any kernel (userspace records without kTLS).
import t from 'tap';
import * as os from 'node:os';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { listenRequest, nativeReusePort } from '../../lib/handover/listen.js';
import { parity } from '../helpers/parity-log.js';
import { CERTS, listening, portOf } from '../helpers/tls.js';

const errorOf = (s: ktls.KtlsServer): Promise<NodeJS.ErrnoException> => new Promise((resolve) => s.once('error', resolve));

const echoServer = (name: string, seen: string[], options: ktls.KtlsServerOptions): ktls.KtlsServer =>
  ktls.createServer({ key: CERTS.key, cert: CERTS.cert, ...options }, (s) => {
    s.on('error', () => undefined);
    s.resume();
    s.end(name);
    seen.push(name);
  });

const fetchName = async (port: number): Promise<string> => {
  const c = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca });
  const chunks: Buffer[] = [];
  c.on('data', (d: Buffer) => chunks.push(d));
  await new Promise((resolve, reject) => c.once('end', resolve).once('error', reject));
  c.end();
  return Buffer.concat(chunks).toString();
};

t.test('two KtlsServers with reusePort listen on the same port and both accept connections', async (t) => {
  const seen: string[] = [];
  const a = echoServer('a', seen, { reusePort: true });
  const b = echoServer('b', seen, { reusePort: true });
  a.listen(0, '127.0.0.1');
  await listening(a);
  const port = portOf(a);
  let called = false;
  b.listen(port, '127.0.0.1', () => (called = true));
  await listening(b);
  t.equal(called, true, 'the listen callback runs on listening');
  t.equal(portOf(b), port, 'the second server has the same port');
  t.equal(b.listening, true);
  // The kernel picks a listener by the hash of each connection's 4-tuple: 32 connections all to one of two is 2^-31.
  const names: string[] = [];
  for (let i = 0; i < 32; i++) names.push(await fetchName(port));
  t.ok(
    names.includes('a') && names.includes('b'),
    `both servers served (${names.filter((n) => n === 'a').length} a, ${names.filter((n) => n === 'b').length} b)`,
  );
  t.same([...names].sort(), [...seen].sort(), 'each connection served once, by the server that answered');
  await Promise.all([new Promise((r) => a.close(r)), new Promise((r) => b.close(r))]);
  parity(t, ['Server#listen', 'Server@listening', 'Server#address', 'Server#listening', 'Server#close']);
});

t.test("without reusePort on both, the second listen is an 'error' EADDRINUSE with the kernel's errno", async (t) => {
  const first = echoServer('a', [], { reusePort: true });
  first.listen(0, '127.0.0.1');
  await listening(first);
  const port = portOf(first);

  const plain = echoServer('plain', [], {});
  plain.listen(port, '127.0.0.1');
  t.match(
    await errorOf(plain),
    { code: 'EADDRINUSE', errno: -os.constants.errno.EADDRINUSE, syscall: 'listen', port },
    'a server without reusePort cannot bind it',
  );

  const holder = echoServer('holder', [], {});
  const closeFirst = new Promise((r) => first.close(r));
  await closeFirst;
  holder.listen(port, '127.0.0.1');
  await listening(holder);
  const late = echoServer('late', [], { reusePort: true });
  late.listen(port, '127.0.0.1');
  const err = await errorOf(late);
  t.match(
    err,
    { code: 'EADDRINUSE', errno: -os.constants.errno.EADDRINUSE, syscall: 'listen', address: '127.0.0.1', port },
    'reusePort cannot join a socket bound without it',
  );
  t.equal(late.listening, false);
  await new Promise((r) => holder.close(r));
  parity(t, 'Server@error');
});

t.test('listen arguments are read as net.Server reads them; reusePort is checked', async (t) => {
  const cb = (): void => undefined;
  t.same(listenRequest([8443, '::1', 10, cb]), { options: { port: 8443, host: '::1', backlog: 10 }, callback: cb });
  t.same(listenRequest([8443, cb]), { options: { port: 8443 }, callback: cb });
  t.same(listenRequest([{ port: 1, host: 'h' }]), { options: { port: 1, host: 'h' }, callback: undefined });
  t.same(listenRequest([0, 5]), { options: { port: 0, backlog: 5 }, callback: undefined });
  t.equal(nativeReusePort('20.19.0'), false);
  t.equal(nativeReusePort('22.11.0'), false);
  t.equal(nativeReusePort('22.12.0'), true);
  t.equal(nativeReusePort('23.0.0'), false);
  t.equal(nativeReusePort('24.1.0'), true);
  t.throws(() => ktls.createServer({ reusePort: 'yes' as unknown as boolean }), { code: 'ERR_INVALID_ARG_TYPE' });
});
