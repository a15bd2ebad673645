/**
 * `createTLSSocket()` and `upgradeTLSSocket()`: a `tls.TLSSocket` the user
 * drives for a while, built on the wire tap so that it can still be switched
 * to the kernel afterwards without losing or repeating a byte.
 * @packageDocumentation
 */
import type * as net from 'node:net';
import * as tls from 'node:tls';
import { KtlsError } from '../native/errors.js';
import type { KtlsSocket } from '../socket/socket.js';
import { carriable, startTracking } from './sequence.js';
import { deadlineOf, handOver, untilSecure, type KtlsHandoverOptions } from './switch.js';
import { WireTap, clientEarlyEnd } from './wire-tap.js';

interface OwnTlsSocket {
  tap: WireTap;
  raw: net.Socket;
  keylog: Buffer[];
  sessions: Buffer[];
  isServer: boolean;
  pushed: number;
}

const own = new WeakMap<tls.TLSSocket, OwnTlsSocket>();

/**
 * Builds a `tls.TLSSocket` over `socket` through the library's handshake layer,
 * for code that needs the TLSSocket itself (its events, reading and writing
 * during a first phase). Switch it to the kernel later with {@link upgradeTLSSocket}.
 * A TLSSocket made directly on a net.Socket cannot be switched: see the README.
 * Renegotiation is refused, as after the switch.
 */
export function createTLSSocket(socket: net.Socket, options: tls.ConnectionOptions & tls.TLSSocketOptions = {}): tls.TLSSocket {
  const tap = new WireTap(socket, true, options.isServer ? undefined : clientEarlyEnd(options));
  const t = options.isServer ? new tls.TLSSocket(tap, options) : tls.connect({ ...options, socket: tap });
  t.disableRenegotiation();
  const state: OwnTlsSocket = { tap, raw: socket, keylog: [], sessions: [], isServer: options.isServer === true, pushed: 0 };
  t.on('keylog', (line: Buffer) => state.keylog.push(line));
  // The latest tickets only: they are handed to the KtlsSocket at the switch.
  t.on('session', (s: Buffer) => state.sessions.splice(0, state.sessions.length - 1, s));
  // Count the plaintext node:tls hands to its reader, to know what the user has read at the switch.
  const push = t.push.bind(t);
  t.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
    if (chunk !== null && chunk !== undefined) state.pushed += (chunk as Buffer).length;
    return push(chunk, encoding);
  };
  // From the handshake on, only counts and unread plaintext are kept, however long this phase lasts.
  t.once('secure', () => {
    tap.markSecure();
    if (!carriable(t)) return void (tap.fed.abandon(), tap.sent.abandon());
    try {
      startTracking(t, state.keylog, tap, state.isServer);
      tap.fed.trimAs(() => state.pushed - t.readableLength);
    } catch {
      // the switch will report it (upgradeTLSSocket rejects with the reason)
    }
  });
  own.set(t, state);
  return t;
}

/**
 * Moves a TLSSocket made by {@link createTLSSocket} to the kernel once its
 * handshake is done. Plaintext the user already read is not delivered again;
 * what node:tls decrypted but nobody read comes first. Rejects if the
 * connection closes first, or (`ERR_TLS_HANDSHAKE_TIMEOUT`) if the handshake
 * and switch take longer than `options.handshakeTimeout` (default 120 s).
 */
export async function upgradeTLSSocket(t: tls.TLSSocket, options: KtlsHandoverOptions = {}): Promise<KtlsSocket> {
  const state = own.get(t);
  if (!state)
    throw new KtlsError('ERR_KTLS_TLS_SOCKET', 'only a TLSSocket made by ktls.createTLSSocket() can be upgraded: node:tls hides which records it has read');
  if (t.destroyed) throw new KtlsError('ERR_SOCKET_CLOSED', 'the TLSSocket is destroyed');
  const secure = (t as tls.TLSSocket & { _secureEstablished?: boolean })._secureEstablished === true;
  // A handshake still running is timed from the connection's start; a finished one from now.
  const deadline = deadlineOf(secure ? Date.now() : state.tap.since, options.handshakeTimeout);
  try {
    if (!secure) await untilSecure(t, 'secure', deadline);
    const consumed = (): number => state.pushed - t.readableLength;
    return await handOver(
      t,
      { tap: state.tap, raw: state.raw, keylog: state.keylog, isServer: state.isServer, sessions: state.sessions, consumed, deadline },
      options,
    );
  } catch (err) {
    t.destroy();
    state.raw.destroy();
    throw state.raw.errored ?? err;
  }
}
