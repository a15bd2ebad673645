// HTTPS over KtlsSockets on whatever kernel runs the suite (userspace records
// where it has no kTLS): createHttpsServer feeds Node's http.Server, and
// ktls.serveFile() serves files byte-exact with HEAD, ranges, 404 and keep-alive.
import t from 'tap';
import * as http from 'node:http';
import * as https from 'node:https';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { checkAbort, checkBasics, checkPipelined, makeFiles, parseResponses, rawExchange, request, staticServer } from '../helpers/http.js';
import { CERTS, listening, portOf } from '../helpers/tls.js';

const fx = makeFiles();
t.teardown(fx.cleanup);

t.test("serveFile via 'auto' serves files, HEAD, ranges, 404 and keep-alive", async (t) => {
  const served = await staticServer(fx.dir);
  t.teardown(() => served.server.close());
  const agent = new https.Agent({ keepAlive: true });
  await request(served.port, '/hello.txt', { agent });
  agent.destroy();
  const kernelTx = served.sockets[0].kernelDirections.tx;
  served.sockets.length = 0;
  served.results.length = 0;
  t.comment(`server sockets: kernel TX ${kernelTx}`);
  await checkBasics(t, served, fx.files, kernelTx ? 'sendfile' : 'stream');
});

t.test("serveFile via 'sendfile' uses KtlsSocket#sendFile on userspace records too, byte-exact", async (t) => {
  const served = await staticServer(fx.dir, { via: 'sendfile' }, { ktls: { kernel: false } });
  t.teardown(() => served.server.close());
  await checkBasics(t, served, fx.files, 'sendfile');
  t.equal(served.sockets[0].kernel, false, 'records sealed in userspace');
});

t.test("serveFile via 'stream' uses a read stream even on a KtlsSocket", async (t) => {
  const served = await staticServer(fx.dir, { via: 'stream' });
  t.teardown(() => served.server.close());
  await checkBasics(t, served, fx.files, 'stream');
});

t.test('pipelined requests get exactly their responses, with no stray byte, in every mode', async (t) => {
  for (const via of ['auto', 'sendfile', 'stream'] as const) {
    const served = await staticServer(fx.dir, { via });
    await t.test(via, (t) => checkPipelined(t, served, fx.files));
    served.server.close();
  }
});

t.test('a client that leaves mid-body makes serveFile() reject with a code, in every mode', async (t) => {
  for (const via of ['auto', 'sendfile', 'stream'] as const) {
    const served = await staticServer(fx.dir, { via });
    await t.test(via, (t) => checkAbort(t, served, fx.files));
    served.server.close();
  }
});

t.test('createHttpsServer negotiates http/1.1 by ALPN and sends the request through http.Server', async (t) => {
  const server = ktls.createHttpsServer({ key: CERTS.key, cert: CERTS.cert }, (req, res) => {
    const s = req.socket as unknown as ktls.KtlsSocket;
    res.end(
      JSON.stringify({
        alpn: s.alpnProtocol,
        ktls: s instanceof ktls.KtlsSocket,
        encrypted: (s as unknown as { encrypted?: boolean }).encrypted,
        method: req.method,
        url: req.url,
        remote: s.remoteAddress,
      }),
    );
  });
  let listened = 0;
  server.on('listening', () => listened++);
  server.listen(0, '127.0.0.1');
  await listening(server);
  t.equal(listened, 1, "'listening' event");
  t.equal(server.listening, true);
  t.equal(typeof portOf(server), 'number', 'address() has the port');
  const r = await new Promise<{ body: string; alpn: string | false | null }>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const c = tls.connect({ host: '127.0.0.1', port: portOf(server), servername: 'localhost', ca: CERTS.ca, ALPNProtocols: ['h2', 'http/1.1'] }, () =>
      c.write('GET /x?y=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'),
    );
    c.on('data', (d: Buffer) => chunks.push(d))
      .on('end', () => resolve({ body: parseResponses(Buffer.concat(chunks))[0].body.toString(), alpn: c.alpnProtocol }))
      .on('error', reject);
  });
  t.equal(r.alpn, 'http/1.1', 'client negotiated http/1.1');
  t.same(JSON.parse(r.body), { alpn: 'http/1.1', ktls: true, encrypted: true, method: 'GET', url: '/x?y=1', remote: '127.0.0.1' });
  const closed = new Promise<void>((resolve) => server.on('close', resolve));
  server.close();
  await closed;
  t.equal(server.listening, false, "close() stops listening and 'close' fires");
});

t.test('close() closes idle keep-alive connections; keepAliveTimeout closes idle ones on its own', async (t) => {
  const sockets: ktls.KtlsSocket[] = [];
  const server = ktls.createHttpsServer({ key: CERTS.key, cert: CERTS.cert }, (req, res) => {
    sockets.push(req.socket as unknown as ktls.KtlsSocket);
    res.end('ok');
  });
  server.keepAliveTimeout = 100;
  t.equal(server.http.keepAliveTimeout, 100, 'keepAliveTimeout reaches the http.Server');
  server.listen(0, '127.0.0.1');
  await listening(server);
  const agent = new https.Agent({ keepAlive: true });
  t.teardown(() => agent.destroy());
  await request(portOf(server), '/', { agent });
  const timedOut = sockets[0];
  const t0 = Date.now();
  await new Promise((resolve) => timedOut.once('close', resolve));
  t.ok(Date.now() - t0 < 10_000, `an idle keep-alive socket closed after ${Date.now() - t0} ms`);

  server.keepAliveTimeout = 60_000;
  await request(portOf(server), '/', { agent });
  const idle = sockets[1];
  t.not(idle, timedOut, 'a new connection');
  t.equal(idle.destroyed, false, 'open while idle');
  const gone = new Promise((resolve) => idle.once('close', resolve));
  server.close();
  await gone;
  t.pass('close() destroyed the idle keep-alive connection');
});

t.test("http events reach the KtlsHttpsServer only once listened for ('checkContinue', 'clientError')", async (t) => {
  const server = ktls.createHttpsServer({ key: CERTS.key, cert: CERTS.cert }, (_req, res) => res.end('plain'));
  server.listen(0, '127.0.0.1');
  await listening(server);
  t.teardown(() => server.close());
  t.equal(server.http.listenerCount('checkContinue'), 0, 'no checkContinue listener on http.Server by default');
  server.on('checkContinue', (_req: http.IncomingMessage, res: http.ServerResponse) => res.writeHead(417).end());
  t.equal(server.http.listenerCount('checkContinue'), 1, 'attached on first listener');
  const r = await request(portOf(server), '/', { headers: { Expect: '100-continue' } });
  t.equal(r.status, 417, "the server's checkContinue handler answered");
  const errors: string[] = [];
  server.on('clientError', (err: Error & { code?: string }, socket: import('node:stream').Duplex) => {
    errors.push(err.code ?? '');
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });
  const wire = await rawExchange(portOf(server), 'NOT HTTP\r\n\r\n');
  t.match(wire.toString('latin1'), /^HTTP\/1\.1 400 /, 'malformed request: 400 from the clientError handler');
  t.same(errors, ['HPE_INVALID_METHOD'], 'clientError got the parser error code');
});

t.test('sendFile rejects with typed errors for bad arguments and headers already sent', async (t) => {
  const codes: string[] = [];
  const server = ktls.createHttpsServer({ key: CERTS.key, cert: CERTS.cert }, (req, res) => {
    const collect = (p: Promise<unknown> | (() => Promise<unknown>)): Promise<void> =>
      (typeof p === 'function' ? Promise.resolve().then(p) : p).then(
        () => void codes.push('resolved'),
        (err: Error & { code?: string }) => void codes.push(err.code ?? err.message),
      );
    void (async () => {
      await collect(() => ktls.serveFile(res, `${fx.dir}/hello.txt`, { via: 'zero' as 'auto' }));
      await collect(() => ktls.serveFile({} as http.ServerResponse, 'x'));
      await collect(() => ktls.serveFile(res, 42 as unknown as string));
      res.writeHead(200, { 'Content-Length': 2 });
      res.flushHeaders();
      await collect(() => ktls.serveFile(res, `${fx.dir}/hello.txt`));
      res.end('ok');
      void req;
    })();
  });
  server.listen(0, '127.0.0.1');
  await listening(server);
  t.teardown(() => server.close());
  const r = await request(portOf(server), '/');
  t.equal(r.body.toString(), 'ok', 'the response was left to the caller');
  t.same(codes, ['ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_TYPE', 'ERR_HTTP_HEADERS_SENT']);
});

t.test('parseRange follows RFC 9110 for one range and ignores what it does not serve', async (t) => {
  t.same(ktls.parseRange(undefined, 10), null, 'no header');
  t.same(ktls.parseRange('bytes=0-4', 10), { start: 0, end: 4 });
  t.same(ktls.parseRange('BYTES = 2 - ', 10), { start: 2, end: 9 }, 'unit is case-insensitive, open end');
  t.same(ktls.parseRange('bytes=-3', 10), { start: 7, end: 9 }, 'suffix');
  t.same(ktls.parseRange('bytes=-30', 10), { start: 0, end: 9 }, 'suffix longer than the file');
  t.same(ktls.parseRange('bytes=8-100', 10), { start: 8, end: 9 }, 'end clamped');
  t.equal(ktls.parseRange('bytes=10-', 10), 'unsatisfiable', 'starts at the end');
  t.equal(ktls.parseRange('bytes=-0', 10), 'unsatisfiable', 'empty suffix');
  t.equal(ktls.parseRange('bytes=0-', 0), 'unsatisfiable', 'empty file');
  t.equal(ktls.parseRange('bytes=-5', 0), 'unsatisfiable', 'suffix of an empty file');
  for (const h of ['bytes=5-2', 'bytes=0-1,3-4', 'items=0-1', 'bytes=a-b', 'bytes=-', 'bytes 0-1']) t.equal(ktls.parseRange(h, 10), null, `${h}: ignored`);
  t.equal(ktls.contentTypeOf('/a/B.HTML'), 'text/html; charset=utf-8');
  t.equal(ktls.contentTypeOf('x.unknown'), 'application/octet-stream');
});
