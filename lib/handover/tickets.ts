/**
 * TLS 1.3 session tickets that arrive after the switch (client side). A ticket
 * is only usable as OpenSSL's own session blob, whose resumption PSK derives
 * from a secret node:tls never logs; so the client keeps node:tls's TLSSocket
 * (its SSL state only: it carries no traffic) and hands it each
 * NewSessionTicket the KtlsSocket reads, resealed under the server→client keys
 * and sequence number OpenSSL expects (where it stopped reading at the switch:
 * KeyUpdates after it are the kernel's, never OpenSSL's). OpenSSL then emits
 * its own `'session'`, which becomes the KtlsSocket's `'session'` (and
 * `getSession()`/`getTLSTicket()`). Released at close.
 * @packageDocumentation
 */
import type * as tls from 'node:tls';
import { constants } from '../native/constants.js';
import { RecordSealer } from '../record/layer.js';
import type { KtlsSocket } from '../socket/socket.js';
import type { Derived } from './sequence.js';
import type { WireTap } from './wire-tap.js';

const NEW_SESSION_TICKET = 4;
/** A handshake message split across records is reassembled up to this size (OpenSSL's own ticket limit). */
const MAX_MESSAGE = 1 << 16;

/**
 * Relays post-switch NewSessionTickets from `sock` to the retained node:tls
 * socket `t`, and `t`'s `'session'` events back to `sock`. Takes ownership of
 * `t` (destroyed when `sock` closes). `d.rx`: the keys and sequence number of
 * the next record OpenSSL would read.
 * @internal
 */
export function relayTickets(t: tls.TLSSocket, tap: WireTap, d: Derived, sock: KtlsSocket): void {
  let sealer: RecordSealer | null = new RecordSealer(d.version, d.cipher, d.rx);
  let pending: Buffer = Buffer.alloc(0);
  // OpenSSL writes only to refuse what we pushed (an alert that never reaches the wire). That ends the
  // relay, not the connection: the read path answers a malformed ticket itself (decode_error).
  let feeding = false;
  let refused = false;
  const loud = tap.onLateWrite;
  tap.onLateWrite = (err) => (feeding ? void (refused = true) : loud?.(err));
  const onSession = (s: Buffer): void => void sock.emit('session', s);
  const onHandshake = (data: Buffer): void => {
    pending = pending.length ? Buffer.concat([pending, data]) : data;
    let off = 0;
    while (pending.length - off >= 4) {
      const len = pending.readUIntBE(off + 1, 3);
      if (len > MAX_MESSAGE) return release(); // the read path answers it; there is nothing to relay
      if (pending.length - off < 4 + len) break;
      const msg = pending.subarray(off, off + 4 + len);
      off += 4 + len;
      if (msg[0] === NEW_SESSION_TICKET && sealer) {
        feeding = true;
        try {
          for (const record of sealer.seal(constants().RECORD_HANDSHAKE, msg)) tap.push(record);
        } catch {
          refused = true; // sequence exhausted: no more tickets, the connection is unaffected
        } finally {
          feeding = false;
        }
        if (refused) return release();
      }
    }
    pending = off < pending.length ? Buffer.from(pending.subarray(off)) : Buffer.alloc(0);
  };
  const release = (): void => {
    sock.off('handshake', onHandshake);
    t.off('session', onSession);
    sealer?.wipe();
    sealer = null;
    tap.onLateWrite = loud;
    pending = Buffer.alloc(0);
    t.destroy();
  };
  // Sessions node:tls made before the switch were already handed over; from here each one is new.
  t.removeAllListeners('session');
  t.on('session', onSession);
  // node:tls has nothing to report after the switch; its errors (none expected) must not be thrown.
  t.on('error', () => undefined);
  sock.on('handshake', onHandshake);
  sock.once('close', release);
  // The tap stopped passing records on at the switch; from now on it carries only what we push.
  tap.resume();
}
