/**
 * Node's http2 runs a session on a stream without a native handle by wrapping
 * it in its internal JS stream socket, which knows nothing of TLS or of the
 * TCP connection: `session.encrypted` would be false, `req.socket.remoteAddress`
 * undefined. {@link bindSession} makes the session and that wrapper answer as
 * on node:http2's TLSSocket, from the {@link KtlsSocket} underneath.
 * @packageDocumentation
 */
import type * as http2 from 'node:http2';
import { Writable } from 'node:stream';
import type { KtlsSocket } from '../socket/socket.js';

/** Connection and TLS facts read through `session.socket` / `req.socket` (getters, read each time). */
const FACTS = [
  'remoteAddress',
  'remotePort',
  'remoteFamily',
  'localAddress',
  'localPort',
  'localFamily',
  'alpnProtocol',
  'servername',
  'authorized',
  'authorizationError',
  'kernel',
  'kernelDirections',
] as const;

/** TLSSocket methods that only read the session (never the stream: those stay http2's). */
const READERS = [
  'address',
  'getPeerCertificate',
  'getPeerX509Certificate',
  'getCertificate',
  'getX509Certificate',
  'getProtocol',
  'getCipher',
  'getSession',
  'getTLSTicket',
  'isSessionReused',
  'getFinished',
  'getPeerFinished',
  'exportKeyingMaterial',
  'getEphemeralKeyInfo',
  'getSharedSigalgs',
] as const;

const SELF = Symbol('ktls.h2.self');

/**
 * The object `session.socket` stands for. The documented proxy binds the
 * methods it returns to that object, so a method set through it hands it back.
 */
function wrapperOf(session: http2.ServerHttp2Session): Record<PropertyKey, unknown> | null {
  const proxy = session.socket as unknown as Record<PropertyKey, unknown>;
  try {
    proxy[SELF] = function self(this: unknown) {
      return this;
    };
    const get = proxy[SELF];
    const wrapper = typeof get === 'function' ? (get as () => Record<PropertyKey, unknown>)() : null;
    if (wrapper) delete wrapper[SELF];
    return wrapper;
  } catch {
    return null; // a session already without its socket
  }
}

/**
 * Binds a new server session to the KtlsSocket it runs on: `session.encrypted`
 * and `session.alpnProtocol` as on a TLS socket, and `session.socket` (so
 * `req.socket`, `stream.session.socket`) answering the TCP and TLS questions
 * (`remoteAddress`, `encrypted`, `getPeerCertificate()`, `kernel`, …) from it.
 */
export function bindSession(session: http2.ServerHttp2Session, socket: KtlsSocket): void {
  // http2's stream wrapper corks around each batch of frames, which it then writes as one writev;
  // KtlsSocket#cork() would add TCP_CORK on and off (two setsockopt per batch, ~33 per 1 MiB
  // response in the h2 bench) that node:http2 over a TLSSocket never sets. Only the stream's cork here.
  const cork = function (this: Writable): void {
    Writable.prototype.cork.call(this);
  };
  const uncork = function (this: Writable): void {
    Writable.prototype.uncork.call(this);
  };
  Object.defineProperties(socket, { cork: { value: cork, configurable: true, writable: true }, uncork: { value: uncork, configurable: true, writable: true } });
  Object.defineProperty(session, 'encrypted', { value: true, configurable: true });
  Object.defineProperty(session, 'alpnProtocol', { get: () => socket.alpnProtocol, configurable: true });
  const wrapper = wrapperOf(session);
  // Not the wrapper around this socket (a Node whose http2 works otherwise): leave it as Node made it.
  if (wrapper === null || wrapper.stream !== socket) return;
  const props: PropertyDescriptorMap = { encrypted: { value: true, configurable: true } };
  const source = socket as unknown as Record<string, unknown>;
  for (const name of FACTS) props[name] = { get: () => source[name], configurable: true };
  for (const name of READERS) {
    const fn = source[name];
    if (typeof fn === 'function') props[name] = { value: (...args: unknown[]) => (fn as (...a: unknown[]) => unknown).apply(socket, args), configurable: true };
  }
  Object.defineProperties(wrapper, props);
}
