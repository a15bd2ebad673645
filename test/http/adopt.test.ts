// ktls.adopt(): a plain-TCP net.Socket taken over as a KtlsSocket with no TLS,
// so sendFile() is sendfile(2) into TCP. Bytes node:net read before the
// take-over come first; errors are typed; the net.Socket is left alone on failure.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { sha256 } from '../helpers/http.js';
import { CERTS, listening, portOf } from '../helpers/tls.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-adopt-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const big = randomBytes(3 * 1024 * 1024 + 11);
const bigPath = path.join(dir, 'big.bin');
fs.writeFileSync(bigPath, big);

/** A TCP server on 127.0.0.1 whose connections go to `onConn`, and a connected client. */
async function tcpPair(onConn: (sock: net.Socket) => void): Promise<{ server: net.Server; client: net.Socket }> {
  const server = net.createServer(onConn).listen(0, '127.0.0.1');
  await listening(server);
  const client = net.connect(portOf(server), '127.0.0.1');
  await new Promise<void>((resolve, reject) => client.once('connect', resolve).once('error', reject));
  return { server, client };
}

/** Everything `sock` sends until its end. */
function collect(sock: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  sock.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve, reject) => sock.once('end', () => resolve(Buffer.concat(chunks))).once('error', reject));
}

/** A connected pair whose server side is still a net.Socket. */
async function rawPair(t: Test): Promise<{ server: net.Socket; client: net.Socket }> {
  let got!: (s: net.Socket) => void;
  const accepted = new Promise<net.Socket>((resolve) => (got = resolve));
  const { server, client } = await tcpPair((s) => got(s));
  const sock = await accepted;
  t.teardown(() => {
    sock.destroy();
    client.destroy();
    server.close();
  });
  return { server: sock, client };
}

t.test('echo through an adopted socket is byte-exact, bytes node:net had read first', async (t) => {
  const { server: raw, client } = await rawPair(t);
  const first = randomBytes(70_000);
  const rest = randomBytes(2 * 1024 * 1024 + 5);
  client.write(first);
  // Let node:net read the first bytes into its buffer without anyone consuming them.
  await new Promise<void>((resolve) => raw.once('readable', resolve));
  t.ok(raw.readableLength > 0, `node:net holds ${raw.readableLength} unread bytes at the take-over`);
  const s = await ktls.adopt(raw);
  t.ok(raw.destroyed, 'the net.Socket let go');
  t.equal(s.encrypted, false, 'not encrypted');
  t.equal(s.kernel, false, 'no kernel TLS');
  t.same(s.kernelDirections, { tx: false, rx: false });
  t.equal(s.version, null);
  t.equal(s.getProtocol(), null);
  t.equal(s.remotePort, client.localPort, 'remote address carried over');
  s.pipe(s);
  const echoed = collect(client);
  client.end(rest);
  const got = await echoed;
  t.equal(got.length, first.length + rest.length, 'every byte back');
  t.equal(sha256(got), sha256(Buffer.concat([first, rest])), 'in order, byte-exact');
});

t.test('sendFile through an adopted socket: sendfile(2) into TCP, byte-exact, ordered with writes', async (t) => {
  const { server: raw, client } = await rawPair(t);
  const s = await ktls.adopt(raw);
  const received = collect(client);
  s.write('head:');
  const sent = await s.sendFile(bigPath);
  const sentRange = await s.sendFile(bigPath, { offset: 100, length: 16385 });
  s.end(':tail');
  const got = await received;
  t.equal(sent, big.length, 'sendFile resolved with the whole file');
  t.equal(sentRange, 16385);
  const want = Buffer.concat([Buffer.from('head:'), big, big.subarray(100, 100 + 16385), Buffer.from(':tail')]);
  t.equal(got.length, want.length);
  t.equal(sha256(got), sha256(want), 'byte-exact, in write order');
  t.equal(s.bytesWritten, want.length);
});

t.test("serveFile on a plain http.Server fed with adopted sockets sends bodies with sendfile ('auto')", async (t) => {
  const results: ktls.ServeFileResult[] = [];
  const app = http.createServer((req, res) => {
    t.equal((req.socket as unknown as ktls.KtlsSocket).encrypted, false);
    void ktls.serveFile(res, req.url ?? '/', { root: dir }).then((r) => results.push(r));
  });
  const server = net.createServer((sock) => {
    void ktls.adopt(sock).then(
      (s) => app.emit('connection', s),
      () => sock.destroy(),
    );
  });
  server.listen(0, '127.0.0.1');
  await listening(server);
  t.teardown(() => server.close());
  const agent = new http.Agent({ keepAlive: true });
  t.teardown(() => agent.destroy());
  for (let i = 0; i < 3; i++) {
    const body = await new Promise<Buffer>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: portOf(server), path: '/big.bin', agent }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks)));
        })
        .on('error', reject);
    });
    t.equal(sha256(body), sha256(big), `response ${i + 1} byte-exact`);
  }
  t.equal(results.length, 3);
  t.ok(
    results.every((r) => r.method === 'sendfile' && r.bytes === big.length),
    'every body went out through KtlsSocket#sendFile',
  );
});

t.test('end() sends a FIN; the peer FIN ends the readable side', async (t) => {
  const { server: raw, client } = await rawPair(t);
  const s = await ktls.adopt(raw, { allowHalfOpen: true });
  const got = collect(client);
  const ended = new Promise<void>((resolve) => s.once('end', resolve));
  const closed = new Promise<void>((resolve) => s.once('close', resolve));
  s.resume();
  client.end();
  await ended;
  t.equal(s.writable, true, 'half-open: still writable after the peer FIN');
  s.end('bye');
  t.equal((await got).toString(), 'bye');
  await closed;
  t.equal(s.destroyed, true, 'closed once both sides ended');
});

t.test('records-only members are refused with ERR_KTLS_UNSUPPORTED', async (t) => {
  const { server: raw } = await rawPair(t);
  const s = await ktls.adopt(raw);
  t.teardown(() => s.destroy());
  await t.rejects(s.updateKeys(), { code: 'ERR_KTLS_UNSUPPORTED' });
  t.throws(() => s.setMaxRecordSize(4096), { code: 'ERR_KTLS_UNSUPPORTED' });
});

t.test('adopt() errors are typed and leave the net.Socket as it was', async (t) => {
  await t.rejects(ktls.adopt({} as net.Socket), { code: 'ERR_INVALID_ARG_TYPE' }, 'not a socket');
  await t.rejects(ktls.adopt(null as unknown as net.Socket), { code: 'ERR_INVALID_ARG_TYPE' });

  const { server: raw, client } = await rawPair(t);
  raw.setEncoding('utf8');
  await t.rejects(ktls.adopt(raw), { code: 'ERR_KTLS_ENCODING' }, 'decoded text cannot be taken over');
  t.notOk(raw.destroyed, 'the net.Socket is untouched');
  const echoed = new Promise<string>((resolve) => raw.once('data', (d: string) => resolve(d)));
  client.write('still works');
  t.equal(await echoed, 'still works', 'node:net still reads it');

  const closed = new net.Socket();
  await t.rejects(ktls.adopt(closed), { code: 'ERR_KTLS_NOT_TCP' }, 'a socket with no fd');
  raw.destroy();
  await t.rejects(ktls.adopt(raw), { code: 'ERR_SOCKET_CLOSED' }, 'a destroyed socket');
});

t.test('adopting twice: the second call rejects with ERR_SOCKET_CLOSED; the first socket keeps working', async (t) => {
  const { server: raw, client } = await rawPair(t);
  const s = await ktls.adopt(raw);
  await t.rejects(ktls.adopt(raw), { code: 'ERR_SOCKET_CLOSED' }, 'the net.Socket was handed over already');
  await t.rejects(ktls.adopt(s as unknown as net.Socket), { code: 'ERR_INVALID_ARG_TYPE' }, 'a KtlsSocket is not a net.Socket');
  const got = collect(client);
  s.end('one owner');
  t.equal((await got).toString(), 'one owner');
});

t.test('a Unix domain socket is refused with ERR_KTLS_NOT_TCP', async (t) => {
  const sockPath = path.join(dir, 'u.sock');
  let got!: (s: net.Socket) => void;
  const accepted = new Promise<net.Socket>((resolve) => (got = resolve));
  const server = net.createServer((s) => got(s)).listen(sockPath);
  await listening(server);
  const client = net.connect(sockPath);
  const raw = await accepted;
  t.teardown(() => {
    raw.destroy();
    client.destroy();
    server.close();
  });
  await t.rejects(ktls.adopt(raw), { code: 'ERR_KTLS_NOT_TCP' });
  t.notOk(raw.destroyed, 'left as it was');
});

t.test('a tls.TLSSocket is refused with ERR_KTLS_TLS_SOCKET', async (t) => {
  const server = tls.createServer({ key: CERTS.key, cert: CERTS.cert }, (s) => s.end()).listen(0, '127.0.0.1');
  await listening(server);
  const c = tls.connect({ port: portOf(server), host: '127.0.0.1', ca: CERTS.ca, servername: 'localhost' });
  t.teardown(() => {
    c.destroy();
    server.close();
  });
  await new Promise<void>((resolve, reject) => c.once('secureConnect', resolve).once('error', reject));
  await t.rejects(ktls.adopt(c), { code: 'ERR_KTLS_TLS_SOCKET' });
});
