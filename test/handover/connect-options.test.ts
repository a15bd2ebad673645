// connect()/createServer() TCP options: TCP_NODELAY from the first byte, fastOpen validated; errno names kTLS uses.
import t from 'tap';
import * as os from 'node:os';
import * as ktls from '../../lib/index.js';
import { loadBinding } from '../../lib/native/binding.js';
import { CERTS, portOf } from '../helpers/tls.js';

process.on('warning', () => undefined); // KTLS_FALLBACK on hosts without kTLS

for (const noDelay of [undefined, false] as const) {
  t.test(`noDelay ${String(noDelay)}: TCP_NODELAY is ${noDelay === false ? 'off' : 'on'} on both ends`, async (t) => {
    const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert, ktls: { noDelay } });
    const accepted = new Promise<ktls.KtlsSocket>((resolve) => server.once('secureConnection', resolve));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const client = await ktls.connectAsync({ host: '127.0.0.1', port: portOf(server), ca: CERTS.ca, servername: 'localhost', ktls: { noDelay } });
    const s = await accepted;
    const b = loadBinding().binding!;
    const k = b.constants;
    const want = noDelay === false ? 0 : 1;
    t.equal(b.getsockoptInt(client.fd, k.SOL_TCP, k.TCP_NODELAY) !== 0 ? 1 : 0, want, 'client');
    t.equal(b.getsockoptInt(s.fd, k.SOL_TCP, k.TCP_NODELAY) !== 0 ? 1 : 0, want, 'server');
    client.destroy();
    s.destroy();
    server.close();
  });
}

t.test('fastOpen must be a non-negative integer queue length', async (t) => {
  for (const bad of [-1, 1.5, Number.NaN]) t.throws(() => ktls.createServer({ fastOpen: bad }), { code: 'ERR_INVALID_ARG_VALUE' });
});

t.test('errno names include the ones libuv lacks (EBADMSG, EKEYEXPIRED)', async (t) => {
  const E = os.constants.errno;
  t.equal(new ktls.KtlsSystemError(-E.EBADMSG, 'recvmsg').code, 'EBADMSG');
  t.equal(new ktls.KtlsSystemError(-loadBinding().binding!.constants.EKEYEXPIRED, 'recvmsg').code, 'EKEYEXPIRED');
});
