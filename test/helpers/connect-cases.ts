// connect()'s net.connect options (lookup with every answer tried, family,
// localAddress, string ports, signal, timeout), run on the ordinary path by
// the host suite and on the Fast Open path by the kTLS suite.
import type { Test } from 'tap';
import * as fs from 'node:fs';
import { once } from 'node:events';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { loadBinding } from '../../lib/native/binding.js';
import { parity } from './parity-log.js';
import { readAll } from './pair.js';
import { CERTS, portOf } from './tls.js';

export const fdCount = (): number => fs.readdirSync('/proc/self/fd').length;

/** A ktls server on `host` (with a Fast Open queue of `fastOpen`) that greets each client with 'hello' and records who connected. */
export async function helloServer(host = '127.0.0.1', fastOpen?: number): Promise<{ server: ktls.KtlsServer; port: number; peers: string[] }> {
  const peers: string[] = [];
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert, fastOpen }, (s) => {
    peers.push(String(s.remoteAddress));
    s.end('hello');
  });
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
  return { server, port: portOf(server), peers };
}

/** A TCP server that accepts and never answers (a handshake that never ends); `closed` counts connections the client closed. */
export async function silentServer(): Promise<{ server: net.Server; port: number; accepted: () => number; closed: () => number }> {
  let accepted = 0;
  let closed = 0;
  const server = net.createServer((s) => {
    accepted++;
    s.on('error', () => undefined).on('close', () => closed++);
    s.resume(); // read the ClientHello and the FIN, so that 'close' comes
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { server, port: portOf(server), accepted: () => accepted, closed: () => closed };
}

/** Closes `server` and waits until its last connection has closed (so the next test's fd count starts clean). */
export function closeServer(server: { close(cb: () => void): unknown }): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Polls `ok` every 10 ms for up to `ms`. */
export async function until(ok: () => boolean, ms = 5000): Promise<boolean> {
  for (const end = Date.now() + ms; !ok() && Date.now() < end;) await new Promise((r) => setTimeout(r, 10));
  return ok();
}

const TLS = { ca: CERTS.ca, servername: 'localhost' } as const;

/** Whether the socket under `sock` was made by the Fast Open path (TCP_FASTOPEN_CONNECT set). */
function fastOpenSet(sock: ktls.KtlsSocket): boolean {
  const b = loadBinding().binding!;
  return b.getsockoptInt(sock.fd, b.constants.SOL_TCP, b.constants.TCP_FASTOPEN_CONNECT) > 0;
}

/** Runs the net-option cases as subtests; `fastOpen` picks the path; `expectKernel` defaults to whether this kernel has kTLS. */
export function connectOptionCases(t: Test, fastOpen: boolean, expectKernel?: boolean): void {
  const path = fastOpen ? 'Fast Open' : 'ordinary';
  let kernel = expectKernel;
  const check = async (t: Test, sock: ktls.KtlsSocket): Promise<void> => {
    kernel ??= (await ktls.probe()).ulp;
    t.equal(sock.kernel, kernel, `kernel === ${kernel}`);
    t.equal(fastOpenSet(sock), fastOpen, `${path} path (TCP_FASTOPEN_CONNECT ${fastOpen ? 'set' : 'not set'})`);
  };

  t.test(`${path}: a custom lookup's answers are tried in turn: a refused address, then the server's`, async (t) => {
    const { server, port, peers } = await helloServer();
    const asked: unknown[] = [];
    const lookup: net.LookupFunction = (host, options, cb) => {
      asked.push({ host, all: options.all });
      const all = [
        { address: '127.0.0.2', family: 4 }, // nothing listens there: ECONNREFUSED
        { address: '127.0.0.1', family: 4 },
      ];
      if (options.all) cb(null, all);
      else cb(null, all[0].address, all[0].family);
    };
    const sock = await ktls.connectAsync({ host: 'ktls.test', port, lookup, fastOpen, ...TLS });
    await check(t, sock);
    t.same(asked, [{ host: 'ktls.test', all: true }], 'lookup asked once, for every answer');
    t.equal(sock.remoteAddress, '127.0.0.1', 'connected to the second answer');
    t.equal((await readAll(sock)).toString(), 'hello');
    t.same(peers, ['127.0.0.1']);
    parity(t, 'tls.connect', sock);
    await closeServer(server);
  });

  t.test(`${path}: family 6 reaches ::1, and lookup is asked for that family`, async (t) => {
    const { server, port } = await helloServer('::1');
    const families: unknown[] = [];
    const lookup: net.LookupFunction = (_host, options, cb) => {
      families.push(options.family);
      const answer = options.family === 6 ? { address: '::1', family: 6 } : { address: '127.0.0.1', family: 4 };
      if (options.all) cb(null, [answer]);
      else cb(null, answer.address, answer.family);
    };
    const sock = await ktls.connectAsync({ host: 'ktls.test', port, family: 6, lookup, fastOpen, ...TLS });
    await check(t, sock);
    t.same(families, [6]);
    t.equal(sock.remoteAddress, '::1');
    t.equal(sock.remoteFamily, 'IPv6');
    t.equal((await readAll(sock)).toString(), 'hello');
    const literal = await ktls.connectAsync({ host: '::1', port, fastOpen, ...TLS });
    await check(t, literal);
    t.equal(literal.remoteAddress, '::1', 'an IPv6 literal host');
    t.equal((await readAll(literal)).toString(), 'hello');
    parity(t, 'tls.connect', sock);
    await closeServer(server);
  });

  t.test(`${path}: localAddress is the address the server sees`, async (t) => {
    const { server, port, peers } = await helloServer();
    const sock = await ktls.connectAsync({ host: '127.0.0.1', port, localAddress: '127.0.0.3', fastOpen, ...TLS });
    await check(t, sock);
    t.equal(sock.localAddress, '127.0.0.3');
    t.equal((await readAll(sock)).toString(), 'hello');
    t.same(peers, ['127.0.0.3']);
    parity(t, 'tls.connect', sock);
    await closeServer(server);
  });

  t.test(`${path}: a numeric string port, in options and positionally`, async (t) => {
    const { server, port } = await helloServer();
    const a = await ktls.connectAsync({ host: '127.0.0.1', port: String(port), fastOpen, ...TLS });
    await check(t, a);
    t.equal(a.remotePort, port);
    t.equal((await readAll(a)).toString(), 'hello');
    const b = await ktls.connectAsync(String(port), '127.0.0.1', { fastOpen, ...TLS });
    await check(t, b);
    t.equal((await readAll(b)).toString(), 'hello');
    parity(t, 'tls.connect', a);
    await closeServer(server);
  });

  t.test(`${path}: a signal aborted before connect() fails it with ABORT_ERR and opens nothing`, async (t) => {
    const { server, port, peers } = await helloServer();
    const before = fdCount();
    const reason = new Error('not wanted');
    let looked = 0;
    const lookup: net.LookupFunction = (_h, _o, cb) => {
      looked++;
      cb(null, [{ address: '127.0.0.1', family: 4 }]);
    };
    await t.rejects(ktls.connectAsync({ host: 'ktls.test', port, lookup, signal: AbortSignal.abort(reason), fastOpen, ...TLS }), {
      code: 'ABORT_ERR',
      name: 'AbortError',
      cause: reason,
    });
    t.equal(looked, 0, 'no lookup');
    t.equal(peers.length, 0, 'no connection');
    t.equal(fdCount(), before, 'no fd');
    await closeServer(server);
  });

  t.test(`${path}: a signal aborted during the lookup, or during the handshake, fails with ABORT_ERR and closes the connection`, async (t) => {
    const silent = await silentServer();
    const before = fdCount();
    const hang = new AbortController();
    const never: net.LookupFunction = () => undefined; // a resolver that never answers
    const during = ktls.connectAsync({ host: 'ktls.test', port: silent.port, lookup: never, signal: hang.signal, fastOpen, ...TLS });
    setTimeout(() => hang.abort(), 50);
    await t.rejects(during, { code: 'ABORT_ERR' }, 'aborted in the lookup');

    const ac = new AbortController();
    const attempt = ktls.connectAsync({ host: '127.0.0.1', port: silent.port, signal: ac.signal, fastOpen, ...TLS });
    t.ok(await until(() => silent.accepted() === 1), 'the server accepted the connection');
    ac.abort();
    await t.rejects(attempt, { code: 'ABORT_ERR' }, 'aborted in the handshake');
    t.ok(await until(() => silent.closed() === 1), 'the client closed it');
    t.equal(fdCount(), before, 'no fd left');
    silent.server.close();
  });

  t.test(`${path}: once connected, the signal is the socket's: aborting it destroys the KtlsSocket with ABORT_ERR, as net.Socket's`, async (t) => {
    const { server, port } = await helloServer();
    const ac = new AbortController();
    const sock = await ktls.connectAsync({ host: '127.0.0.1', port, signal: ac.signal, fastOpen, ...TLS });
    await check(t, sock);
    const failed = new Promise<Error>((resolve) => sock.once('error', resolve));
    ac.abort();
    t.match(await failed, { code: 'ABORT_ERR', name: 'AbortError' });
    t.equal(sock.destroyed, true);
    await new Promise((resolve) => server.close(resolve)); // and the server's end of it closed
  });

  t.test(
    `${path}: timeout: an idle handshake emits 'timeout' on the socket connect() returned and destroys nothing, as on tls.connect()'s; the socket keeps the timeout`,
    async (t) => {
      const silent = await silentServer();
      const before = fdCount();
      const stacks: Array<[string, () => net.Socket | ktls.KtlsSocket]> = [
        ['node:tls', () => tls.connect({ host: '127.0.0.1', port: silent.port, timeout: 200, ...TLS })],
        ['ktls', () => ktls.connect({ host: '127.0.0.1', port: silent.port, timeout: 200, fastOpen, ...TLS })],
      ];
      const seen: string[] = [];
      for (const [name, open] of stacks) {
        const start = Date.now();
        const s = open();
        const events: string[] = [];
        for (const e of ['secureConnect', 'error', 'close']) s.on(e, () => events.push(e));
        await once(s, 'timeout');
        const waited = Date.now() - start;
        t.ok(waited >= 190, `${name}: 'timeout' after the timeout (${waited} ms)`);
        seen.push(`${s.destroyed} ${s.timeout} ${events.join(',')}`);
        s.destroy();
        await once(s, 'close');
      }
      t.equal(seen[1], seen[0], "ktls's socket, at 'timeout', is what node:tls's is: not destroyed, same timeout, no other event");
      t.ok(await until(() => silent.closed() === 2), 'both connections closed once destroyed');
      t.equal(fdCount(), before, 'no fd left');
      silent.server.close();

      const { server, port } = await helloServer();
      const sock = await ktls.connectAsync({ host: '127.0.0.1', port, timeout: 150, fastOpen, ...TLS });
      const timedOut = await new Promise<boolean>((resolve) => {
        const guard = setTimeout(() => resolve(false), 3000);
        sock.once('timeout', () => {
          clearTimeout(guard);
          resolve(true);
        });
      });
      t.ok(timedOut, "'timeout' on the KtlsSocket once idle, as on tls.connect()'s socket");
      t.equal(sock.destroyed, false, "'timeout' does not destroy");
      sock.destroy();
      await closeServer(server);
    },
  );
}
