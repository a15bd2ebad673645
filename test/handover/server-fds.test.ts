// A server that runs for months: connections whose handshake fails or is
// abandoned are closed, leave no fd behind, and are each reported as a
// 'tlsClientError' with a code; server.close() then completes.
import t from 'tap';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import * as ktls from '../../lib/index.js';
import { parity } from '../helpers/parity-log.js';
import { CERTS, listening, portOf } from '../helpers/tls.js';

const PER_KIND = Number(process.env.KTLS_FD_CONNECTIONS ?? 1000);
const fdCount = (): number => fs.readdirSync('/proc/self/fd').length;

/** A real ClientHello, captured from node:tls. */
async function clientHello(): Promise<Buffer> {
  const sink = net.createServer();
  sink.listen(0, '127.0.0.1');
  await listening(sink);
  const got = new Promise<Buffer>((resolve) => sink.once('connection', (s) => s.once('data', (d: Buffer) => (s.destroy(), resolve(d)))));
  const c = tls.connect({ port: portOf(sink), host: '127.0.0.1', servername: 'localhost' });
  c.on('error', () => undefined);
  const hello = await got;
  c.destroy();
  sink.close();
  return hello;
}

type Kind = 'garbage' | 'hello-then-fin' | 'connect-then-close' | 'hello-then-rst';

/** One misbehaving client; resolves once the server has closed the connection (FIN or RST), with what it received. */
function misbehave(port: number, kind: Kind, hello: Buffer): Promise<Buffer> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', () => undefined);
    s.on('end', () => s.destroy());
    s.on('close', () => resolve(Buffer.concat(got)));
    s.once('connect', () => {
      // Application data before any handshake: node:tls answers unexpected_message.
      if (kind === 'garbage') s.write(Buffer.from('17030300050102030405', 'hex'));
      else if (kind === 'hello-then-fin') s.end(hello);
      else if (kind === 'connect-then-close') s.destroy();
      else {
        s.write(hello);
        setTimeout(() => s.resetAndDestroy(), 5);
      }
    });
  });
}

t.test('failed and abandoned handshakes leave no fd open, each is a tlsClientError, and close() completes', async (t) => {
  parity(t, ['Server@tlsClientError', 'Server#close']);
  const hello = await clientHello();
  for (const kind of ['garbage', 'hello-then-fin', 'connect-then-close', 'hello-then-rst'] as const) {
    await sleep(50);
    const baseline = fdCount();
    const errors = new Map<string, number>();
    const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert }, () => t.fail('no connection completes'));
    server.on('tlsClientError', (err: Error & { code?: string }) => errors.set(err.code ?? 'none', (errors.get(err.code ?? 'none') ?? 0) + 1));
    let accepted = 0;
    server.netServer.on('connection', () => accepted++);
    server.listen(0, '127.0.0.1');
    await listening(server);
    const port = portOf(server);
    let alerts = 0;
    for (let done = 0; done < PER_KIND;) {
      const batch = Math.min(25, PER_KIND - done);
      const got = await Promise.all(Array.from({ length: batch }, () => misbehave(port, kind, hello)));
      alerts += got.filter((b) => b[0] === 21 && b[6] === 10).length;
      done += batch;
    }
    // A client may be gone before the server accepted it: wait until every connection was accepted and answered.
    for (const until = Date.now() + 10_000; (accepted < PER_KIND || [...errors.values()].reduce((a, b) => a + b, 0) < PER_KIND) && Date.now() < until;)
      await sleep(20);
    t.equal(accepted, PER_KIND, `${kind}: the server accepted every connection`);
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    const timeout = sleep(10_000).then(() => 'timeout');
    t.equal(await Promise.race([closed.then(() => 'closed'), timeout]), 'closed', `${kind}: server.close() completes`);
    const total = [...errors.values()].reduce((a, b) => a + b, 0);
    t.equal(total, PER_KIND, `${kind}: one tlsClientError per connection (${[...errors].map(([c, n]) => `${c} ×${n}`).join(', ')})`);
    t.notOk(errors.has('none'), `${kind}: every tlsClientError has a code`);
    if (kind === 'garbage') t.equal(alerts, PER_KIND, 'garbage: every client got an alert (unexpected_message), then the connection closed');
    t.equal(fdCount(), baseline, `${kind}: /proc/self/fd back at its baseline (${baseline})`);
  }
});
