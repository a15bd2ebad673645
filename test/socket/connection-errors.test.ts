// Connection failures carry the errno the kernel gave and the syscall
// net.Socket names (read/write), never libuv's EBADF for EPOLLERR. Userspace
// records on a kernel without kTLS; kernel records under the kTLS harness.
import t from 'tap';
import * as os from 'node:os';
import * as ktls from '../../lib/index.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorOf, loopbackPair, readBytes, sessionKeys } from '../helpers/pair.js';
import { parity } from '../helpers/parity-log.js';

const E = os.constants.errno;

async function halfUpgraded(options: ktls.UpgradeOptions = {}) {
  const [a, b] = await loopbackPair();
  const sock = await ktls.upgrade(a, sessionKeys('TLSv1.3', 'aes-128-gcm').a, { fallback: 'userspace', ...options });
  return { sock, peer: b };
}

t.test('a peer reset while reading is ECONNRESET from read', async (t) => {
  const { sock, peer } = await halfUpgraded();
  sock.resume();
  const err = errorOf(sock);
  await sleep(20); // the reader is waiting on the poll
  peer.resetAndDestroy();
  t.match(await err, { code: 'ECONNRESET', errno: -E.ECONNRESET, syscall: 'read' });
  parity(t, 'TLSSocket@error', sock);
});

t.test('data that arrived before a reset is delivered before the error', async (t) => {
  const keys = sessionKeys('TLSv1.3', 'aes-128-gcm');
  const [a, peer] = await loopbackPair();
  const sock = await ktls.upgrade(a, keys.a, { fallback: 'userspace' });
  const sealer = new ktls.RecordSealer('TLSv1.3', 'aes-128-gcm', keys.ba);
  peer.write(Buffer.concat(sealer.seal(23, Buffer.from('last words'))));
  await sleep(50);
  peer.resetAndDestroy();
  await sleep(50);
  const err = errorOf(sock);
  t.equal((await readBytes(sock, 10)).toString(), 'last words');
  sock.resume();
  t.match(await err, { code: 'ECONNRESET', syscall: 'read' });
});

t.test('writing after the peer closed fails with EPIPE or ECONNRESET from write', async (t) => {
  const { sock, peer } = await halfUpgraded({ allowHalfOpen: true, allowTruncation: true });
  sock.resume();
  const err = errorOf(sock);
  peer.destroy();
  await new Promise((resolve) => sock.once('end', resolve));
  const chunk = Buffer.alloc(64 * 1024);
  const timer = setInterval(() => sock.write(chunk, () => undefined), 5);
  const e = (await err) as Error & { code?: string; syscall?: string };
  clearInterval(timer);
  t.ok(e.code === 'EPIPE' || e.code === 'ECONNRESET', `code ${String(e.code)}`);
  t.equal(e.syscall, 'write');
});
