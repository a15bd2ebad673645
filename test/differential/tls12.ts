// TLS 1.2 ends connections differently from TLS 1.3 (no tickets after the
// handshake, kTLS's 1.2 record format, a close_notify with an explicit
// nonce): the ending and flow scenarios that matter most, again on TLS 1.2.
import type { Scenario } from './run.js';

const AGAIN = [
  'echo, then the client ends after its answer',
  'the server ends without reading; the client reads and ends on end',
  'the client writes, then ends without reading',
  'the server destroys at once',
  'the client destroys after its first answer',
  'the server ends after writing 4 KiB; the client destroys on end (Connection: close)',
  'the server writes 2 MiB and ends; the client reads it after a pause',
  'allowHalfOpen: the server answers after the client ended',
  'pause, then resume later',
  'async iteration until the end',
  'setTimeout fires again after activity',
  'the client ends at once, before any data',
  'the client destroys at once',
];

/** TLS 1.2 copies of the scenarios named in AGAIN, from `all`. */
export function tls12(all: Scenario[]): Scenario[] {
  return AGAIN.map((name) => {
    const sc = all.find((s) => s.name === name);
    if (!sc) throw new Error(`tls12.ts names a scenario that does not exist: ${name}`);
    return { ...sc, name: `TLS 1.2: ${name}`, options: { ...sc.options, maxVersion: 'TLSv1.2' } };
  });
}
