// spliceFrom() waits for readiness on an fd in blocking mode instead of
// blocking the event loop in splice/read, and spliceTo() refuses a blocking
// socket (userspace records here; kernel records in splice-blocking.kernel.test.ts).
import t from 'tap';
import { blockingFds } from '../helpers/blocking-fd.js';

t.test('a blocking stdin socket: spliceFrom waits without stalling the loop; a blocking socket: spliceTo refuses (userspace records)', (t) =>
  blockingFds(t, { kernel: false }),
);
