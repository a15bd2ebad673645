// Differences between node:tls and ktls that the differential suite accepts,
// each with the reason a user would be given. Keyed by scenario name; `roles`
// and `paths` narrow where the difference shows. An entry whose scenario no
// longer differs fails the suite, so the list cannot go stale. Entries marked
// OPEN are differences not fixed yet (issue 21), listed so that they are seen.
import type { Role } from './run.js';

/** One accepted difference. */
export interface Allowed {
  scenario: string;
  roles?: Role[];
  paths?: Array<'kernel' | 'userspace'>;
  reason: string;
}

/** Writes reach the kernel inside write() on ktls, a tick later on node:tls. */
const SYNC_WRITES =
  'ktls hands each write to the kernel inside write(), as net.Socket does on plain TCP; node:tls encrypts it on a later tick. ' +
  'So bytes written just before destroy() or a write-after-end error still go out on ktls, where node:tls discards them, ' +
  "and write() returns false only once the kernel's send buffer is full. Backpressure and ordering are the same.";

export const ALLOWED: Allowed[] = [
  {
    scenario: 'the server resets the connection',
    roles: ['server'],
    reason:
      "resetAndDestroy() on ktls does what net.Socket's does (an RST, ECONNRESET at the peer); node:tls's throws ERR_INVALID_HANDLE_TYPE because its handle is not a TCP handle. That is node:tls's limitation, not a behaviour to copy.",
  },
  { scenario: 'end() twice, and a write after end', roles: ['server'], reason: SYNC_WRITES },
  { scenario: 'destroy() after end()', roles: ['server'], reason: SYNC_WRITES },
  { scenario: 'write until false, then wait for drain', roles: ['server'], reason: SYNC_WRITES },
  {
    scenario: 'async iteration until the end',
    roles: ['client'],
    reason:
      "ktls's shutdown completes inside end() (the kernel sends the FIN at once), so 'finish' and 'close' come before the loop after `for await` runs; on node:tls the iterator destroys the socket first and 'finish' never comes. The data and the end are the same.",
  },
  {
    scenario: 'the server destroys while 2 MiB are queued to a reader that is not reading',
    reason:
      'OPEN: a paused ktls socket stops polling once it has read ahead highWaterMark, so it does not see the peer close or reset until it reads again; node:tls notices at once. On ktls as server the 2 MiB were already in the kernel (see the write difference), so the paused node:tls peer has no reason to close.',
  },
];
