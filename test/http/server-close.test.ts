// KtlsHttpsServer as https.Server for frameworks (fastify's serverFactory):
// close() and 'close' wait for every connection, getConnections() counts them,
// ref/unref, maxConnections, setTimeout(callback) and Symbol.asyncDispose.
import t from 'tap';
import * as https from 'node:https';
import * as ktls from '../../lib/index.js';
import { CERTS, listening, portOf } from '../helpers/tls.js';

const base = { key: CERTS.key, cert: CERTS.cert };

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path, servername: 'localhost', ca: CERTS.ca, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

t.test("close(): the callback and 'close' come once the request in flight has finished and its connection closed", async (t) => {
  let started!: () => void;
  const inFlight = new Promise<void>((resolve) => (started = resolve));
  let finished = false;
  const server = ktls.createHttpsServer(base, (_req, res) => {
    res.write('first,');
    started();
    setTimeout(() => {
      finished = true;
      res.end('last');
    }, 300);
  });
  server.listen(0, '127.0.0.1');
  await listening(server);
  const reply = get(portOf(server), '/');
  await inFlight;
  const count = await new Promise<number>((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
  t.equal(count, 1, 'getConnections: the busy connection');
  t.equal(server.connections, 1);
  const order: string[] = [];
  server.once('close', () => order.push(`'close' (finished: ${finished})`));
  const closed = new Promise<void>((resolve, reject) =>
    server.close((err) => {
      order.push(`callback (finished: ${finished})`);
      if (err) reject(err);
      else resolve();
    }),
  );
  t.equal(server.listening, false, 'not listening at once');
  t.same(await reply, { status: 200, body: 'first,last' }, 'the request in flight got its whole body');
  await closed;
  t.same(order, ["'close' (finished: true)", 'callback (finished: true)'], 'both after the response finished');
  const after = await new Promise<number>((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
  t.equal(after, 0, 'no connection left');
});

t.test('close() on a server that is not listening calls back with ERR_SERVER_NOT_RUNNING', async (t) => {
  const server = ktls.createHttpsServer(base);
  const err = await new Promise<Error | undefined>((resolve) => server.close(resolve));
  t.match(err, { code: 'ERR_SERVER_NOT_RUNNING' });
});

t.test('ref/unref, maxConnections, maxHeadersCount and setTimeout(callback) reach the servers underneath', async (t) => {
  const server = ktls.createHttpsServer(base);
  t.equal(server.unref(), server, 'unref() returns the server');
  t.equal(server.ref(), server, 'ref() returns the server');
  server.maxConnections = 7;
  t.equal(server.tls.maxConnections, 7, 'maxConnections on the KtlsServer, which counts handshakes and KtlsSockets');
  server.maxHeadersCount = 50;
  t.equal(server.http.maxHeadersCount, 50, 'maxHeadersCount on the http.Server');
  const onTimeout = (): void => undefined;
  t.equal(server.setTimeout(onTimeout), server);
  t.ok(server.http.listeners('timeout').includes(onTimeout), 'setTimeout(callback) listens for timeout');
  server.setTimeout(1234);
  t.equal(server.timeout, 1234);
});

t.test('Symbol.asyncDispose closes the server and waits for its connections', async (t) => {
  const server = ktls.createHttpsServer(base, (_req, res) => res.end('ok'));
  server.listen(0, '127.0.0.1');
  await listening(server);
  t.same(await get(portOf(server), '/'), { status: 200, body: 'ok' });
  await server[Symbol.asyncDispose]();
  t.equal(server.listening, false);
  await server[Symbol.asyncDispose](); // twice: nothing to do
  t.pass('a second dispose resolves');
});
