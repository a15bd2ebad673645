// Differences between node:tls and ktls that the differential suite accepts,
// each with the reason a user would be given. Keyed by scenario name; `roles`
// and `paths` narrow where the difference shows. An entry whose scenario no
// longer differs fails the suite, so the list cannot go stale. Every entry is a
// difference kept on purpose; none is a fix still owed.
import type { ParityMember } from '../helpers/parity-log.js';
import type { Role } from './run.js';

/** One accepted difference. */
export interface Allowed {
  scenario: string;
  roles?: Role[];
  paths?: Array<'kernel' | 'userspace'>;
  /** The node:tls members whose behaviour differs: docs/node-tls-parity.md does not mark them ✓. */
  members: ParityMember[];
  reason: string;
}

/** Writes reach the kernel inside write() on ktls, a tick later on node:tls. */
const SYNC_WRITES =
  'ktls hands each write to the kernel inside write(), as net.Socket does on plain TCP; node:tls encrypts it on a later tick. ' +
  'So bytes written just before destroy() or a write-after-end error still go out on ktls, where node:tls discards them, ' +
  "and write() returns false only once the kernel's send buffer is full. Backpressure and ordering are the same.";

/** node:tls's client 'secureConnect' comes before its Finished has left; ktls's once it has. */
const FINISHED_FIRST =
  "In TLS 1.3 the client sends the last handshake message (Finished). node:tls emits 'secureConnect' while that message is still queued, so a destroy() there drops it: " +
  'the server never gets a connection (its handshake fails). ktls emits it once node:tls has written everything it owed, with the records moved to the kernel, so the server ' +
  "gets the connection and sees it end. connect() returns the socket at once on both, and the application's destroy() has the same effect on its own socket.";

export const ALLOWED: Allowed[] = [
  {
    scenario: 'the server resets the connection',
    members: ['TLSSocket#resetAndDestroy'],
    roles: ['server'],
    reason:
      "resetAndDestroy() on ktls does what net.Socket's does (an RST, ECONNRESET at the peer); node:tls's throws ERR_INVALID_HANDLE_TYPE because its handle is not a TCP handle. That is node:tls's limitation, not a behaviour to copy.",
  },
  { scenario: 'end() twice, and a write after end', roles: ['server'], members: ['TLSSocket#end'], reason: SYNC_WRITES },
  { scenario: 'destroy() after end()', roles: ['server'], members: ['TLSSocket#end'], reason: SYNC_WRITES },
  { scenario: 'write until false, then wait for drain', roles: ['server'], members: ['TLSSocket@drain'], reason: SYNC_WRITES },

  ...[
    'the server destroys while 2 MiB are queued to a reader that is not reading',
    'the client destroys, not reading, while the server writes 1 MiB',
    'write 1 MiB to a reader paused for 200 ms, end in the write callback',
  ].map((scenario): Allowed => ({ scenario, roles: ['server'], members: ['TLSSocket@drain'], reason: SYNC_WRITES })),
  ...['the client destroys at once', 'the client destroys with an error it listens for'].map((scenario): Allowed => ({
    scenario,
    roles: ['client'],
    members: ['TLSSocket@secureConnect'],
    reason: FINISHED_FIRST,
  })),
  {
    scenario: 'TLS 1.2: the server destroys at once',
    members: ['Server@secureConnection'],
    roles: ['server'],
    reason:
      "In TLS 1.2 the server sends the last handshake flight. node:tls emits 'secureConnection' before that flight has left, so a destroy() there can drop it and its client fails to connect (ECONNRESET); ktls hands the socket over once node:tls has flushed, so the client connects and sees the end. The application's destroy() has the same effect on the connection.",
  },
];
