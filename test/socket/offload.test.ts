// socket.offload where no kernel TLS carries the records (any kernel): the
// userspace record layer with the fallback warning's reason, node:tls over a
// Duplex, plain TCP from adopt(), a closed socket; and what offload says when
// the kernel hides the TLS ULP's details (sock_diag without CAP_NET_ADMIN).
import t from 'tap';
import { once } from 'node:events';
import type * as net from 'node:net';
import { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { requireBinding, type Binding } from '../../lib/native/binding.js';
import { readOffload } from '../../lib/socket/offload.js';
import { loopbackPair } from '../helpers/pair.js';
import { CERTS } from '../helpers/tls.js';

void t.test('records in userspace: offload says userspace, with the reason the KTLS_FALLBACK warning gave', async (t) => {
  const warnings: string[] = [];
  const onWarning = (w: Error & { code?: string }): void => void (w.code === 'KTLS_FALLBACK' && warnings.push(w.message));
  process.on('warning', onWarning);
  t.teardown(() => process.off('warning', onWarning));
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert, ktls: { kernel: false } });
  t.teardown(() => server.close());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const got = new Promise<ktls.KtlsSocket>((resolve) => server.once('secureConnection', resolve));
  const client = tls.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca });
  const x = await got;
  const o = x.offload;
  t.match(o, { tx: 'userspace', rx: 'userspace', source: 'ktls', zeroCopySendfile: false, rxExpectNoPad: false });
  t.equal(o.reason, 'options.kernel is false');
  await new Promise((resolve) => setImmediate(resolve));
  t.same(warnings, [`records of this connection are protected in userspace, not by the kernel: ${String(o.reason)}`], 'the warning names the same reason');
  client.destroy();
  x.destroy();
  await once(x, 'close');
  t.match(x.offload, { tx: 'none', rx: 'none', reason: 'the socket is closed' }, 'a closed socket has no records');
});

void t.test('plain TCP from adopt(): no records', async (t) => {
  const [a, b] = await loopbackPair();
  const s = await ktls.adopt(a);
  t.match(s.offload, { tx: 'none', rx: 'none', source: 'ktls' });
  t.match(s.offload.reason, /adopt/);
  s.destroy();
  b.destroy();
});

/** A binding whose sock_diag answers what the test says, the rest as the real one. */
function stubDiag(answer: ReturnType<Binding['tlsDiag']>): Binding {
  const real = requireBinding();
  return Object.assign(Object.create(real) as Binding, { tlsDiag: () => answer, getsockoptInt: () => 0 });
}

void t.test('the kernel carries the records: kernel-sw or kernel-hw from TLS_INFO, kernel where it would not say', (t) => {
  const k = requireBinding().constants;
  const facts = { fd: 99, kernelDirections: { tx: true, rx: true }, nodeTls: false, plain: false, fallbackReason: undefined };
  const diag = (txConf: number, rxConf: number, ulp = 'tls') => ({ ulp, version: 0x304, cipher: 51, txConf, rxConf, zeroCopyTx: false, rxNoPad: false });
  t.match(readOffload({ ...facts, binding: stubDiag(diag(k.TLS_CONF_SW, k.TLS_CONF_SW)) }), { tx: 'kernel-sw', rx: 'kernel-sw', source: 'sock_diag' });
  t.equal(readOffload({ ...facts, binding: stubDiag(diag(k.TLS_CONF_SW, k.TLS_CONF_SW)) }).reason, undefined, 'no reason when the kernel has both');
  t.match(readOffload({ ...facts, binding: stubDiag(diag(k.TLS_CONF_HW, k.TLS_CONF_HW_RECORD)) }), { tx: 'kernel-hw', rx: 'kernel-hw' });
  const hidden = readOffload({ ...facts, binding: stubDiag(diag(0, 0, '')) });
  t.match(hidden, { tx: 'kernel', rx: 'kernel', source: 'ktls' });
  t.match(hidden.reason, /CAP_NET_ADMIN/);
  const failed = readOffload({ ...facts, binding: stubDiag(-13) });
  t.match(failed, { tx: 'kernel', rx: 'kernel' });
  t.match(failed.reason, /sock_diag failed \(EACCES\)/);
  const half = readOffload({
    ...facts,
    kernelDirections: { tx: true, rx: false },
    fallbackReason: 'rx keys refused',
    binding: stubDiag(diag(k.TLS_CONF_SW, 0)),
  });
  t.match(half, { tx: 'kernel-sw', rx: 'userspace', reason: 'rx keys refused' });
  t.end();
});

void t.test('node:tls carries a Duplex: offload says userspace', async (t) => {
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert });
  t.teardown(() => server.close());
  const [c, s] = await loopbackPair();
  // A Duplex that is not a net.Socket: node:tls keeps the records (the existing bridge).
  const wrapped = new Duplex({ read: () => undefined, write: (chunk: Buffer, _e, cb) => void s.write(chunk, cb) });
  s.on('data', (d: Buffer) => wrapped.push(d));
  const got = new Promise<ktls.KtlsSocket>((resolve) => server.once('secureConnection', resolve));
  server.emit('connection', wrapped);
  const client = tls.connect({ socket: c, servername: 'localhost', ca: CERTS.ca });
  client.on('error', () => undefined);
  const sock = await got;
  t.match(sock.offload, { tx: 'userspace', rx: 'userspace', source: 'ktls' });
  t.equal(sock.offload.reason, 'a connection over a transport that is not TCP; node:tls keeps protecting its records', "the KTLS_NODE_TLS warning's words");
  client.destroy();
  sock.destroy();
});
