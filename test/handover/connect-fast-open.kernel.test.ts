// connect({ fastOpen: true }) under kernel TLS: the net.connect options on the
// Fast Open path (and the ordinary one), and a ClientHello in the SYN through a custom lookup.
import t from 'tap';
import * as fs from 'node:fs';
import type * as net from 'node:net';
import * as ktls from '../../lib/index.js';
import { connectOptionCases, helloServer } from '../helpers/connect-cases.js';
import { requireKtls } from '../helpers/kernel.js';
import { readAll } from '../helpers/pair.js';
import { parity } from '../helpers/parity-log.js';
import { CERTS } from '../helpers/tls.js';

t.before(async () => {
  await requireKtls(t);
  // Client (1) and server (2) Fast Open; this guest's kernel is ours to configure.
  fs.writeFileSync('/proc/sys/net/ipv4/tcp_fastopen', '3');
});

connectOptionCases(t, true, true);
connectOptionCases(t, false, true);

t.test('Fast Open through a custom lookup and a string port: the second connection carries the ClientHello in its SYN', async (t) => {
  // 127.0.0.5: the kernel keeps Fast Open cookies per destination address for the whole boot; other tests' first connections to 127.0.0.1 must not find ours.
  const { server, port } = await helloServer('127.0.0.5', 16);
  const lookup: net.LookupFunction = (_h, _o, cb) =>
    cb(null, [
      { address: '127.0.0.2', family: 4 },
      { address: '127.0.0.5', family: 4 },
    ]);
  const opts = { host: 'ktls.test', port: String(port), lookup, ca: CERTS.ca, servername: 'localhost', fastOpen: true };
  const first = await ktls.connectAsync(opts);
  t.equal(first.kernel, true);
  t.equal(first.getTcpInfo().synData, false, 'the first connection only fetches a cookie');
  t.equal((await readAll(first)).toString(), 'hello');
  const second = await ktls.connectAsync(opts);
  t.equal(second.kernel, true);
  t.equal(second.getTcpInfo().synData, true, 'TCPI_OPT_SYN_DATA: the SYN carried data');
  t.equal(second.remoteAddress, '127.0.0.5');
  t.equal((await readAll(second)).toString(), 'hello');
  parity(t, 'tls.connect', second);
  server.close();
});
