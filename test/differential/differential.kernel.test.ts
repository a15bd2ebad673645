// node:tls is the oracle: every differential scenario, ktls on kernel records.
import t from 'tap';
import { requireKtls } from '../helpers/kernel.js';
import { ktlsCounts } from './stack.js';
import { differential } from './suite.js';

void (async () => {
  await requireKtls(t);
  await differential(t, 'kernel');
  // Only a connection whose peer closed before the switch may stay off the kernel (as a user's would): TCP_ULP
  // answers ENOTCONN once the peer's FIN or reset is in. Any other reason would be a kernel path not tested here.
  t.comment(`the kernel carried ${ktlsCounts.kernel} of the ${ktlsCounts.sockets} ktls sockets`);
  const other = ktlsCounts.offKernel.filter((reason) => !reason.includes('ENOTCONN'));
  t.same(other, [], `every socket off the kernel is one whose peer closed first (${ktlsCounts.offKernel.length} of them)`);
  t.ok(ktlsCounts.kernel > ktlsCounts.sockets / 2, 'most ktls sockets ran on kernel records');
})();
