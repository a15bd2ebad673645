// A node:tls handshake hands its connection to the kernel without losing,
// duplicating or reordering a byte: every version × cipher × topology, the
// worst-case timings, and randomized chunking and delays at the switch.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { carries, requireKtls } from '../helpers/kernel.js';
import { readAll, sha256 } from '../helpers/pair.js';
import { CERTS, SUITES, chaosProxy, listening, portOf, prng } from '../helpers/tls.js';

type V = keyof typeof SUITES;
type C = keyof (typeof SUITES)['TLSv1.3'];
const MATRIX: Array<[V, C]> = (['TLSv1.2', 'TLSv1.3'] as const).flatMap((v) =>
  (['aes-128-gcm', 'aes-256-gcm', 'chacha20-poly1305'] as const).map((c): [V, C] => [v, c]),
);
const tlsOpts = (v: V, c: C) => ({ minVersion: v, maxVersion: v, ciphers: SUITES[v][c] });
const serverOpts = (v: V, c: C) => ({ key: CERTS.key, cert: CERTS.cert, ...tlsOpts(v, c) });
const clientOpts = (v: V, c: C, port: number) => ({ port, host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca, ...tlsOpts(v, c) });

/** A ktls server that echoes; resolves its KtlsSockets as they arrive. */
const serverErrors: Error[] = [];
/** Asserts the ktls servers of this test reported no per-connection failure. */
function noServerErrors(t: Test): void {
  t.same(
    serverErrors.splice(0).map((e) => (e as Error & { code?: string }).code ?? e.message),
    [],
    'no tlsClientError on the ktls server',
  );
}

async function echoKtlsServer(opts: ktls.KtlsServerOptions, onSocket: (s: ktls.KtlsSocket) => void = () => undefined) {
  const server = ktls.createServer(opts, (s) => {
    onSocket(s);
    s.on('error', (err: Error) => serverErrors.push(err));
    s.pipe(s);
  });
  server.on('tlsClientError', (err: Error) => serverErrors.push(err));
  server.listen(0, '127.0.0.1');
  await listening(server);
  return server;
}

/** A node:tls server that greets at once (a worst case: data right behind its handshake) and then echoes. */
async function greetingTlsServer(opts: tls.TlsOptions, greeting: Buffer) {
  const server = tls.createServer(opts, (s) => {
    s.write(greeting);
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await listening(server);
  return server;
}

/** Ends `s` once it has received `n` bytes, resolving with them. */
function endAfter(s: tls.TLSSocket, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  s.on('data', (c: Buffer) => {
    chunks.push(c);
    if ((got += c.length) >= n) s.end();
  });
  return readAll(s).then(() => Buffer.concat(chunks));
}

t.test('ktls server, node:tls client that writes in the secureConnect tick', async (t) => {
  const caps = await requireKtls(t);
  for (const [v, c] of MATRIX) {
    const sockets: ktls.KtlsSocket[] = [];
    const server = await echoKtlsServer(serverOpts(v, c), (s) => sockets.push(s));
    const payload = randomBytes(256 * 1024);
    const client = tls.connect(clientOpts(v, c, portOf(server)), () => client.write(payload));
    t.equal(sha256(await endAfter(client, payload.length)), sha256(payload), `${v} ${c}: echo intact`);
    const k = carries(caps, v, c);
    t.match(
      sockets[0],
      { kernel: k, version: v, cipher: c },
      `${v} ${c}: the server socket runs ${k ? 'in the kernel' : 'on userspace records (this kernel cannot carry the suite)'}`,
    );
    server.close();
  }
  noServerErrors(t);
});

t.test('ktls client, node:tls server that writes on secureConnection', async (t) => {
  const caps = await requireKtls(t);
  for (const [v, c] of MATRIX) {
    const greeting = randomBytes(3000);
    const server = await greetingTlsServer(serverOpts(v, c), greeting);
    const sock = await ktls.connectAsync(clientOpts(v, c, portOf(server)));
    const k = carries(caps, v, c);
    t.match(
      sock,
      { kernel: k, version: v, cipher: c },
      `${v} ${c}: client socket ${k ? 'in the kernel' : 'on userspace records (this kernel cannot carry the suite)'}`,
    );
    const payload = randomBytes(256 * 1024);
    const got = readAll(sock);
    sock.end(payload);
    t.equal(sha256(await got), sha256(Buffer.concat([greeting, payload])), `${v} ${c}: greeting then echo, intact`);
    server.close();
  }
  noServerErrors(t);
});

t.test('ktls on both ends, both writing 4 MiB at once', async (t) => {
  await requireKtls(t);
  for (const v of ['TLSv1.2', 'TLSv1.3'] as const) {
    const a = randomBytes(4 << 20);
    const b = randomBytes(4 << 20);
    const server = ktls.createServer(serverOpts(v, 'aes-256-gcm'), (s) => {
      const got = readAll(s);
      s.end(b);
      void got.then((buf) => t.equal(sha256(buf), sha256(a), `${v}: server received the client's 4 MiB`));
    });
    server.listen(0, '127.0.0.1');
    await listening(server);
    const sock = await ktls.connectAsync(clientOpts(v, 'aes-256-gcm', portOf(server)));
    const got = readAll(sock);
    sock.end(a);
    t.equal(sha256(await got), sha256(b), `${v}: client received the server's 4 MiB`);
    t.equal(sock.kernel, true);
    server.close();
  }
  noServerErrors(t);
});

t.test('ALPN, SNI and client certificates are visible after the switch', async (t) => {
  await requireKtls(t);
  let serverSide: ktls.KtlsSocket | undefined;
  const server = await echoKtlsServer(
    { key: CERTS.key, cert: CERTS.cert, ca: CERTS.ca, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2', 'ktls-test'] },
    (s) => (serverSide = s),
  );
  const sock = await ktls.connectAsync({
    port: portOf(server),
    host: '127.0.0.1',
    servername: 'ktls.test',
    ca: CERTS.ca,
    key: CERTS.clientKey,
    cert: CERTS.clientCert,
    ALPNProtocols: ['ktls-test'],
  });
  t.equal(sock.alpnProtocol, 'ktls-test', 'client sees ALPN');
  t.equal(sock.authorized, true, 'client verified the server');
  t.equal(sock.getPeerCertificate().subject?.CN, 'localhost');
  sock.write('x');
  await new Promise((resolve) => sock.once('data', resolve)); // the server has switched by now
  t.equal(serverSide?.alpnProtocol, 'ktls-test', 'server sees ALPN');
  t.equal(serverSide?.servername, 'ktls.test', 'server sees SNI');
  t.equal(serverSide?.authorized, true, 'client certificate verified');
  t.equal(serverSide?.getPeerCertificate().subject?.CN, 'ktls-test-client', 'server sees the client certificate');
  t.equal(serverSide?.kernel, true);
  sock.end();
  await readAll(sock);
  server.close();
  noServerErrors(t);
});

t.test('resumed handshakes: node:tls clients resume against a ktls server (1.2 and 1.3)', async (t) => {
  await requireKtls(t);
  for (const v of ['TLSv1.2', 'TLSv1.3'] as const) {
    const server = await echoKtlsServer(serverOpts(v, 'aes-128-gcm'));
    const first = tls.connect(clientOpts(v, 'aes-128-gcm', portOf(server)));
    const session = await new Promise<Buffer>((resolve) => first.once('session', resolve));
    // 'session' fires inside OpenSSL's read; writing before leaving it corrupts node:tls's
    // own records (seen with a plain tls.Server too), so step out first.
    await new Promise((resolve) => setImmediate(resolve));
    first.end('1');
    await readAll(first);
    let reused: boolean | null = null;
    const second = tls.connect({ ...clientOpts(v, 'aes-128-gcm', portOf(server)), session }, () => {
      reused = second.isSessionReused();
      second.end('resumed data');
    });
    t.equal((await readAll(second)).toString(), 'resumed data', `${v}: data after a resumed handshake`);
    t.equal(reused, true, `${v}: node:tls client resumed against the ktls server`);
    server.close();
  }
  noServerErrors(t);
});

t.test('a client that sends data and close_notify with its Finished: every byte arrives, kernel or not', async (t) => {
  await requireKtls(t);
  for (const v of ['TLSv1.2', 'TLSv1.3'] as const) {
    const sockets: ktls.KtlsSocket[] = [];
    const server = await echoKtlsServer(serverOpts(v, 'aes-128-gcm'), (s) => sockets.push(s));
    const payload = randomBytes(100_000);
    const client = tls.connect(clientOpts(v, 'aes-128-gcm', portOf(server)), () => client.end(payload));
    t.equal(sha256(await readAll(client)), sha256(payload), `${v}: echo intact`);
    // Once the peer's FIN is in, setsockopt(TCP_ULP) answers ENOTCONN: such a socket stays in userspace.
    t.comment(`${v}: server socket kernel=${sockets[0]?.kernel}`);
    server.close();
  }
  noServerErrors(t);
});

t.test("a server that ends right behind its first data: TLS 1.2 sends close_notify, Node's TLS 1.3 server does not", async (t) => {
  await requireKtls(t);
  for (const v of ['TLSv1.2', 'TLSv1.3'] as const) {
    const server = tls.createServer(serverOpts(v, 'aes-256-gcm'), (s) => s.end('only this'));
    server.listen(0, '127.0.0.1');
    await listening(server);
    const strict = await ktls.connectAsync({ ...clientOpts(v, 'aes-256-gcm', portOf(server)), ktls: { allowTruncation: false } });
    const data: Buffer[] = [];
    strict.on('data', (d: Buffer) => data.push(d));
    const outcome = await new Promise<string>((resolve) =>
      strict.once('end', () => resolve('end')).once('error', (e: Error & { code?: string }) => resolve(e.code ?? 'error')),
    );
    t.equal(Buffer.concat(data).toString(), 'only this', `${v}: the data is delivered`);
    // Seen on the wire: node:tls 1.3 calling end() in 'secureConnection' sends data, two tickets, FIN, and no close_notify.
    t.equal(outcome, v === 'TLSv1.2' ? 'end' : 'ERR_KTLS_TRUNCATED', `${v}: ${outcome}`);
    const lax = await ktls.connectAsync(clientOpts(v, 'aes-256-gcm', portOf(server)));
    t.equal((await readAll(lax)).toString(), 'only this', `${v}: by default (as node:tls) it ends cleanly`);
    t.equal(lax.closeNotifyReceived, v === 'TLSv1.2', `${v}: closeNotifyReceived says which ending it was`);
    server.close();
  }
  noServerErrors(t);
});

t.test('randomized: chunking and delays at the switch never lose or duplicate a byte', async (t) => {
  const caps = await requireKtls(t);
  const runs = Number(process.env.KTLS_HANDOVER_RUNS ?? 24);
  let passed = 0;
  for (let i = 0; i < runs; i++) {
    const rand = prng(1000 + i);
    const [v, c] = MATRIX[i % MATRIX.length];
    const size = 1 + Math.floor(rand() * 300_000);
    const greeting = randomBytes(Math.floor(rand() * 40_000));
    const payload = randomBytes(size);
    const ktlsServerSide = i % 2 === 0;
    let ok: boolean;
    if (ktlsServerSide) {
      const server = await echoKtlsServer(serverOpts(v, c), (s) => s.write(greeting));
      const proxy = await chaosProxy(portOf(server), rand);
      const client = tls.connect(clientOpts(v, c, portOf(proxy)), () => client.write(payload));
      ok = sha256(await endAfter(client, greeting.length + payload.length)) === sha256(Buffer.concat([greeting, payload]));
      server.close();
      proxy.close();
    } else {
      const server = await greetingTlsServer(serverOpts(v, c), greeting);
      const proxy = await chaosProxy(portOf(server), rand);
      const sock = await ktls.connectAsync(clientOpts(v, c, portOf(proxy)));
      const got = readAll(sock);
      sock.end(payload);
      ok = sha256(await got) === sha256(Buffer.concat([greeting, payload])) && sock.kernel === carries(caps, v, c);
      server.close();
      proxy.close();
    }
    t.ok(ok, `run ${i} (seed ${1000 + i}, ${v} ${c}, ${size} B, ktls ${ktlsServerSide ? 'server' : 'client'})`);
    if (ok) passed++;
  }
  t.comment(`randomized hand-over: ${passed} of ${runs} runs passed with every byte intact`);
  noServerErrors(t);
});

t.test('a ktls client resumes its session, in the kernel (TLS 1.3 with waitForTicket)', async (t) => {
  await requireKtls(t);
  for (const v of ['TLSv1.2', 'TLSv1.3'] as const) {
    const server = await greetingTlsServer(serverOpts(v, 'aes-128-gcm'), Buffer.from('hi'));
    // waitForTicket only matters for TLS 1.3, whose tickets follow the handshake.
    const first = await ktls.connectAsync({ ...clientOpts(v, 'aes-128-gcm', portOf(server)), ktls: { waitForTicket: 5000 } });
    const session = first.getSession();
    t.ok(session, `${v}: getSession() has a session at the switch`);
    t.equal(first.kernel, true);
    const got1 = readAll(first);
    first.end('one');
    t.equal((await got1).toString(), 'hione');
    const second = await ktls.connectAsync({ ...clientOpts(v, 'aes-128-gcm', portOf(server)), session: session! });
    t.equal(second.isSessionReused(), true, `${v}: resumed`);
    t.equal(second.kernel, true);
    const got2 = readAll(second);
    second.end('two');
    t.equal((await got2).toString(), 'hitwo');
    server.close();
  }
  noServerErrors(t);
});

t.test('createTLSSocket + upgradeTLSSocket: what the user read through node:tls is not delivered again', async (t) => {
  await requireKtls(t);
  for (const v of ['TLSv1.2', 'TLSv1.3'] as const) {
    const first = randomBytes(50_000);
    const second = randomBytes(70_000);
    const server = tls.createServer(serverOpts(v, 'aes-256-gcm'), (s) => {
      s.write(first);
      s.once('data', () => s.end(second));
    });
    server.listen(0, '127.0.0.1');
    await listening(server);
    const raw = net.connect({ port: portOf(server), host: '127.0.0.1', allowHalfOpen: true });
    await new Promise((resolve) => raw.once('connect', resolve));
    const own = ktls.createTLSSocket(raw, { servername: 'localhost', ca: CERTS.ca, minVersion: v, maxVersion: v });
    // Read part of the greeting through node:tls, then switch.
    const seen: Buffer[] = [];
    let n = 0;
    await new Promise<void>((resolve) => {
      const onData = (d: Buffer): void => {
        seen.push(d);
        if ((n += d.length) >= 20_000) {
          own.off('data', onData);
          own.pause();
          resolve();
        }
      };
      own.on('data', onData);
    });
    const sock = await ktls.upgradeTLSSocket(own);
    t.equal(sock.kernel, true, `${v}: in the kernel`);
    const rest = readAll(sock);
    sock.write('go');
    const all = Buffer.concat([...seen, await rest]);
    t.equal(sha256(all), sha256(Buffer.concat([first, second])), `${v}: read ${n} B through node:tls, the rest through the kernel, nothing twice`);
    server.close();
  }
  const plain = new tls.TLSSocket(new net.Socket());
  await t.rejects(ktls.upgradeTLSSocket(plain), { code: 'ERR_KTLS_TLS_SOCKET' }, 'a TLSSocket not made by ktls is refused');
  plain.destroy();
  noServerErrors(t);
});
