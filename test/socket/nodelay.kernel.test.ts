// Under kernel TX, upgrade() turns Nagle off unless told not to: with Nagle on,
// about 1 in 15 small request/response round trips over kTLS waited ~45 ms for
// the peer's delayed ACK (UML 7.2.7; none with userspace records or node:tls).
import t from 'tap';
import { requireBinding } from '../../lib/native/binding.js';
import { kernelMatrix } from '../helpers/kernel.js';
import * as ktls from '../../lib/index.js';
import { uvHandle } from '../../lib/native/net-handle.js';
import { loopbackPair, sessionKeys, upgradedPair } from '../helpers/pair.js';

const nodelay = (fd: number): number => {
  const b = requireBinding();
  return b.getsockoptInt(fd, b.constants.SOL_TCP, b.constants.TCP_NODELAY);
};

const requireFd = (s: Parameters<typeof uvHandle>[0]): number => uvHandle(s)?.fd ?? -1;

t.test('kernel TX sets TCP_NODELAY by default; noDelay: false and userspace records leave it as it was', async (t) => {
  await kernelMatrix(t);
  const [a, b] = await upgradedPair('TLSv1.3', 'aes-128-gcm');
  t.equal(a.kernel && b.kernel, true);
  t.equal(nodelay(a.fd), 1, 'TCP_NODELAY on (default)');
  t.equal(nodelay(b.fd), 1);
  a.destroy();
  b.destroy();

  const [c, d] = await upgradedPair('TLSv1.2', 'aes-256-gcm', { noDelay: false });
  t.equal(c.kernel, true);
  t.equal(nodelay(c.fd), 0, 'noDelay: false keeps Nagle (the socket was left at its default)');
  c.destroy();
  d.destroy();

  const [e, f] = await upgradedPair('TLSv1.3', 'aes-128-gcm', { kernel: false });
  t.equal(e.kernel, false);
  t.equal(nodelay(e.fd), 0, 'userspace records: the setting is left alone');
  e.destroy();
  f.destroy();
});

t.test('noDelay must be a boolean, checked before the socket is touched', async (t) => {
  const [c, s] = await loopbackPair();
  const keys = sessionKeys('TLSv1.3', 'aes-128-gcm');
  await t.rejects(ktls.upgrade(c, keys.a, { noDelay: 1 as unknown as boolean }), { code: 'ERR_INVALID_ARG_TYPE' });
  t.equal(c.destroyed, false, 'the net.Socket is as it was');
  t.equal(nodelay(requireFd(c)), 0);
  c.destroy();
  s.destroy();
});
