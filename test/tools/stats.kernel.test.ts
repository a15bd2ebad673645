// ktls.stats() under a kTLS kernel: the process counters move with what the
// connections do (kinds, bytes by path, close_notify and fatal alerts by name,
// KeyUpdates where the kernel rekeys), the host's /proc/net/tls_stat moves
// with them, and the same numbers come out as Prometheus text, through a
// prom-client registry, and from `ktls-verify --stats`.
import t from 'tap';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import type * as net from 'node:net';
import * as path from 'node:path';
import { Registry } from 'prom-client';
import * as ktls from '../../lib/index.js';
import { requireKtls } from '../helpers/kernel.js';
import { CERTS } from '../helpers/tls.js';
import { loopbackPair, readBytes, sessionKeys } from '../helpers/pair.js';

const closed = (s: ktls.KtlsSocket): Promise<void> => new Promise((resolve) => (s.closed ? resolve() : s.once('close', () => resolve())));

const delta = (a: Record<string, number>, b: Record<string, number>): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) if ((b[k] ?? 0) !== (a[k] ?? 0)) out[k] = (b[k] ?? 0) - (a[k] ?? 0);
  return out;
};

void t.test('the counters follow two kernel connections: kinds, bytes, alerts, KeyUpdates, and the host counters', async (t) => {
  const caps = await requireKtls(t);
  // The defect detectors install keys of their own, once per process: run them before counting.
  await ktls.probe();
  const before = await ktls.stats();
  t.ok(before.host, 'the kernel has /proc/net/tls_stat');

  // One clean connection: writes, a file, a KeyUpdate where the kernel rekeys, close_notify both ways.
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert });
  t.teardown(() => server.close());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<ktls.KtlsSocket>((resolve) => server.once('secureConnection', resolve));
  const x = ktls.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca });
  await once(x, 'secureConnect');
  const y = await accepted;
  const during = await ktls.stats();
  t.same(delta(before.process.open, during.process.open), { 'kernel-sw': 2 }, 'two connections open, software kTLS both ways (sock_diag)');
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-stats-')), 'f');
  fs.writeFileSync(file, Buffer.alloc(50_000, 3));
  t.teardown(() => fs.rmSync(path.dirname(file), { recursive: true, force: true }));
  const read = readBytes(y, 1000 + 50_000);
  x.write(Buffer.alloc(1000, 1));
  await x.sendFile(file);
  await read;
  let keyUpdates = 0;
  if (caps.rekey) {
    const seen = readBytes(y, 10);
    await x.updateKeys();
    x.write(Buffer.alloc(10));
    await seen;
    keyUpdates = 1;
  }
  x.end();
  y.resume();
  await once(y, 'end');
  y.end();
  await Promise.all([closed(x), closed(y)]);

  // One that fails: a forged record makes the kernel's RX refuse it and ktls send bad_record_mac.
  const [c, d] = await loopbackPair();
  const k2 = sessionKeys('TLSv1.2', 'aes-256-gcm');
  const victim = await ktls.upgrade(d, k2.b);
  victim.on('error', () => undefined);
  victim.resume();
  c.on('error', () => undefined);
  c.write(Buffer.from([23, 3, 3, 0, 40, ...Buffer.alloc(40, 0xee)]));
  await closed(victim);
  c.destroy();

  const after = await ktls.stats();
  const p = { connections: delta(before.process.connections, after.process.connections), open: delta(before.process.open, after.process.open) };
  t.same(p, { connections: { 'kernel-sw': 3 }, open: {} }, 'three software-kTLS connections switched, none open now');
  t.same(delta(before.process.bytes, after.process.bytes), { write: 1000 + (keyUpdates ? 10 : 0), sendFile: 50_000 }, 'bytes by path');
  t.same(delta(before.process.alerts.sent, after.process.alerts.sent), { close_notify: 2, bad_record_mac: 1 }, 'alerts sent');
  t.same(delta(before.process.alerts.received, after.process.alerts.received), { close_notify: 2 }, 'alerts received');
  t.same(
    delta(before.process.keyUpdates, after.process.keyUpdates),
    keyUpdates ? { sent: 1, received: 1 } : {},
    caps.rekey ? 'one KeyUpdate each way' : `no KeyUpdate: kernel ${caps.kernelRelease} cannot rekey`,
  );
  t.same(delta(before.process.fallbacks, after.process.fallbacks), {}, 'no fallback');
  const host = delta(before.host ?? {}, after.host ?? {});
  t.comment(`host counters moved: ${JSON.stringify(host)}`);
  t.equal(host.TlsTxSw, 3, 'the host counted three software TX contexts');
  t.equal(host.TlsRxSw, 3, 'and three RX');
  // A record that fails is counted each time the kernel tries it (ktls reads once more to take the socket error).
  t.ok((host.TlsDecryptError ?? 0) >= 1, 'and the forged record as a decrypt error');
  t.equal(host.TlsCurrTxSw ?? 0, 0, 'none is open now');
});

void t.test('Prometheus text, a prom-client registry and ktls-verify --stats report the same numbers', async (t) => {
  await requireKtls(t);
  const [a, b] = await loopbackPair();
  const keys = sessionKeys('TLSv1.3', 'aes-256-gcm');
  const [x, y] = await Promise.all([ktls.upgrade(a, keys.a), ktls.upgrade(b, keys.b)]);
  const s = await ktls.stats();
  const text = ktls.prometheusText(s);
  const line = (name: string, labels: string): string | undefined => text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  t.equal(line('ktls_connections_total', 'kind="kernel-sw"'), `ktls_connections_total{kind="kernel-sw"} ${s.process.connections['kernel-sw']}`);
  t.equal(line('ktls_connections_open', 'kind="kernel-sw"'), `ktls_connections_open{kind="kernel-sw"} ${s.process.open['kernel-sw']}`);
  t.ok(s.process.open['kernel-sw'] >= 2, 'the two open here count');
  t.match(text, /^# TYPE ktls_host_tls_current gauge$/m);
  t.match(text, new RegExp(`^ktls_host_tls_current\\{name="TlsCurrTxSw"\\} ${s.host?.TlsCurrTxSw ?? -1}$`, 'm'), 'the host gauge');

  const register = new Registry();
  const metrics = ktls.registerPromClient({ register });
  t.equal(metrics.length, 8, 'one prom-client metric per ktls metric');
  const scraped = await register.metrics();
  t.match(scraped, new RegExp(`^ktls_connections_open\\{kind="kernel-sw"\\} ${s.process.open['kernel-sw']}$`, 'm'), 'prom-client scrapes the open connections');
  t.match(scraped, /^# TYPE ktls_connections_total counter$/m);
  t.match(scraped, /^ktls_host_tls_total\{name="TlsTxSw"\} \d+$/m, 'and the host counters');

  const cli = path.resolve(__dirname, '..', '..', 'lib', 'verify', 'cli.js');
  const json = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, [cli, '--stats', '--json'], (err, out) => (err ? reject(new Error(err.message)) : resolve(out))),
  );
  const report = JSON.parse(json) as ktls.KtlsStats;
  t.equal(report.host?.TlsCurrTxSw, s.host?.TlsCurrTxSw ?? 0, 'ktls-verify --stats --json reads the same host counters (this process holds two)');
  t.same(report.process.connections, { 'kernel-sw': 0, 'kernel-hw': 0, kernel: 0, partial: 0, userspace: 0, none: 0 }, 'and its own (fresh) process counters');
  const human = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, [cli, '--stats'], (err, out) => (err ? reject(new Error(err.message)) : resolve(out))),
  );
  t.match(human, /this host \(\/proc\/net\/tls_stat\):\n\s+TlsCurrTxSw\s+\d+/);
  x.destroy();
  y.destroy();
});
