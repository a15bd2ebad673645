// node:tls is the oracle: every differential scenario, ktls on kernel records.
import t from 'tap';
import { requireKtls } from '../helpers/kernel.js';
import { ktlsCounts } from './stack.js';
import { differential } from './suite.js';

void (async () => {
  await requireKtls(t);
  await differential(t, 'kernel');
  // Only a connection whose peer closed before the switch may stay off the kernel (as a user's would).
  t.ok(ktlsCounts.kernel >= ktlsCounts.sockets - 8, `the kernel carried ${ktlsCounts.kernel} of the ${ktlsCounts.sockets} ktls sockets`);
})();
