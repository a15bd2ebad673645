// sendFile, splice both ways and TCP_CORK over the userspace record layer: same behaviour on any kernel.
import t from 'tap';
import { zeroCopySuite } from '../helpers/zerocopy.js';

zeroCopySuite(t, { kernel: false }, false);
