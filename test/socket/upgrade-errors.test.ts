// upgrade() refuses what it cannot take, with typed errors, and leaves the
// net.Socket exactly as it was: still connected, buffered bytes still there.
import t, { type Test } from 'tap';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import * as ktls from '../../lib/index.js';
import * as bindingModule from '../../lib/native/binding.js';
import { loopbackPair, readBytes, sessionKeys } from '../helpers/pair.js';

const keys = () => sessionKeys('TLSv1.3', 'aes-128-gcm').a;

async function stillWorks(t: Test, a: net.Socket, b: net.Socket, label: string): Promise<void> {
  const got = readBytes(a, 4);
  b.write('ping');
  t.equal((await got).toString(), 'ping', `${label}: the net.Socket still reads`);
  const back = readBytes(b, 4);
  a.write('pong');
  t.equal((await back).toString(), 'pong', `${label}: the net.Socket still writes`);
}

t.test('arguments that are not sockets are TypeErrors', async (t) => {
  await t.rejects(ktls.upgrade({} as net.Socket, keys()), { code: 'ERR_INVALID_ARG_TYPE' });
  await t.rejects(ktls.upgrade(null as unknown as net.Socket, keys()), { code: 'ERR_INVALID_ARG_TYPE' });
});

t.test('bad secrets are rejected before anything touches the socket', async (t) => {
  const [a, b] = await loopbackPair();
  await t.rejects(ktls.upgrade(a, { ...keys(), cipher: 'rc4' as ktls.CipherName }), { code: 'ERR_INVALID_ARG_VALUE' });
  await stillWorks(t, a, b, 'after bad secrets');
  a.destroy();
  b.destroy();
});

t.test('destroyed, connecting, TLS and non-TCP sockets are refused with codes', async (t) => {
  const [a, b] = await loopbackPair();
  a.destroy();
  await t.rejects(ktls.upgrade(a, keys()), { code: 'ERR_SOCKET_CLOSED' });
  b.destroy();

  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const connecting = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await t.rejects(ktls.upgrade(connecting, keys()), { code: 'ENOTCONN', errno: -os.constants.errno.ENOTCONN, syscall: 'getpeername' });
  connecting.destroy();
  server.close();

  const [c, d] = await loopbackPair();
  const wrapped = new tls.TLSSocket(c);
  await t.rejects(ktls.upgrade(wrapped, keys()), { code: 'ERR_KTLS_TLS_SOCKET' });
  wrapped.destroy();
  d.destroy();

  const sockPath = path.join(os.tmpdir(), `ktls-${process.pid}.sock`);
  const unixServer = net.createServer().listen(sockPath);
  await new Promise((r) => unixServer.once('listening', r));
  const accepted = new Promise<net.Socket>((r) => unixServer.once('connection', r));
  const u = net.connect(sockPath);
  await new Promise((r) => u.once('connect', r));
  const peer = await accepted;
  await t.rejects(ktls.upgrade(u, keys()), { code: 'ERR_KTLS_NOT_TCP' });
  await stillWorks(t, u, peer, 'unix socket');
  u.destroy();
  peer.destroy();
  unixServer.close();
});

t.test('this kernel: upgrade either works in the kernel or fails ENOENT with the socket intact', async (t) => {
  const caps = await ktls.probe();
  const [a, b] = await loopbackPair();
  if (caps.ulp) {
    const s = await ktls.upgrade(a, keys());
    t.equal(s.kernel, true, `kernel ${caps.kernelRelease} has kTLS: the upgrade used it`);
    s.destroy();
  } else {
    const err = await ktls.upgrade(a, keys()).catch((e: unknown) => e as ktls.KtlsUnavailableError);
    t.type(err, ktls.KtlsUnavailableError);
    t.match(
      err,
      { code: 'ERR_KTLS_UNAVAILABLE', errno: -os.constants.errno.ENOENT, syscall: 'setsockopt(TCP_ULP)' },
      `kernel ${caps.kernelRelease} has no kTLS`,
    );
    t.match((err as ktls.KtlsUnavailableError).hint, /modprobe tls/);
    await stillWorks(t, a, b, 'after ENOENT');
  }
  a.destroy();
  b.destroy();
});

t.test('a kernel without the tls ULP (simulated): ERR_KTLS_UNAVAILABLE and buffered bytes go back to the net.Socket', async (t) => {
  const { binding } = bindingModule.loadBinding();
  t.ok(binding, 'addon loads');
  const noUlp = { ...binding!, setUlp: () => -os.constants.errno.ENOENT };
  const mocked = t.mockRequire<typeof import('../../lib/socket/upgrade.js')>(path.resolve(__dirname, '../../lib/socket/upgrade.js'), {
    [path.resolve(__dirname, '../../lib/native/binding.js')]: {
      ...bindingModule,
      requireBinding: () => noUlp,
      loadBinding: () => ({ binding: noUlp, error: null }),
    },
  });
  const [a, b] = await loopbackPair();
  b.write('early');
  a.pause();
  await new Promise((r) => a.once('readable', r));
  await sleep(10);
  const err = await mocked.upgrade(a, keys()).catch((e: unknown) => e as ktls.KtlsUnavailableError);
  t.match(err, { code: 'ERR_KTLS_UNAVAILABLE', errno: -os.constants.errno.ENOENT, syscall: 'setsockopt(TCP_ULP)' });
  t.equal(a.destroyed, false, 'the net.Socket was not destroyed');
  t.equal((await readBytes(a, 5)).toString(), 'early', 'bytes node:net had buffered are still delivered');
  await stillWorks(t, a, b, 'after simulated ENOENT');
  a.destroy();
  b.destroy();
});

t.test("the key copies handed to the kernel are zeroed, the caller's own buffers are not touched", async (t) => {
  const { binding } = bindingModule.loadBinding();
  const passed: Buffer[] = [];
  const spy = {
    ...binding!,
    setKeys: (...args: Parameters<bindingModule.Binding['setKeys']>) => {
      passed.push(args[4], args[5]);
      return binding!.setKeys(...args);
    },
  };
  const mocked = t.mockRequire<typeof import('../../lib/socket/upgrade.js')>(path.resolve(__dirname, '../../lib/socket/upgrade.js'), {
    [path.resolve(__dirname, '../../lib/native/binding.js')]: {
      ...bindingModule,
      requireBinding: () => spy,
      loadBinding: () => ({ binding: spy, error: null }),
    },
  });
  const [a, b] = await loopbackPair();
  const secrets = keys();
  const before = Buffer.concat([secrets.tx!.key, secrets.tx!.iv]);
  // Kernel or not, every buffer that reached setKeys must come back zeroed.
  const result = await mocked.upgrade(a, secrets).then(
    (s) => s,
    (e: unknown) => e as Error,
  );
  const caps = await ktls.probe();
  t.ok(passed.length >= (caps.ulp ? 4 : 0), 'setKeys was called for each installed direction');
  for (const buf of passed)
    t.ok(
      buf.every((x) => x === 0),
      'a key or nonce copy is zeroed after install',
    );
  t.ok(Buffer.concat([secrets.tx!.key, secrets.tx!.iv]).equals(before), "the caller's buffers are unchanged");
  if (result instanceof ktls.KtlsSocket) result.destroy();
  a.destroy();
  b.destroy();
});

t.test('a socket with setEncoding() is refused and keeps working', async (t) => {
  const [a, b] = await loopbackPair();
  a.setEncoding('latin1');
  await t.rejects(ktls.upgrade(a, keys()), { code: 'ERR_KTLS_ENCODING' });
  const got = new Promise<string>((r) => a.once('data', r));
  b.write('still here');
  t.equal(await got, 'still here');
  a.destroy();
  b.destroy();
});
