// ktls.stats() on any kernel: fallbacks counted by reason, the exposition
// format's escaping of such a reason, and ktls-verify --stats.
import t from 'tap';
import { once } from 'node:events';
import * as ktls from '../../lib/index.js';
import { loopbackPair, sessionKeys } from '../helpers/pair.js';

void t.test('connections on userspace records count by kind and by reason', async (t) => {
  const before = await ktls.stats();
  const [a, b] = await loopbackPair();
  const keys = sessionKeys('TLSv1.3', 'aes-128-gcm');
  const [x, y] = await Promise.all([ktls.upgrade(a, keys.a, { kernel: false }), ktls.upgrade(b, keys.b, { kernel: false })]);
  const mid = await ktls.stats();
  t.equal(mid.process.connections.userspace - before.process.connections.userspace, 2);
  t.equal(mid.process.open.userspace - before.process.open.userspace, 2);
  t.equal((mid.process.fallbacks['options.kernel is false'] ?? 0) - (before.process.fallbacks['options.kernel is false'] ?? 0), 2);
  x.destroy();
  y.destroy();
  await Promise.all([once(x, 'close'), once(y, 'close')]);
  t.equal((await ktls.stats()).process.open.userspace, before.process.open.userspace, 'counted out at close');
});

void t.test('prometheusText escapes label values and types every metric', (t) => {
  const s: ktls.KtlsStats = {
    process: {
      connections: { 'kernel-sw': 1, 'kernel-hw': 0, kernel: 0, partial: 0, userspace: 2, none: 0 },
      open: { 'kernel-sw': 0, 'kernel-hw': 0, kernel: 0, partial: 0, userspace: 1, none: 0 },
      fallbacks: { 'no "tls" ULP\\here\nnext': 2 },
      keyUpdates: { sent: 0, received: 0 },
      alerts: { sent: { close_notify: 3 }, received: {} },
      bytes: { write: 5, sendFile: 0, spliceFrom: 0, spliceTo: 0 },
    },
    host: null,
  };
  const text = ktls.prometheusText(s);
  t.match(text, /^ktls_fallbacks_total\{reason="no \\"tls\\" ULP\\\\here\\nnext"\} 2$/m, 'quote, backslash and newline escaped');
  t.match(text, /^ktls_alerts_total\{direction="sent",alert="close_notify"\} 3$/m);
  t.notMatch(text, /ktls_host_/, 'no host metrics without /proc/net/tls_stat');
  const typed = new Set([...text.matchAll(/^# TYPE (\S+) (counter|gauge)$/gm)].map((m) => m[1]));
  const named = new Set([...text.matchAll(/^(ktls_\w+)[{ ]/gm)].map((m) => m[1]));
  t.same(
    [...named].filter((n) => !typed.has(n)),
    [],
    'every sample has its TYPE line',
  );
  t.end();
});

void t.test('registerPromClient without prom-client in the application: ERR_KTLS_PROM_CLIENT_MISSING', (t) => {
  const missing = (): never => {
    throw Object.assign(new Error("Cannot find module 'prom-client'"), { code: 'MODULE_NOT_FOUND' });
  };
  const mod = t.mockRequire<typeof import('../../lib/tools/prom-client.js')>(require.resolve('../../lib/tools/prom-client.js'), {
    'node:module': { createRequire: () => missing },
  });
  t.throws(() => mod.registerPromClient(), { code: 'ERR_KTLS_PROM_CLIENT_MISSING' });
  t.end();
});
