// spliceFrom() waits for readiness on an fd in blocking mode instead of
// blocking the event loop in splice(2), and spliceTo() refuses a blocking socket.
import t from 'tap';
import { blockingFds } from '../helpers/blocking-fd.js';
import { requireKtls } from '../helpers/kernel.js';

t.test('a blocking stdin socket: spliceFrom waits without stalling the loop; a blocking socket: spliceTo refuses (kernel records)', async (t) => {
  await requireKtls(t);
  await blockingFds(t, { fallback: 'error' });
});
