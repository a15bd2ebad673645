// What kTLS cannot carry stays on node:tls behind the same API: a Unix-domain
// socket, a `socket` that is any Duplex, and `onread`. Each scenario runs on
// node:tls and on ktls in the same run, and both must see the same bytes and
// endings; the ktls sockets say `kernel === false`.
import t from 'tap';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { CERTS } from '../helpers/tls.js';

const TLS = { ca: CERTS.ca, servername: 'localhost' };
const serverOptions = { key: CERTS.key, cert: CERTS.cert };
process.on('warning', () => undefined); // KTLS_NODE_TLS is expected here

type Connected = tls.TLSSocket | ktls.KtlsSocket;

/** Reads to the end: the text, and the events that closed it. */
function drain(s: Connected): Promise<{ text: string; events: string[] }> {
  return new Promise((resolve) => {
    let text = '';
    const events: string[] = [];
    s.setEncoding('utf8');
    s.on('data', (c: string) => (text += c));
    s.on('end', () => events.push('end'));
    s.on('error', (e: NodeJS.ErrnoException) => events.push(`error ${String(e.code)}`));
    s.on('close', (hadError: boolean) => (events.push(`close(${String(hadError)})`), resolve({ text, events })));
  });
}

const nodeConnect = (o: tls.ConnectionOptions): Promise<tls.TLSSocket> =>
  new Promise((resolve, reject) => {
    const c = tls.connect(o, () => resolve(c));
    c.once('error', reject);
  });

t.test('a Unix-domain socket: every server and client pair exchanges the same bytes and endings', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-unix-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const results: Record<string, unknown> = {};
  for (const [sName, make] of [
    ['node:tls', (cb: (s: Connected) => void) => tls.createServer(serverOptions, cb)],
    ['ktls', (cb: (s: Connected) => void) => ktls.createServer(serverOptions, cb)],
  ] as const) {
    const kernelFlags: boolean[] = [];
    const server = make((s) => {
      if (s instanceof ktls.KtlsSocket) kernelFlags.push(s.kernel);
      s.on('error', () => undefined);
      s.end('hello over a Unix socket');
    });
    const sockPath = path.join(dir, `${sName.replace(':', '')}.sock`);
    await new Promise<void>((resolve) => (server as net.Server).listen(sockPath, () => resolve()));
    for (const [cName, connect] of [
      ['node:tls', (o: tls.ConnectionOptions) => nodeConnect(o)],
      ['ktls', async (o: tls.ConnectionOptions) => ktls.connectAsync(o as ktls.KtlsConnectOptions)],
    ] as const) {
      const c = await connect({ path: sockPath, ...TLS });
      if (c instanceof ktls.KtlsSocket) t.equal(c.kernel, false, `${sName} server, ${cName} client: the client's records stay on node:tls`);
      const got = await drain(c);
      results[`${sName} server, ${cName} client`] = got;
    }
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (sName === 'ktls') t.same(kernelFlags, [false, false], "the ktls server's connections stay on node:tls");
  }
  const oracle = results['node:tls server, node:tls client'];
  for (const [pair, got] of Object.entries(results)) t.same(got, oracle, `${pair}: as node:tls with node:tls`);
});

t.test('a socket option that is any Duplex (no fd) carries the connection as on node:tls', async (t) => {
  const server = tls.createServer(serverOptions, (s) => (s.on('error', () => undefined), s.end('hello over a Duplex')));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  // A stream with no handle over a TCP connection, as a proxy or a test harness hands over.
  const viaDuplex = async (): Promise<Duplex> => {
    const raw = net.connect(port, '127.0.0.1');
    await new Promise((resolve) => raw.once('connect', resolve));
    const d = new Duplex({
      read: () => undefined,
      write: (chunk: Buffer, _e, cb) => void raw.write(chunk, cb),
      final: (cb) => void raw.end(cb),
    });
    raw.on('data', (c: Buffer) => d.push(c)).on('end', () => d.push(null));
    raw.on('close', () => d.destroy());
    return d;
  };
  const a = await nodeConnect({ socket: await viaDuplex(), ...TLS });
  const b = await ktls.connectAsync({ socket: await viaDuplex(), ...TLS });
  t.equal(b.kernel, false, 'the records stay on node:tls');
  const [na, kb] = await Promise.all([drain(a), drain(b)]);
  t.same(kb, na, `the same bytes and endings: ${JSON.stringify(na)}`);
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

t.test('onread: data goes to the callback in the given buffer, never to data events, as on node:tls', async (t) => {
  const payload = Buffer.alloc(100_000, 0x61);
  const server = tls.createServer(serverOptions, (s) => (s.on('error', () => undefined), s.end(payload)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  const run = async (which: 'node:tls' | 'ktls'): Promise<{ bytes: number; biggest: number; dataEvents: number; ended: boolean }> => {
    const buffer = Buffer.alloc(4096);
    let bytes = 0;
    let biggest = 0;
    let dataEvents = 0;
    const onread = { buffer, callback: (n: number) => ((bytes += n), (biggest = Math.max(biggest, n)), true) };
    const o = { port, host: '127.0.0.1', ...TLS, onread };
    const s: Connected = which === 'ktls' ? await ktls.connectAsync(o) : await nodeConnect(o);
    s.on('data', () => dataEvents++);
    const ended = await new Promise<boolean>((resolve) => s.once('end', () => resolve(true)).once('close', () => resolve(false)));
    s.destroy();
    return { bytes, biggest, dataEvents, ended };
  };
  const ours = await run('ktls');
  const theirs = await run('node:tls');
  t.same(ours, theirs, `the same delivery: ${JSON.stringify(theirs)}`);
  t.equal(ours.bytes, payload.length, 'every byte reached the callback');
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

t.test('onread.buffer() is asked for each piece and once for the read that finds the end, as on node:tls', async (t) => {
  const message = Buffer.from('hello world!'); // 12 bytes: six 2-byte pieces
  const server = tls.createServer(serverOptions, (s) => (s.on('error', () => undefined), s.end(message)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  const run = async (which: 'node:tls' | 'ktls'): Promise<{ asked: number; got: string }> => {
    const pool = [Buffer.alloc(2), Buffer.alloc(2), Buffer.alloc(2)];
    let asked = 0;
    const pieces: Buffer[] = [];
    const onread = {
      buffer: () => pool[asked++ % pool.length],
      callback: (n: number, buf: Uint8Array) => (pieces.push(Buffer.from(buf.subarray(0, n))), true),
    };
    const o = { port, host: '127.0.0.1', ...TLS, onread };
    const s: Connected = which === 'ktls' ? await ktls.connectAsync(o) : await nodeConnect(o);
    await new Promise((resolve) => s.once('end', resolve).once('close', resolve));
    s.destroy();
    return { asked, got: Buffer.concat(pieces).toString() };
  };
  const theirs = await run('node:tls');
  t.same(await run('ktls'), theirs, `the same: ${JSON.stringify(theirs)}`);
  t.equal(theirs.got, message.toString(), 'every byte reached the callback');
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

t.test('onread with an empty buffer destroys the socket with ERR_INVALID_ARG_VALUE instead of spinning', async (t) => {
  const server = tls.createServer(serverOptions, (s) => (s.on('error', () => undefined), s.end('some data')));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  const s = await ktls.connectAsync({ port, host: '127.0.0.1', ...TLS, onread: { buffer: Buffer.alloc(0), callback: () => true } });
  const err = await new Promise<NodeJS.ErrnoException>((resolve) => s.once('error', resolve));
  t.equal(err.code, 'ERR_INVALID_ARG_VALUE');
  await new Promise<void>((resolve) => server.close(() => resolve()));
});
