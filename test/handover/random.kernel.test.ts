// Randomized hand-overs from node:tls to the kernel: both sides write before,
// during and after the switch, in random chunks at random times, over TLS 1.2
// and 1.3 (tickets included), with peers that pipeline data behind their
// Finished, TLSSockets with writes still in flight at upgradeTLSSocket(), and
// a peer that asks for a KeyUpdate right at the switch. Every byte must arrive
// once and in order (SHA-256 both ways). Seeded: a failure names its seed.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import * as ktls from '../../lib/index.js';
import type { Capabilities } from '../../lib/native/probe.js';
import { carries, requireKtls } from '../helpers/kernel.js';
import { CERTS, SUITES, listening, portOf, prng } from '../helpers/tls.js';

const RUNS = Number(process.env.KTLS_HANDOVER_RUNS ?? 1000);
const SEED = Number(process.env.KTLS_HANDOVER_SEED ?? 0x6b746c73);
type V = keyof typeof SUITES;
type C = keyof (typeof SUITES)['TLSv1.3'];
type Topology = 'ktls-server' | 'ktls-client' | 'both' | 'tlssocket-client' | 'keyupdate-at-switch';
const TOPOLOGIES: Topology[] = ['ktls-server', 'ktls-client', 'both', 'tlssocket-client', 'keyupdate-at-switch'];

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A stream's bytes until its end (or error), as one Buffer. */
function collect(s: NodeJS.ReadableStream & { once(ev: 'error', cb: (e: Error) => void): unknown }): Promise<{ data: Buffer; error?: Error }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => resolve({ data: Buffer.concat(chunks) }));
    s.once('error', (error: Error) => resolve({ data: Buffer.concat(chunks), error }));
  });
}

/** `total` bytes as random-sized chunks. */
function chunked(rand: () => number, total: number): Buffer[] {
  const data = randomBytes(total);
  const out: Buffer[] = [];
  for (let off = 0; off < total;) {
    const n = Math.min(total - off, 1 + Math.floor(rand() * 20_000));
    out.push(data.subarray(off, off + n));
    off += n;
  }
  return out;
}

/**
 * Writes `chunks` to `w`, each now, on the next turn or a few ms later, then
 * ends it once `endAfter` settles (a client's FIN before the server switched
 * would keep the server on userspace records, by design: the kernel attaches
 * TLS only to established connections).
 */
async function writeAll(
  rand: () => number,
  w: { write(b: Buffer): boolean; end(): unknown },
  chunks: Buffer[],
  endAfter: Promise<unknown> = Promise.resolve(),
): Promise<void> {
  for (const c of chunks) {
    const r = rand();
    if (r < 0.3) await new Promise((resolve) => setImmediate(resolve));
    else if (r < 0.45) await sleep(Math.floor(rand() * 5));
    w.write(c);
  }
  // Never in the handshake's own tick: a TLS 1.3 node:tls server that ends there sends no close_notify (a node:tls quirk, not ours).
  await new Promise((resolve) => setImmediate(resolve));
  await endAfter;
  w.end();
}

interface Outcome {
  ok: boolean;
  detail: string;
}

async function oneRun(
  seed: number,
  caps: Capabilities,
  ktlsServer: ktls.KtlsServer,
  tlsServer: tls.Server,
  onKtls: { next?: (s: ktls.KtlsSocket) => void },
  onTls: { next?: (s: tls.TLSSocket) => void },
  where: { label: string; phase: string },
): Promise<Outcome> {
  const rand = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const topology = pick(TOPOLOGIES);
  const v: V = topology === 'keyupdate-at-switch' ? 'TLSv1.3' : pick(['TLSv1.2', 'TLSv1.3'] as const);
  const c: C = pick(['aes-128-gcm', 'aes-256-gcm', 'chacha20-poly1305'] as const);
  const opts = { minVersion: v, maxVersion: v, ciphers: SUITES[v][c] };
  const toServer = chunked(rand, Math.floor(rand() * 48_000));
  const toClient = chunked(rand, Math.floor(rand() * 48_000));
  const label = `seed ${seed}: ${topology} ${v} ${c} (${toServer.reduce((n, b) => n + b.length, 0)} B up, ${toClient.reduce((n, b) => n + b.length, 0)} B down)`;
  where.label = label;
  where.phase = 'handshake';
  const serverIsKtls = topology !== 'ktls-client';
  const port = portOf(serverIsKtls ? ktlsServer : tlsServer);
  ktlsServer.tlsServer.setSecureContext({ key: CERTS.key, cert: CERTS.cert, ...opts });

  // The server writes as soon as it has the connection, while the client may still be switching.
  const serverSide = new Promise<{ received: Promise<{ data: Buffer; error?: Error }>; kernel: boolean | null }>((resolve) => {
    const serve = (s: ktls.KtlsSocket | tls.TLSSocket): void => {
      const received = collect(s);
      void writeAll(rand, s, toClient);
      resolve({ received, kernel: s instanceof ktls.KtlsSocket ? s.kernel : null });
    };
    if (serverIsKtls) onKtls.next = serve;
    else onTls.next = serve;
  });

  const clientOpts = { port, host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca, allowHalfOpen: true, ...opts };
  let client: ktls.KtlsSocket | tls.TLSSocket;
  let clientReceived: Promise<{ data: Buffer; error?: Error }>;
  if (topology === 'ktls-server') {
    // node:tls client pipelining its first writes behind its Finished.
    const t = tls.connect(clientOpts, () => void writeAll(rand, t, toServer, serverSide));
    client = t;
    clientReceived = collect(t);
  } else if (topology === 'tlssocket-client') {
    const raw = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    await new Promise((resolve) => raw.once('connect', resolve));
    const t = ktls.createTLSSocket(raw, clientOpts);
    await new Promise((resolve) => t.once('secureConnect', resolve));
    // Some writes before the switch without waiting for their callbacks, some in the same tick as upgradeTLSSocket().
    const before = toServer.slice(0, Math.floor(rand() * (toServer.length + 1)));
    const during = toServer.slice(before.length, before.length + Math.floor(rand() * (toServer.length - before.length + 1)));
    const after = toServer.slice(before.length + during.length);
    const early: Buffer[] = [];
    t.on('data', (d: Buffer) => early.push(d));
    for (const b of before) t.write(b);
    if (rand() < 0.5) await sleep(Math.floor(rand() * 3));
    const switching = ktls.upgradeTLSSocket(t, { allowHalfOpen: true });
    for (const b of during) t.write(b);
    const sock = await switching;
    client = sock;
    const rest = collect(sock);
    clientReceived = rest.then((r) => ({ ...r, data: Buffer.concat([...early, r.data]) }));
    void writeAll(rand, sock, after, serverSide);
  } else {
    const kernel = topology === 'keyupdate-at-switch' ? false : undefined;
    const wait = v === 'TLSv1.3' && rand() < 0.3 ? { waitForTicket: 200 } : {};
    const sock = await ktls.connectAsync({ ...clientOpts, ktls: { allowHalfOpen: true, ...(kernel === false ? { kernel } : {}), ...wait } });
    client = sock;
    clientReceived = collect(sock);
    // A userspace-record client (any kernel can rekey those) asks for a KeyUpdate at once, while the server switches.
    if (topology === 'keyupdate-at-switch') void sock.updateKeys({ requestPeer: true }).catch(() => undefined);
    void writeAll(rand, sock, toServer, serverSide);
  }
  where.phase = 'server switch';
  const server = await serverSide;
  where.phase = 'transfer';
  const [up, down] = await Promise.all([server.received, clientReceived]);
  client.destroy();
  const upOk = sha(up.data) === sha(Buffer.concat(toServer));
  const downOk = sha(down.data) === sha(Buffer.concat(toClient));
  const errors = [up.error, down.error].filter((e): e is Error & { code?: string } => e !== undefined).map((e) => e.code ?? e.message);
  // Where this kernel cannot carry the suite (ChaCha20 before 5.11, say), the switch goes to userspace records.
  const inKernel = carries(caps, v, c);
  if (serverIsKtls && server.kernel !== inKernel) return { ok: false, detail: `${label}: the server socket is ${server.kernel ? '' : 'not '}in the kernel` };
  if (upOk && downOk && errors.length === 0) return { ok: true, detail: label };
  // A KeyUpdate that reaches a kernel without rekey (before 6.14) after its switch is refused, typed, never stalled.
  if (topology === 'keyupdate-at-switch' && !caps.rekey && errors.includes('ERR_KTLS_REKEY_UNSUPPORTED'))
    return { ok: true, detail: `${label}: ERR_KTLS_REKEY_UNSUPPORTED (this kernel cannot rekey)` };
  return {
    ok: false,
    detail: `${label}: up ${upOk ? 'intact' : `${up.data.length} B, differs`}, down ${downOk ? 'intact' : `${down.data.length} B, differs`}${errors.length ? `, errors ${errors.join(', ')}` : ''}`,
  };
}

t.test(`${RUNS} randomized hand-overs: no byte lost, duplicated or reordered`, async (t) => {
  const caps = await requireKtls(t);
  const onKtls: { next?: (s: ktls.KtlsSocket) => void } = {};
  const onTls: { next?: (s: tls.TLSSocket) => void } = {};
  const clientErrors: string[] = [];
  const ktlsServer = ktls.createServer({ key: CERTS.key, cert: CERTS.cert, ktls: { allowHalfOpen: true } }, (s) => onKtls.next?.(s));
  ktlsServer.on('tlsClientError', (e: Error & { code?: string }) => clientErrors.push(`${e.code ?? e.message}: ${e.message}`));
  const tlsServer = tls.createServer({ key: CERTS.key, cert: CERTS.cert, allowHalfOpen: true }, (s) => onTls.next?.(s));
  ktlsServer.listen(0, '127.0.0.1');
  tlsServer.listen(0, '127.0.0.1');
  await Promise.all([listening(ktlsServer), listening(tlsServer)]);
  const failures: string[] = [];
  const counts = new Map<string, number>();
  for (let i = 0; i < RUNS; i++) {
    const seed = SEED + i;
    let timer: NodeJS.Timeout | undefined;
    const where = { label: `seed ${seed}`, phase: 'start' };
    const timeout = new Promise<Outcome>(
      (resolve) => (timer = setTimeout(() => resolve({ ok: false, detail: `${where.label}: timed out in ${where.phase}` }), 30_000)),
    );
    const r = await Promise.race([oneRun(seed, caps, ktlsServer, tlsServer, onKtls, onTls, where), timeout]).finally(() => clearTimeout(timer));
    const kind = r.detail.split(': ')[1].split(' (')[0].split(' ')[0];
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
    if (!r.ok) failures.push(r.detail);
    if ((i + 1) % 100 === 0) t.comment(`${i + 1} runs, ${failures.length} failed`);
    if (r.ok && r.detail.includes('REKEY_UNSUPPORTED')) counts.set('typed rekey refusals', (counts.get('typed rekey refusals') ?? 0) + 1);
  }
  t.comment(`runs by topology: ${[...counts].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  t.same(failures, [], `all ${RUNS} hand-overs intact both ways`);
  t.same(clientErrors, [], 'no tlsClientError on the ktls server');
  ktlsServer.close();
  tlsServer.close();
});
