// TCP Fast Open, the record size limit and the splice proxy under kernel TLS.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as ktls from '../../lib/index.js';
import { requireKtls } from '../helpers/kernel.js';
import { loopbackPair, readAll, sessionKeys, sha256, upgradedPair } from '../helpers/pair.js';
import { CERTS, portOf } from '../helpers/tls.js';
import { recordSizesOnWire } from '../helpers/wire.js';

let caps: ktls.Capabilities;
t.before(async () => {
  caps = await requireKtls(t);
});

function fastOpenPassive(): number {
  const text = fs.readFileSync('/proc/net/netstat', 'utf8').split('\n');
  const names = text[0].split(/\s+/);
  const values = text[1].split(/\s+/);
  return Number(values[names.indexOf('TCPFastOpenPassive')]);
}

t.test('TCP Fast Open: the second connection carries the ClientHello in its SYN', async (t) => {
  // Client (1) and server (2) Fast Open; this guest's kernel is ours to configure.
  fs.writeFileSync('/proc/sys/net/ipv4/tcp_fastopen', '3');
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert, fastOpen: 16 }, (s) => s.end('hello'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const opts = { host: '127.0.0.1', port: portOf(server), ca: CERTS.ca, servername: 'localhost', fastOpen: true };
  const passive0 = fastOpenPassive();
  const first = await ktls.connectAsync(opts);
  t.equal(first.getTcpInfo().synData, false, 'the first connection only fetches a cookie');
  t.equal((await readAll(first)).toString(), 'hello');
  const second = await ktls.connectAsync(opts);
  t.equal(second.kernel, true);
  t.equal(second.getTcpInfo().synData, true, 'TCPI_OPT_SYN_DATA: the SYN carried data');
  t.equal((await readAll(second)).toString(), 'hello');
  t.equal(fastOpenPassive() - passive0, 1, 'the server counted one Fast Open passive open (TCPFastOpenPassive)');
  const plain = await ktls.connectAsync({ ...opts, fastOpen: false });
  t.equal(plain.getTcpInfo().synData, false, 'without fastOpen, an ordinary connect');
  t.equal((await readAll(plain)).toString(), 'hello');
  server.close();
});

t.test('maxRecordSize: records on the wire are no larger than asked, or ERR_KTLS_UNSUPPORTED', async (t) => {
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const [c, s] = await loopbackPair();
    const keys = sessionKeys(version, 'aes-128-gcm');
    const a = await ktls.upgrade(c, keys.a);
    if (!caps.txMaxPayloadLen) {
      t.throws(
        () => a.setMaxRecordSize(1000),
        { code: 'ERR_KTLS_UNSUPPORTED', syscall: 'setsockopt(TLS_TX_MAX_PAYLOAD_LEN)' },
        `${version}: this kernel has no TLS_TX_MAX_PAYLOAD_LEN`,
      );
      t.equal(a.maxRecordSize, 16384, 'unchanged');
      a.destroy();
      s.destroy();
      continue;
    }
    a.maxRecordSize = 1000;
    const data = randomBytes(10_000);
    const sizes = recordSizesOnWire(s, keys.ab, version, 'aes-128-gcm', data.length);
    a.write(data);
    const { plaintexts, opened } = await sizes;
    t.equal(sha256(opened), sha256(data), `${version}: the records open to the data`);
    t.ok(
      plaintexts.every((n) => n <= 1000),
      `${version}: every record ≤ 1000 B (${plaintexts.join(',')})`,
    );
    t.equal(plaintexts.length, 10, `${version}: 10 records`);
    a.destroy();
    s.destroy();
  }
});

t.test('proxy terminates TLS in the kernel and splices plaintext both ways', async (t) => {
  const [a, b] = await upgradedPair('TLSv1.3', 'aes-256-gcm');
  const backend = net.createServer({ allowHalfOpen: true }, (sock) => sock.pipe(sock));
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', () => resolve()));
  const plain = net.connect({ port: portOf(backend), host: '127.0.0.1', allowHalfOpen: true });
  await new Promise((resolve) => plain.once('connect', resolve));
  const proxied = ktls.proxy(b, plain);
  const data = randomBytes(2 * 1024 * 1024 + 5);
  const echoed = readAll(a);
  a.end(data);
  t.same(await proxied, { fromTls: data.length, toTls: data.length });
  t.equal(sha256(await echoed), sha256(data), 'the backend echo came back through kTLS intact');
  backend.close();
});
