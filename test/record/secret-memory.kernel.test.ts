// After the switch to kernel records no secret sits in Node's shared Buffer
// pool or the V8 heap as text, and node:tls's key-log lines are garbage once parsed.
import t from 'tap';
import { requireKtls } from '../helpers/kernel.js';
import { secretsAfterSwitch } from '../helpers/secret-memory.js';

for (const version of ['TLSv1.2', 'TLSv1.3'] as const)
  t.test(`${version}: secrets are in none of the pool, the heap as text, or live key-log lines (kernel records)`, async (t) => {
    await requireKtls(t);
    await secretsAfterSwitch(t, version, { fallback: 'error' });
  });
