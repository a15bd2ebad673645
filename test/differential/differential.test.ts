// node:tls is the oracle: every differential scenario, ktls on userspace records
// (this host's kernel has no kTLS; the kernel path is differential.kernel.test.ts).
import t from 'tap';
import { differential } from './suite.js';

void differential(t, 'userspace');
