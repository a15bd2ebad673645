// The socket a server's 'connection' gives, and connections handed to a server
// with server.emit('connection', socket), on tls.Server/https.Server and on
// KtlsServer/KtlsHttpsServer: each scenario runs on both in one run and what
// the application observes is compared.
import type { Test } from 'tap';
import { once } from 'node:events';
import * as https from 'node:https';
import * as net from 'node:net';
import { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { CERTS } from '../helpers/tls.js';

type Kind = 'node' | 'ktls';
const KINDS: Kind[] = ['node', 'ktls'];
const serverOptions = { key: CERTS.key, cert: CERTS.cert };
const TLS = { host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca };

function tlsServer(kind: Kind, kernel: boolean, listener: (s: tls.TLSSocket) => void): tls.Server | ktls.KtlsServer {
  if (kind === 'node') return tls.createServer(serverOptions, listener);
  return ktls.createServer({ ...serverOptions, ktls: kernel ? {} : { kernel: false } }, listener as unknown as (s: ktls.KtlsSocket) => void);
}

async function listen(server: { listen(port: number, host: string, cb: () => void): unknown; address(): unknown }): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

const closed = (s: { closed: boolean; once(ev: 'close', cb: () => void): unknown }): Promise<void> =>
  s.closed ? Promise.resolve() : new Promise((resolve) => s.once('close', () => resolve()));

/** Who carries the server socket's records: node:tls (a ktls socket then has no cipher of its own), the kernel, or ktls in userspace. */
function carried(s: tls.TLSSocket | ktls.KtlsSocket): string {
  if (!(s instanceof ktls.KtlsSocket) || s.cipher === null) return 'node:tls';
  return s.kernel ? 'kernel' : 'userspace';
}

type Ending = 'client end' | 'server destroy(err)' | 'client reset';

/** One connection ended one way; the server's events, the raw socket's among them. */
async function rawLifecycle(kind: Kind, kernel: boolean, ending: Ending): Promise<{ log: string[]; carried: string }> {
  const log: string[] = [];
  let socketClosed!: () => void;
  const serverSocketClosed = new Promise<void>((resolve) => (socketClosed = resolve));
  let where = '';
  let secure: tls.TLSSocket | undefined;
  const server = tlsServer(kind, kernel, (s) => {
    secure = s;
    where = carried(s);
    log.push('secureConnection');
    s.on('data', () => undefined);
    // The client ends once it has this, so the switch (before 'secureConnection') is done by then.
    s.write('switched');
    s.on('error', (err: NodeJS.ErrnoException) => log.push(`socket error ${String(err.code)}`));
    s.on('close', (hadError: boolean) => {
      log.push(`socket close ${hadError}`);
      socketClosed();
    });
    if (ending === 'server destroy(err)') setTimeout(() => s.destroy(Object.assign(new Error('stop'), { code: 'EAPP' })), 20);
  });
  server.on('connection', (raw: net.Socket) => {
    log.push('connection');
    raw.on('error', (err: NodeJS.ErrnoException) => log.push(`raw error ${String(err.code)}`));
    raw.on('close', (hadError: boolean) => log.push(`raw close ${hadError}, connection socket destroyed: ${secure?.destroyed}`));
  });
  const port = await listen(server);
  const wire = net.connect(port, '127.0.0.1');
  const client = tls.connect({ socket: wire, ...TLS });
  client.on('error', () => undefined);
  await once(client, 'data');
  client.resume();
  await new Promise((resolve) => setTimeout(resolve, 20));
  if (ending === 'client end') client.end();
  else if (ending === 'client reset') wire.resetAndDestroy();
  await closed(client);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  // The server's close callback and the socket's own 'close' race on a loaded machine: compare once it has come.
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([serverSocketClosed, new Promise((resolve) => (timer = setTimeout(resolve, 5000)))]);
  clearTimeout(timer);
  return { log, carried: where };
}

/** Node's test-https-close: connections kept from 'connection', forgotten at their 'close', destroyed at shutdown. */
async function forgetAtClose(kind: Kind, kernel: boolean): Promise<string> {
  const handler = (_req: unknown, res: { write(s: string): unknown }): void => void res.write('data');
  const server =
    kind === 'node' ? https.createServer(serverOptions, handler) : ktls.createHttpsServer({ ...serverOptions, ktls: kernel ? {} : { kernel: false } }, handler);
  const kept = new Map<string, net.Socket>();
  server.on('connection', (raw: net.Socket) => {
    const key = `${raw.remoteAddress}:${raw.remotePort}`;
    raw.on('close', () => kept.delete(key));
    kept.set(key, raw);
  });
  const port = await listen(server as https.Server);
  const res = await new Promise<NodeJS.ReadableStream>((resolve, reject) => {
    const req = https.get({ ...TLS, port, agent: false }, resolve);
    req.on('error', reject);
  });
  res.on('error', () => undefined);
  res.resume();
  await once(res, 'data');
  const atShutdown = kept.size;
  const outcome = await new Promise<string>((resolve) => {
    const timer = setTimeout(() => resolve('close() still waiting after 2 s'), 2000);
    server.close(() => (clearTimeout(timer), resolve('close() called back')));
    for (const raw of kept.values()) raw.destroy();
    kept.clear();
  });
  return `${atShutdown} kept at shutdown, ${outcome}`;
}

/** A net.Server that hands each connection to `target` with emit('connection'), as a protocol-sniffing front end does. */
async function frontEnd(inject: (sock: net.Socket) => void): Promise<{ front: net.Server; port: number }> {
  const front = net.createServer((sock) => inject(sock));
  return { front, port: await listen(front) };
}

/** Two Duplexes, each reading what the other writes (no fd under either). */
function duplexPair(): [Duplex, Duplex] {
  const make = (): Duplex & { peer?: Duplex } => {
    const d: Duplex & { peer?: Duplex } = new Duplex({
      read: () => undefined,
      write: (chunk: Buffer, _enc, cb) => (d.peer?.push(chunk), cb()),
      final: (cb) => (d.peer?.push(null), cb()),
    });
    return d;
  };
  const a = make();
  const b = make();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/** A TLS server given its connections by emit('connection'): a TCP socket, or a Duplex with no fd. */
async function injected(kind: Kind, kernel: boolean, via: 'net.Socket' | 'Duplex'): Promise<{ log: string[]; got: string; carried: string }> {
  const log: string[] = [];
  let where = '';
  const server = tlsServer(kind, kernel, (s) => {
    where = carried(s);
    log.push('secureConnection');
    s.setEncoding('utf8');
    s.on('data', (d: string) => (log.push(`data ${d}`), s.end(d.toUpperCase())));
    s.on('end', () => log.push('end'));
    s.on('error', (err: NodeJS.ErrnoException) => log.push(`socket error ${String(err.code)}`));
    s.on('close', (hadError: boolean) => log.push(`socket close ${hadError}`));
  });
  server.on('connection', (sock: unknown) => log.push(`connection ${sock instanceof net.Socket ? 'net.Socket' : 'Duplex'}`));
  const { front, port } = await frontEnd((sock) => {
    if (via === 'net.Socket') {
      server.emit('connection', sock);
      return;
    }
    const [outer, inner] = duplexPair();
    sock.pipe(outer).pipe(sock);
    sock.on('close', () => outer.destroy());
    server.emit('connection', inner);
  });
  const client = tls.connect({ port, ...TLS });
  client.setEncoding('utf8');
  let got = '';
  client.on('data', (d: string) => (got += d));
  client.on('end', () => client.end());
  client.on('error', (err: NodeJS.ErrnoException) => (got += ` client error ${String(err.code)}`));
  await once(client, 'secureConnect');
  client.write('ping');
  await closed(client);
  await new Promise((resolve) => setTimeout(resolve, 50));
  front.close();
  return { log, got, carried: where };
}

/** An HTTPS server given a connection by emit('connection'). */
async function injectedHttps(kind: Kind, kernel: boolean): Promise<string[]> {
  const log: string[] = [];
  const handler = (_req: unknown, res: { end(s: string): unknown }): void => void res.end('served');
  const server =
    kind === 'node' ? https.createServer(serverOptions, handler) : ktls.createHttpsServer({ ...serverOptions, ktls: kernel ? {} : { kernel: false } }, handler);
  server.on('connection', (sock: unknown) => log.push(`connection ${sock instanceof net.Socket ? 'net.Socket' : 'other'}`));
  server.on('secureConnection', (s: tls.TLSSocket | ktls.KtlsSocket) => log.push(`secureConnection on ${kind === 'node' ? 'node:tls' : carried(s)}`));
  const { front, port } = await frontEnd((sock) => server.emit('connection', sock));
  for (let i = 0; i < 2; i++) {
    const body = await new Promise<string>((resolve, reject) => {
      https
        .get({ ...TLS, port, agent: false }, (res) => {
          let b = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (b += c));
          res.on('end', () => resolve(`${res.statusCode} ${b}`));
        })
        .on('error', reject);
    });
    log.push(`response ${body}`);
  }
  front.close();
  server.close();
  return log;
}

/** A peer that closes before the handshake is done, seen by each side; `socket.server`; and writes held by a client destroyed at once. */
async function earlyEnds(kind: Kind, kernel: boolean): Promise<string[]> {
  const log: string[] = [];
  const server = tlsServer(kind, kernel, () => log.push('secureConnection'));
  server.on('connection', (raw: net.Socket) =>
    log.push(`connection, socket.server is the server: ${(raw as unknown as { server: unknown }).server === server}`),
  );
  server.on('tlsClientError', (err: NodeJS.ErrnoException) => log.push(`tlsClientError ${String(err.code)}`));
  const port = await listen(server);
  // A TCP client that leaves without a handshake: the server's side.
  const bare = net.connect(port, '127.0.0.1', () => bare.end());
  await closed(bare);
  // A TLS client whose server (a plain TCP one) ends at once: the client's side.
  const plain = net.createServer((c) => c.end());
  const plainPort = await listen(plain);
  const connect = (o: tls.ConnectionOptions): tls.TLSSocket | ktls.KtlsSocket => (kind === 'node' ? tls.connect(o) : ktls.connect(o));
  const early = connect({ port: plainPort, host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca });
  early.on('error', (err: NodeJS.ErrnoException & { host?: string; port?: number }) =>
    log.push(`client error ${String(err.code)} host ${String(err.host)} port ${err.port === plainPort ? 'the port' : String(err.port)}`),
  );
  await closed(early);
  // Writes held by a client destroyed with an error before it connected: 'error' first, then the write's callback.
  const gone = connect({ port, host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca });
  gone.on('error', (err: Error) => log.push(`held: error ${err.message}`));
  gone.write('x', (err?: NodeJS.ErrnoException | null) => log.push(`held: write callback ${String(err?.code)}`));
  gone.destroy(new Error('stop'));
  await closed(gone);
  await new Promise((resolve) => setTimeout(resolve, 50));
  plain.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return log;
}

/** Every scenario on both stacks; `kernel` says which record path ktls runs on. */
export async function rawConnection(t: Test, kernel: boolean): Promise<void> {
  const expected = kernel ? 'kernel' : 'userspace';
  for (const ending of ['client end', 'server destroy(err)', 'client reset'] as Ending[]) {
    await t.test(`the socket 'connection' gave closes just before the connection's socket (${ending})`, async (t) => {
      const runs = await Promise.all(KINDS.map((k) => rawLifecycle(k, kernel, ending)));
      t.equal(runs[1].carried, expected, `ktls carried the records in ${expected}`);
      t.same(runs[1].log, runs[0].log, `the same events as tls.Server: ${runs[0].log.join(', ')}`);
    });
  }
  await t.test("connections forgotten at their raw socket's 'close' and destroyed at shutdown: close() calls back (test-https-close)", async (t) => {
    const node = await forgetAtClose('node', kernel);
    t.equal(await forgetAtClose('ktls', kernel), node, `as on https.Server: ${node}`);
  });
  for (const via of ['net.Socket', 'Duplex'] as const) {
    await t.test(`server.emit('connection', ${via}) starts a connection, as on tls.Server`, async (t) => {
      const node = await injected('node', kernel, via);
      const ours = await injected('ktls', kernel, via);
      t.equal(ours.carried, via === 'net.Socket' ? expected : 'node:tls', 'only a TCP socket moves to the kernel');
      t.equal(ours.got, node.got, `the client gets what it gets from tls.Server: ${JSON.stringify(node.got)}`);
      t.same(ours.log, node.log, `the same events: ${node.log.join(', ')}`);
    });
  }
  await t.test('a peer that leaves before the handshake, socket.server, and writes held by a client destroyed at once, as on node:tls', async (t) => {
    const node = await earlyEnds('node', kernel);
    t.same(await earlyEnds('ktls', kernel), node, `the same: ${node.join(', ')}`);
  });
  await t.test("httpsServer.emit('connection', socket) serves the connection, as on https.Server", async (t) => {
    const node = await injectedHttps('node', kernel);
    const ours = await injectedHttps('ktls', kernel);
    t.same(
      ours.map((l) => l.replace(`secureConnection on ${expected}`, 'secureConnection on node:tls')),
      node,
      `the same events: ${node.join(', ')}`,
    );
    t.ok(ours.includes(`secureConnection on ${expected}`), `ktls carried the records in ${expected}`);
  });
}
