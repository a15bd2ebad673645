// connect() as tls.connect(): its argument forms, the callback and the
// 'secureConnect'/'error' events of the returned request, argument errors
// thrown as node:net throws them, and each way of listening getting a failure
// exactly once (an uncaught 'error' for callback-only callers, a rejection for await).
import t from 'tap';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { helloServer } from '../helpers/connect-cases.js';
import { readAll } from '../helpers/pair.js';
import { parity } from '../helpers/parity-log.js';
import { CERTS, FIXTURES, portOf } from '../helpers/tls.js';

process.on('warning', () => undefined); // KTLS_FALLBACK on hosts without kTLS

const TLS = { ca: CERTS.ca, servername: 'localhost' } as const;

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  const port = portOf(s);
  await new Promise((resolve) => s.close(resolve));
  return port;
}

t.test("connect(options, cb): cb gets the socket as argument and this, the request emits 'secureConnect' with it, await gives it", async (t) => {
  const { server, port } = await helloServer();
  let self: unknown;
  let arg: ktls.KtlsSocket | undefined;
  const request = ktls.connect({ host: '127.0.0.1', port, ...TLS }, function (this: ktls.KtlsSocket, s) {
    self = this;
    arg = s;
  });
  t.type(request, ktls.KtlsConnectRequest);
  t.equal(typeof request.then, 'function', 'a thenable');
  const event = new Promise<ktls.KtlsSocket>((resolve) => {
    request.once('secureConnect', resolve);
  });
  const sock = await request;
  t.type(sock, ktls.KtlsSocket);
  t.equal(arg, sock, 'the callback got the socket');
  t.equal(self, sock, 'and as this');
  t.equal(await event, sock, "'secureConnect' carried it");
  t.equal((await readAll(sock)).toString(), 'hello');
  parity(t, ['tls.connect', 'TLSSocket@secureConnect'], sock);
  server.close();
});

t.test('connect(port, host, options, cb) and connect(port, options, cb), as tls.connect', async (t) => {
  const { server, port } = await helloServer();
  const a = await new Promise<ktls.KtlsSocket>((resolve) => void ktls.connect(port, '127.0.0.1', TLS, resolve));
  t.equal(a.remotePort, port);
  t.equal((await readAll(a)).toString(), 'hello');
  const b = await new Promise<ktls.KtlsSocket>((resolve) => void ktls.connect(port, { host: '127.0.0.1', ...TLS }, resolve));
  t.equal(b.remoteAddress, '127.0.0.1');
  t.equal((await readAll(b)).toString(), 'hello');
  parity(t, ['tls.connect', 'TLSSocket@secureConnect'], a);
  server.close();
});

t.test("a refused connection is an 'error' event for a listener and a rejection for await, with net's code and syscall", async (t) => {
  const port = await closedPort();
  const request = ktls.connect({ host: '127.0.0.1', port, ...TLS });
  const event = new Promise<Error>((resolve) => {
    request.once('error', resolve);
  });
  await t.rejects(request, { code: 'ECONNREFUSED', syscall: 'connect', port });
  t.match(await event, { code: 'ECONNREFUSED', syscall: 'connect' });
});

t.test('argument errors are thrown, as by tls.connect', async (t) => {
  for (const port of [-1, 65536, 1.5, Number.NaN, '', ' ', 'abc', '70000'])
    t.throws(() => ktls.connect({ host: '127.0.0.1', port, ...TLS }), { code: 'ERR_SOCKET_BAD_PORT' }, `port ${JSON.stringify(port)}`);
  t.throws(() => ktls.connect(65536, '127.0.0.1'), { code: 'ERR_SOCKET_BAD_PORT' }, 'positional port 65536');
  t.throws(() => ktls.connect({ port: true as unknown as number }), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => ktls.connect({ port: 1, family: 5 }), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => ktls.connect({ port: 1, localAddress: 'here' }), { code: 'ERR_INVALID_IP_ADDRESS' });
  t.throws(() => ktls.connect({ port: 1, timeout: -1 }), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => ktls.connect({ port: 1, signal: {} as AbortSignal }), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => ktls.connect({ port: 1, lookup: 'dns' as unknown as net.LookupFunction }), { code: 'ERR_INVALID_ARG_TYPE' });
  // A path is a Unix-domain socket, as for tls.connect() (its records stay on node:tls: not-tcp.test.ts).
  const missing = path.join(os.tmpdir(), `ktls-missing-${process.pid}.sock`);
  const outcome = (err: unknown): string => `${String((err as NodeJS.ErrnoException).code)} ${String((err as NodeJS.ErrnoException).syscall)}`;
  const ours = await ktls.connect(missing, TLS).then(() => 'connected', outcome);
  const theirs = await new Promise<string>((resolve) => tls.connect({ path: missing, ...TLS }).once('error', (err) => resolve(outcome(err))));
  t.equal(ours, theirs, `a path nobody listens on: ${theirs}, as on node:tls`);
});

// Each caller style in a process of its own, which reports how the failure reached it.
const CHILD = `
const ktls = require(process.argv[2]);
const [mode, port, fixtures] = process.argv.slice(3);
const seen = [];
// Report 300 ms after the first outcome (anything delivered twice would have come by then), or after 10 s of nothing.
let settle;
const report = () => { console.log(JSON.stringify(seen)); process.exit(0); };
const note = (what) => { seen.push(what); settle ??= setTimeout(report, 300); };
setTimeout(report, 10_000);
process.on('uncaughtException', (e) => note('uncaught:' + (e.code || e.message)));
process.on('unhandledRejection', (e) => note('unhandledRejection:' + (e && e.code)));
process.on('warning', () => undefined);
const opts = { host: '127.0.0.1', port: Number(port), servername: 'localhost' };
if (mode === 'callback') ktls.connect(opts, () => note('callback'));
if (mode === 'nothing') ktls.connect(opts);
if (mode === 'await') ktls.connect(opts).then(() => note('resolved'), (e) => note('rejected:' + e.code));
if (mode === 'listener') ktls.connect(opts, () => note('callback')).on('error', (e) => note('error:' + e.code));
if (mode === 'await+listener') { const r = ktls.connect(opts); r.on('secureConnect', () => note('secureConnect')); r.catch((e) => note('rejected:' + e.code)); }
if (mode === 'throwing-callback') {
  const fs = require('fs'); const path = require('path'); const tls = require('tls');
  const server = tls.createServer({ key: fs.readFileSync(path.join(fixtures, 'server.key')), cert: fs.readFileSync(path.join(fixtures, 'server.pem')) }, (s) => s.end());
  server.listen(0, '127.0.0.1', () => {
    ktls.connect({ ...opts, port: server.address().port, ca: fs.readFileSync(path.join(fixtures, 'ca.pem')) }, (s) => { s.destroy(); server.close(); throw Object.assign(new Error('from the callback'), { code: 'THROWN' }); });
  });
}
`;

t.test('a failure reaches each caller style once, as tls.connect or a promise would deliver it', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-connect-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const script = path.join(dir, 'child.cjs');
  fs.writeFileSync(script, CHILD);
  const port = await closedPort();
  const index = path.resolve(__dirname, '..', '..', 'lib', 'index.js');
  const run = (mode: string): Promise<string[]> =>
    new Promise((resolve, reject) =>
      execFile(process.execPath, [script, index, mode, String(port), FIXTURES], { timeout: 20_000 }, (err, stdout) =>
        err ? reject(new Error(`child ${mode} failed`, { cause: err })) : resolve(JSON.parse(stdout) as string[]),
      ),
    );
  t.same(await run('callback'), ['uncaught:ECONNREFUSED'], "callback only: an unhandled 'error', as tls.connect's socket; no rejection reported");
  t.same(await run('nothing'), ['uncaught:ECONNREFUSED'], "no listener at all: an unhandled 'error'");
  t.same(await run('await'), ['rejected:ECONNREFUSED'], 'await/then: a rejection only');
  t.same(await run('listener'), ['error:ECONNREFUSED'], "an 'error' listener: the event only");
  t.same(await run('await+listener'), ['rejected:ECONNREFUSED'], "then/catch with a 'secureConnect' listener: the rejection only");
  t.same(await run('throwing-callback'), ['uncaught:THROWN'], 'a callback that throws: an uncaught exception, not a rejection');
});
