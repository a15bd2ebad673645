// After the switch no secret sits in Node's shared Buffer pool or the V8 heap
// as text, and node:tls's key-log lines are garbage once parsed (userspace
// records here; kernel records in secret-memory.kernel.test.ts).
import t from 'tap';
import { secretsAfterSwitch } from '../helpers/secret-memory.js';

for (const version of ['TLSv1.2', 'TLSv1.3'] as const)
  t.test(`${version}: secrets are in none of the pool, the heap as text, or live key-log lines (userspace records)`, (t) =>
    secretsAfterSwitch(t, version, { kernel: false }),
  );
