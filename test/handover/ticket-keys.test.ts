// Ticket keys derived from a shared secret and the clock: two servers that
// never talk resume each other's sessions, and the key turns over at period
// boundaries. Resumed connections switch to the kernel like full ones (under
// a kTLS kernel; userspace records on this one).
import t from 'tap';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { CERTS, listening, portOf } from '../helpers/tls.js';

const SECRET = 'a shared secret of at least thirty-two bytes, for tests';

t.test('the same secret and time give the same keys; the period number picks them', async (t) => {
  const at = Date.UTC(2026, 11, 6, 10, 0, 0);
  const a = ktls.ticketKeys({ secret: SECRET, periodMs: 3_600_000 }, at);
  const b = ktls.ticketKeys({ secret: Buffer.from(SECRET), periodMs: 3_600_000 }, at + 59 * 60_000);
  t.equal(a.current.length, 48);
  t.same(a.current, b.current, 'same period, same key, from a string or a Buffer');
  t.equal(a.endsAt - a.startsAt, 3_600_000);
  const next = ktls.ticketKeys({ secret: SECRET, periodMs: 3_600_000 }, a.endsAt);
  t.same(next.previous, a.current, "the next period's previous key is this one");
  t.not(next.current.toString('hex'), a.current.toString('hex'), 'a new key at the boundary');
  const other = ktls.ticketKeys({ secret: `${SECRET}!`, periodMs: 3_600_000 }, at);
  t.not(other.current.toString('hex'), a.current.toString('hex'), 'another secret, another key');
  t.throws(() => ktls.ticketKeys({ secret: 'short' }), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => ktls.ticketKeys({ secret: 42 as unknown as string }), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => ktls.ticketKeys({ secret: SECRET, periodMs: 10 }), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => ktls.rotateTicketKeys({} as tls.Server, { secret: SECRET }), { code: 'ERR_INVALID_ARG_TYPE' });
});

t.test('a time that is not a finite number is refused, not turned into a key for "period NaN"', async (t) => {
  t.throws(() => ktls.ticketKeys({ secret: SECRET }, NaN), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => ktls.ticketKeys({ secret: SECRET }, Infinity), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => ktls.ticketKeys({ secret: SECRET }, '2026' as unknown as number), { code: 'ERR_INVALID_ARG_TYPE' });
});

t.test('a period longer than a timer can wait (30 days) installs its key once, not every millisecond', async (t) => {
  let calls = 0;
  const rotation = ktls.rotateTicketKeys({ setTicketKeys: () => void calls++ }, { secret: SECRET, periodMs: 30 * 24 * 3_600_000 });
  await new Promise((resolve) => setTimeout(resolve, 500));
  rotation.stop();
  t.equal(calls, 1, `setTicketKeys called once in 500 ms (${calls})`);
  t.equal(rotation.keys.endsAt - rotation.keys.startsAt, 30 * 24 * 3_600_000, 'the period is 30 days');
});

/** A TLS 1.3 session from one server, offered to another; resolves with what the second server's socket saw. */
async function resumeAcross(
  first: ktls.KtlsServer,
  second: ktls.KtlsServer,
  seen: ktls.KtlsSocket[],
): Promise<{ clientReused: boolean; server: ktls.KtlsSocket | undefined }> {
  const connectTo = async (server: ktls.KtlsServer, session?: Buffer): Promise<{ reused: boolean; session?: Buffer }> => {
    const c = tls.connect({ port: portOf(server), host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca, session });
    let ticket: Buffer | undefined;
    c.on('session', (s: Buffer) => (ticket = s));
    await new Promise((r) => c.once('secureConnect', r));
    c.write('x');
    await new Promise((r) => c.once('data', r)); // the server has switched; the ticket came before its echo
    const reused = c.isSessionReused();
    c.end();
    await new Promise((r) => c.once('close', r));
    return { reused, session: ticket };
  };
  const { session } = await connectTo(first);
  const before = seen.length;
  const { reused } = await connectTo(second, session);
  return { clientReused: reused, server: seen.slice(before).pop() };
}

t.test('two servers rotating from one secret resume each other’s TLS 1.3 sessions, and the resumed connection switches like a full one', async (t) => {
  const { ulp } = await ktls.probe();
  const seen: ktls.KtlsSocket[] = [];
  const make = (keys?: ktls.TicketKeyOptions): { server: ktls.KtlsServer; rotation?: ktls.TicketKeyRotation } => {
    const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert }, (s) => {
      seen.push(s);
      s.on('error', () => undefined); // clients below that take a ticket and go close without close_notify
      s.on('data', (d: Buffer) => s.write(d));
      s.on('end', () => s.end());
    });
    return { server, rotation: keys ? ktls.rotateTicketKeys(server, keys) : undefined };
  };
  const a = make({ secret: SECRET });
  const b = make({ secret: SECRET });
  const c = make(); // its own random key
  for (const s of [a, b, c]) s.server.listen(0, '127.0.0.1');
  await Promise.all([a, b, c].map((s) => listening(s.server)));
  t.same(a.server.getTicketKeys(), a.rotation?.keys.current, 'the current key is installed');

  const ab = await resumeAcross(a.server, b.server, seen);
  t.equal(ab.clientReused, true, 'a session from server A resumes on server B');
  t.equal(ab.server?.isSessionReused(), true, "B's KtlsSocket says it resumed");
  t.equal(ab.server?.kernel, ulp, `the resumed connection's records are in the ${ulp ? 'kernel' : 'userspace layer, as full ones on this kernel'}`);
  const ac = await resumeAcross(a.server, c.server, seen);
  t.equal(ac.clientReused, false, 'a server with another key makes a full handshake');
  t.equal(ac.server?.isSessionReused(), false);
  for (const s of [a, b, c]) {
    s.rotation?.stop();
    s.server.close();
  }
});

t.test('at a period boundary the key turns over on every server at once; an old ticket then makes a full handshake', async (t) => {
  const seen: ktls.KtlsSocket[] = [];
  const servers = [0, 1].map(() =>
    ktls.createServer({ key: CERTS.key, cert: CERTS.cert }, (s) => {
      seen.push(s);
      s.on('error', () => undefined); // clients below that take a ticket and go close without close_notify
      s.on('data', (d: Buffer) => s.write(d));
      s.on('end', () => s.end());
    }),
  );
  const opts = { secret: SECRET, periodMs: 1000 };
  // Start just after a boundary so the first resumption lands inside one period.
  await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 20));
  const rotations = servers.map((s) => ktls.rotateTicketKeys(s, opts));
  for (const s of servers) s.listen(0, '127.0.0.1');
  await Promise.all(servers.map((s) => listening(s)));
  const [a, b] = servers as [ktls.KtlsServer, ktls.KtlsServer];
  const first = rotations[0].keys.period;
  t.equal((await resumeAcross(a, b, seen)).clientReused, true, 'resumed within the period');
  // A ticket from this period, offered after the boundary.
  const c = tls.connect({ port: portOf(a), host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca });
  const session = await new Promise<Buffer>((r) => c.once('session', r));
  c.destroy();
  await new Promise((r) => setTimeout(r, Math.max(rotations[0].keys.endsAt - Date.now(), 0) + 100));
  t.equal(rotations[0].keys.period, first + 1, 'the rotation moved to the next period');
  t.same(a.getTicketKeys(), b.getTicketKeys(), 'both servers hold the same new key');
  t.same(a.getTicketKeys(), ktls.ticketKeys(opts).current);
  const late = tls.connect({ port: portOf(b), host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca, session });
  await new Promise((r) => late.once('secureConnect', r));
  t.equal(late.isSessionReused(), false, 'the old ticket no longer resumes (Node holds one ticket key)');
  late.destroy();
  for (const r of rotations) r.stop();
  for (const s of servers) s.close();
});
