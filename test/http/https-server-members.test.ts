// KtlsHttpsServer against https.Server, the same calls on both in one run:
// 'connection' with the raw socket for every accepted connection, and the
// TLS server's own methods (ticket keys, secure contexts) on the server itself.
import t from 'tap';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { parity } from '../helpers/parity-log.js';
import { CERTS } from '../helpers/tls.js';

type AnyHttpsServer = https.Server | ktls.KtlsHttpsServer;
const options = { key: CERTS.key, cert: CERTS.cert };

async function listen(server: AnyHttpsServer): Promise<number> {
  await new Promise<void>((resolve) => (server as https.Server).listen(0, '127.0.0.1', () => resolve()));
  return (server.address() as net.AddressInfo).port;
}

function get(port: number, servername = 'localhost'): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.get({ port, host: '127.0.0.1', servername, ca: CERTS.ca, agent: false, path: '/' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
  });
}

const close = (server: AnyHttpsServer): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

t.test("'connection' is emitted with the raw net.Socket for each connection, as https.Server does", async (t) => {
  const seen: Record<string, string[]> = {};
  for (const [name, make] of [
    ['https', () => https.createServer(options, (_req, res) => res.end('ok'))],
    ['ktls', () => ktls.createHttpsServer(options, (_req, res) => res.end('ok'))],
  ] as Array<[string, () => AnyHttpsServer]>) {
    const server = make();
    const events: string[] = (seen[name] = []);
    server.on('connection', (raw: unknown) => events.push(raw instanceof net.Socket ? 'connection(net.Socket)' : 'connection(other)'));
    server.on('secureConnection', () => events.push('secureConnection'));
    const port = await listen(server);
    t.equal(await get(port), 'ok', `${name}: the request is served`);
    t.equal(await get(port), 'ok', `${name}: a second connection`);
    await close(server);
  }
  t.same(seen.ktls, seen.https, `the same events: ${JSON.stringify(seen.https)}`);
  parity(t, 'Server@connection');
});

t.test('setTicketKeys/getTicketKeys, addContext and setSecureContext are the server’s own, as on https.Server', async (t) => {
  const keys = Buffer.alloc(48, 7);
  const outcomes: Record<string, unknown[]> = {};
  for (const [name, server] of [
    ['https', https.createServer(options, (_req, res) => res.end('ok'))],
    ['ktls', ktls.createHttpsServer(options, (_req, res) => res.end('ok'))],
  ] as Array<[string, AnyHttpsServer]>) {
    const out: unknown[] = (outcomes[name] = []);
    server.setTicketKeys(keys);
    out.push(server.getTicketKeys().equals(keys));
    out.push(
      ((): unknown => {
        try {
          server.setTicketKeys(Buffer.alloc(47));
          return 'accepted';
        } catch (err) {
          return (err as NodeJS.ErrnoException).code ?? (err as Error).name;
        }
      })(),
    );
    server.addContext('alt.test', options);
    server.setSecureContext(options);
    const port = await listen(server);
    out.push(await get(port, 'alt.test').catch((err: NodeJS.ErrnoException) => err.code));
    out.push(await get(port).catch((err: NodeJS.ErrnoException) => err.code));
    await close(server);
  }
  t.same(outcomes.ktls, outcomes.https, `the same outcomes: ${JSON.stringify(outcomes.https)}`);
  parity(t, ['Server#setTicketKeys', 'Server#getTicketKeys', 'Server#addContext', 'Server#setSecureContext']);
});

t.test("destroying the sockets 'connection' gave, then close(): the callback comes, as on https.Server (a common graceful shutdown)", async (t) => {
  const outcome: Record<string, string> = {};
  for (const [name, make] of [
    ['https', () => https.createServer(options, (_req, res) => res.end('ok'))],
    ['ktls', () => ktls.createHttpsServer(options, (_req, res) => res.end('ok'))],
  ] as Array<[string, () => AnyHttpsServer]>) {
    const server = make();
    const sockets: net.Socket[] = [];
    server.on('connection', (raw: net.Socket) => sockets.push(raw));
    const port = await listen(server);
    // A client mid-request: its connection is neither idle nor done, so only destroying it ends it.
    const half = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca });
    half.on('error', () => undefined);
    await new Promise((resolve) => half.once('secureConnect', resolve));
    half.write('GET / HTTP/1.1\r\nHost: x\r\n');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const closed = new Promise<string>((resolve) => {
      server.close(() => resolve('called back'));
      setTimeout(() => resolve('still waiting after 2 s'), 2000);
    });
    for (const s of sockets) s.destroy();
    outcome[name] =
      `${sockets.length} connection(s), close(): ${await closed}, client closed: ${await new Promise<boolean>((resolve) => (half.closed ? resolve(true) : half.once('close', () => resolve(true))))}`;
  }
  t.equal(outcome.ktls, outcome.https, `the same as https.Server: ${outcome.https}`);
});
