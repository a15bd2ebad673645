// connect()'s net.connect options on any kernel: lookup (every answer tried),
// family, localAddress, string ports, signal and timeout, on the ordinary path
// and on the Fast Open path (records in userspace where the kernel lacks kTLS,
// in the kernel where it has it).
import t from 'tap';
import { connectOptionCases } from '../helpers/connect-cases.js';

process.on('warning', () => undefined); // KTLS_FALLBACK on hosts without kTLS

connectOptionCases(t, false);
connectOptionCases(t, true);
