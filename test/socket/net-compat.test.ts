// The net.Socket / tls.TLSSocket members servers call on a KtlsSocket: setTimeout, setKeepAlive, destroySoon, encrypted.
import t from 'tap';
import { loadBinding } from '../../lib/native/binding.js';
import { readAll, upgradedPair } from '../helpers/pair.js';
import { parity } from '../helpers/parity-log.js';

const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('setTimeout emits timeout once after idleness, activity postpones it, 0 disables it', async (t) => {
  const [a, b] = await upgradedPair('TLSv1.3', 'aes-128-gcm', { kernel: false });
  b.resume();
  let fired = 0;
  a.setTimeout(150, () => fired++);
  for (let i = 0; i < 4; i++) {
    await wait(60);
    a.write('x'); // activity restarts the timer
  }
  t.equal(fired, 0, 'no timeout while writing every 60 ms');
  await wait(300);
  t.equal(fired, 1, 'one timeout after 150 ms idle');
  t.equal(a.destroyed, false, 'a timeout does not destroy');
  const cb = (): void => {
    fired += 10;
  };
  a.setTimeout(50, cb);
  a.setTimeout(0, cb);
  await wait(150);
  t.equal(fired, 1, '0 disables the timer and removes the callback');
  parity(t, ['TLSSocket#setTimeout', 'TLSSocket@timeout'], a);
  t.throws(() => a.setTimeout(-1), { code: 'ERR_INVALID_ARG_VALUE' });
  a.destroy();
  b.destroy();
});

t.test('setKeepAlive sets SO_KEEPALIVE and TCP_KEEPIDLE on the connection', async (t) => {
  const [a, b] = await upgradedPair('TLSv1.2', 'aes-256-gcm', { kernel: false });
  const bind = loadBinding().binding!;
  const k = bind.constants;
  a.setKeepAlive(true, 7000);
  t.equal(bind.getsockoptInt(a.fd, k.SOL_SOCKET, k.SO_KEEPALIVE), 1);
  t.equal(bind.getsockoptInt(a.fd, k.SOL_TCP, k.TCP_KEEPIDLE), 7);
  a.setKeepAlive(false);
  t.equal(bind.getsockoptInt(a.fd, k.SOL_SOCKET, k.SO_KEEPALIVE), 0);
  parity(t, 'TLSSocket#setKeepAlive', a);
  t.equal(a.encrypted, true);
  a.destroy();
  b.destroy();
});

t.test('destroySoon sends close_notify, then destroys once the writable side has finished', async (t) => {
  const [a, b] = await upgradedPair('TLSv1.3', 'chacha20-poly1305', { kernel: false });
  const got = readAll(b);
  a.write('bye');
  a.destroySoon();
  await new Promise((resolve) => a.once('close', resolve));
  t.equal((await got).toString(), 'bye', 'the peer read everything and a clean end');
  parity(t, 'TLSSocket#destroySoon', a);
  b.destroy();
});
