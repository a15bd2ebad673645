// connect() as tls.connect(), each scenario run on both in one run: the socket
// returned at once, what is done to it before the handshake, its events, its
// argument forms and errors, and each way of listening getting a failure
// exactly once; connectAsync(), the promise form.
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

type Opener = (options: tls.ConnectionOptions & { port: number }, cb?: () => void) => net.Socket;
const STACKS: Array<[string, Opener]> = [
  ['node:tls', (o, cb) => tls.connect(o, cb)],
  ['ktls', (o, cb) => ktls.connect(o as ktls.KtlsConnectOptions, cb) as unknown as net.Socket],
];

/** A node:tls echo server, and what each connection sent it. */
async function echoServer(greeting?: string): Promise<{ server: tls.Server; port: number; got: string[] }> {
  const got: string[] = [];
  const server = tls.createServer({ key: CERTS.key, cert: CERTS.cert }, (s) => {
    if (greeting) s.write(greeting);
    const i = got.push('') - 1;
    s.on('data', (d: Buffer) => (got[i] += d.toString()));
    s.on('error', () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { server, port: portOf(server), got };
}

/** Events on `s` with what an application sees of their arguments, until 'close'. */
function recordUntilClose(s: net.Socket): Promise<string[]> {
  const seen: string[] = [];
  for (const e of ['connect', 'ready', 'secureConnect', 'end', 'finish', 'timeout']) s.on(e, () => seen.push(e));
  s.on('data', (d: Buffer | string) => seen.push(`data ${typeof d} ${d.toString()}`));
  s.on('error', (err: NodeJS.ErrnoException) => seen.push(`error ${String(err.code)} ${String(err.syscall)}`));
  return new Promise((resolve) => s.once('close', (hadError: boolean) => resolve([...seen, `close ${hadError}`])));
}

t.test('connect(options, cb) returns the socket at once; cb gets it as this, after connect, as tls.connect; data only after secureConnect', async (t) => {
  // The server writes first: its bytes reach the client before the switch, and must still come after 'secureConnect'.
  const { server, port } = await echoServer('hi');
  const runs: string[][] = [];
  let last: ktls.KtlsSocket | undefined;
  for (const [name, open] of STACKS) {
    let self: unknown;
    const s = open({ host: '127.0.0.1', port, ...TLS }, function (this: unknown) {
      self = this;
      s.end();
    });
    const state = `connecting ${s.connecting} pending ${s.pending} readyState ${s.readyState} remote ${String(s.remoteAddress)}`;
    // 'finish' (our FIN) and 'end' (the echo server's) race on loopback, on node:tls too: the connect phase is what is compared.
    const events = (await recordUntilClose(s)).filter((e) => e !== 'finish');
    t.equal(self, s, `${name}: the callback's this is the returned socket`);
    runs.push([state, ...events]);
    if (name === 'ktls') last = s as unknown as ktls.KtlsSocket;
  }
  t.same(runs[1], runs[0], `the same state and events as node:tls: ${runs[0].join(', ')}`);
  parity(t, ['tls.connect', 'TLSSocket@connect', 'TLSSocket@ready', 'TLSSocket@secureConnect', 'TLSSocket#connecting', 'TLSSocket#pending'], last);
  server.close();
});

t.test('writes, end(), setEncoding() and setTimeout() made before the handshake take effect, as on tls.connect', async (t) => {
  const { server, port, got } = await echoServer();
  const runs: string[][] = [];
  let last: net.Socket | undefined;
  for (const [, open] of STACKS) {
    const s = open({ host: '127.0.0.1', port, ...TLS });
    last = s;
    s.setEncoding('utf8');
    s.setTimeout(60_000);
    s.setNoDelay(true);
    s.setKeepAlive(true, 1000);
    s.write('one,', () => undefined);
    s.write('two,');
    s.end('three');
    const events = await recordUntilClose(s);
    // Data chunks may split differently: compare the text and the events around it.
    const text = events.filter((e) => e.startsWith('data ')).map((e) => e.slice('data string '.length));
    runs.push([
      ...events.filter((e) => !e.startsWith('data ')),
      `text ${text.join('')}`,
      `timeout ${String(s.timeout)}`,
      `types ${events.some((e) => e.startsWith('data object'))}`,
    ]);
  }
  t.same(runs[1], runs[0], `the same as node:tls: ${runs[0].join(', ')}`);
  t.same(got, ['one,two,three', 'one,two,three'], 'each server got the writes in order');
  parity(t, ['TLSSocket#end', 'TLSSocket#setTimeout', 'TLSSocket#setNoDelay', 'TLSSocket#setKeepAlive'], last as unknown as ktls.KtlsSocket);
  server.close();
});

t.test('sendFile() and unref() before the handshake: the file goes out between the writes around it, in order', async (t) => {
  const { server, port, got } = await echoServer();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-early-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'body');
  const body = Buffer.alloc(100_000, 'f');
  fs.writeFileSync(file, body);
  const s = ktls.connect({ host: '127.0.0.1', port, ...TLS });
  s.unref(); // the attempt must not keep the process alive; the test's own server does
  s.write('head,');
  const sent = s.sendFile(file);
  s.end(',tail');
  const echoed = await readAll(s);
  t.equal(await sent, body.length, 'sendFile() made before the handshake resolves with the bytes sent');
  t.equal(got[0], `head,${body.toString()},tail`, 'the server got the write, the file and the end, in order');
  t.equal(echoed.toString(), got[0], 'and echoed them');
  server.close();
});

t.test('destroy() right after connect(): the same events as tls.connect, and the server keeps nothing', async (t) => {
  const { server, port } = await echoServer();
  const runs: string[][] = [];
  for (const [, open] of STACKS) {
    const s = open({ host: '127.0.0.1', port, ...TLS });
    const writes: string[] = [];
    s.write('lost', (err) => writes.push(`write cb ${String(err && 'code' in err ? err.code : undefined)}`));
    s.destroy();
    const events = await recordUntilClose(s);
    runs.push([...events, ...writes, `destroyed ${s.destroyed}`]);
  }
  t.same(runs[1], runs[0], `the same as node:tls: ${runs[0].join(', ')}`);
  await new Promise<void>((resolve) => setTimeout(resolve, 100));
  const open = await new Promise<number>((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
  t.equal(open, 0, 'no connection left on the server');
  server.close();
});

t.test('connect(port, host, options, cb) and connect(port, options, cb), as tls.connect', async (t) => {
  const { server, port } = await helloServer();
  const a = await new Promise<ktls.KtlsSocket>(
    (resolve) =>
      void ktls.connect(port, '127.0.0.1', TLS, function (this: ktls.KtlsSocket) {
        resolve(this);
      }),
  );
  t.equal(a.remotePort, port);
  t.equal((await readAll(a)).toString(), 'hello');
  const b = await new Promise<ktls.KtlsSocket>((resolve) => {
    const s = ktls.connect(port, { host: '127.0.0.1', ...TLS }, () => resolve(s));
  });
  t.equal(b.remoteAddress, '127.0.0.1');
  t.equal((await readAll(b)).toString(), 'hello');
  const c = await ktls.connectAsync(port, '127.0.0.1', TLS);
  t.type(c, ktls.KtlsSocket, 'connectAsync() resolves with the socket');
  t.equal((await readAll(c)).toString(), 'hello');
  t.throws(() => ktls.connectAsync(port, (() => undefined) as never), { code: 'ERR_INVALID_ARG_TYPE' }, 'connectAsync() takes no callback');
  parity(t, ['tls.connect', 'TLSSocket@secureConnect'], a);
  server.close();
});

t.test("a refused connection: the socket emits 'error' (net's code and syscall) and 'close', as tls.connect's; connectAsync() rejects", async (t) => {
  const port = await closedPort();
  const runs: string[][] = [];
  for (const [, open] of STACKS) runs.push(await recordUntilClose(open({ host: '127.0.0.1', port, ...TLS })));
  t.same(runs[1], runs[0], `the same as node:tls: ${runs[0].join(', ')}`);
  t.match(runs[0], ['error ECONNREFUSED connect', 'close true']);
  await t.rejects(ktls.connectAsync({ host: '127.0.0.1', port, ...TLS }), { code: 'ECONNREFUSED', syscall: 'connect', port });
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
  const ours = await ktls.connectAsync(missing, TLS).then(() => 'connected', outcome);
  const theirs = await new Promise<string>((resolve) => tls.connect({ path: missing, ...TLS }).once('error', (err) => resolve(outcome(err))));
  t.equal(ours, theirs, `a path nobody listens on: ${theirs}, as on node:tls`);
});

// Each caller style in a process of its own, which reports how the failure reached it, on tls.connect and on ktls.
const CHILD = `
const ktls = require(process.argv[2]);
const [mode, port, fixtures, stack] = process.argv.slice(3);
const tls = require('tls');
const connect = stack === 'ktls' ? ktls.connect : tls.connect;
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
if (mode === 'callback') connect(opts, () => note('callback'));
if (mode === 'nothing') connect(opts);
if (mode === 'listener') connect(opts, () => note('callback')).on('error', (e) => note('error:' + e.code));
if (mode === 'async') ktls.connectAsync(opts).then(() => note('resolved'), (e) => note('rejected:' + e.code));
if (mode === 'throwing-callback') {
  const fs = require('fs'); const path = require('path');
  const server = tls.createServer({ key: fs.readFileSync(path.join(fixtures, 'server.key')), cert: fs.readFileSync(path.join(fixtures, 'server.pem')) }, (s) => s.end());
  server.listen(0, '127.0.0.1', () => {
    connect({ ...opts, port: server.address().port, ca: fs.readFileSync(path.join(fixtures, 'ca.pem')) }, function () { this.destroy(); server.close(); throw Object.assign(new Error('from the callback'), { code: 'THROWN' }); });
  });
}
`;

t.test('a failure reaches each caller style once, as it does through tls.connect', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-connect-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const script = path.join(dir, 'child.cjs');
  fs.writeFileSync(script, CHILD);
  const port = await closedPort();
  const index = path.resolve(__dirname, '..', '..', 'lib', 'index.js');
  const run = (mode: string, stack: string): Promise<string[]> =>
    new Promise((resolve, reject) =>
      execFile(process.execPath, [script, index, mode, String(port), FIXTURES, stack], { timeout: 20_000 }, (err, stdout) =>
        err ? reject(new Error(`child ${mode} failed`, { cause: err })) : resolve(JSON.parse(stdout) as string[]),
      ),
    );
  for (const mode of ['callback', 'nothing', 'listener', 'throwing-callback']) {
    const theirs = await run(mode, 'node:tls');
    t.same(await run(mode, 'ktls'), theirs, `${mode}: ${theirs.join(', ')}, as on node:tls`);
  }
  t.same(await run('async', 'ktls'), ['rejected:ECONNREFUSED'], 'connectAsync(): a rejection only');
});

t.test('as tls.connect: a bad option throws at once, highWaterMark holds, getProtocol() is null once closed, setMaxSendFragment checks int32', async (t) => {
  const { server, port } = await echoServer();
  const runs: string[][] = [];
  for (const [, open] of STACKS) {
    const seen: string[] = [];
    try {
      open({ host: '127.0.0.1', port, ...TLS, ciphers: 'no-such-cipher' }).destroy();
      seen.push('no throw');
    } catch (err) {
      seen.push(`throws ${String((err as NodeJS.ErrnoException).code)}`);
    }
    const s = open({ host: '127.0.0.1', port, ...TLS, highWaterMark: 1024 } as tls.ConnectionOptions & { port: number });
    await new Promise<void>((resolve) => s.once('secureConnect', () => resolve()));
    seen.push(`readableHighWaterMark ${s.readableHighWaterMark}`);
    const fragment = (s as unknown as tls.TLSSocket).setMaxSendFragment.bind(s as unknown as tls.TLSSocket);
    for (const size of [Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31, 1.5]) {
      try {
        seen.push(`setMaxSendFragment(${size}) ${String(fragment(size))}`);
      } catch (err) {
        seen.push(`setMaxSendFragment(${size}) throws ${String((err as NodeJS.ErrnoException).code)}`);
      }
    }
    seen.push(`setMaxSendFragment(100) ${String(fragment(100))}`);
    const getProtocol = (): string | null => (s as unknown as tls.TLSSocket).getProtocol();
    seen.push(`protocol while open ${String(getProtocol())}`);
    s.destroy();
    await new Promise((resolve) => s.once('close', resolve));
    seen.push(`protocol once closed ${String(getProtocol())}`);
    runs.push(seen);
  }
  t.same(runs[1], runs[0], `the same as node:tls: ${runs[0].join(', ')}`);
  server.close();
});
