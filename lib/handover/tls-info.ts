/**
 * What node:tls knew about the session, snapshotted at the switch (its socket
 * is destroyed then). Values most connections share (the cipher, the shared
 * signature algorithms, our own certificate) are kept once per process, frozen,
 * rather than once per connection: an idle server holds thousands of these.
 * @packageDocumentation
 */
import type * as tls from 'node:tls';
import { unpooled } from '../record/unpooled.js';
import type { TlsInfo } from '../socket/base.js';

/** Distinct values kept per table: past it a value is kept per connection (a peer cannot grow the tables). */
const INTERN_LIMIT = 256;
const tables = new Map<string, Map<string, unknown>>();

/** The one frozen copy of `value` under `key` in `table`, or `value` itself frozen once the table is full. */
function intern<T extends object>(table: string, key: string, value: T): Readonly<T> {
  let t = tables.get(table);
  if (!t) tables.set(table, (t = new Map<string, unknown>()));
  const known = t.get(key) as Readonly<T> | undefined;
  if (known) return known;
  const frozen = Object.freeze(value);
  if (t.size < INTERN_LIMIT) t.set(key, frozen);
  return frozen;
}

/** Our own certificate's DER (for getCertificate()/getX509Certificate() after the switch), or undefined. */
export function localCertificate(t: tls.TLSSocket): Buffer | undefined {
  const cert = t.getCertificate();
  if (!cert || !('raw' in cert) || !Buffer.isBuffer(cert.raw)) return undefined;
  // A Buffer cannot be frozen: the table holds an unpooled copy (no pool slab pinned for the process's life).
  return intern('certificate', cert.raw.toString('base64'), { der: unpooled(cert.raw) }).der;
}

/** Snapshot of what node:tls exposes about the session. @internal */
export function tlsInfo(s: tls.TLSSocket, isServer: boolean): TlsInfo {
  const finished = s.getFinished();
  const peerFinished = s.getPeerFinished();
  const sigalgs = s.getSharedSigalgs();
  const cipher = s.getCipher();
  const eph = s.getEphemeralKeyInfo();
  return {
    alpnProtocol: s.alpnProtocol ?? false,
    servername: (s as tls.TLSSocket & { servername?: string | false | null }).servername,
    authorized: s.authorized,
    // Both Finished messages in one unpooled buffer: one allocation, and no pool slab pinned for the connection's life.
    ...finishedPair(finished, peerFinished),
    ephemeralKeyInfo: eph ? intern('ephemeral', JSON.stringify(eph), eph) : eph,
    sharedSigalgs: intern('sigalgs', sigalgs.join(':'), sigalgs) as string[],
    authorizationError: s.authorizationError ?? null,
    peerCertificate: s.getPeerCertificate(true),
    // A server has no use for its session blob after the switch; a connection would carry it for life.
    session: isServer ? undefined : s.getSession(),
    sessionReused: s.isSessionReused(),
    protocol: s.getProtocol(),
    cipher: intern('cipher', `${cipher.name}|${cipher.standardName}|${cipher.version}`, cipher),
  };
}

function finishedPair(a: Buffer | undefined, b: Buffer | undefined): Pick<TlsInfo, 'finished' | 'peerFinished'> {
  const both = unpooled(a ?? Buffer.alloc(0), b ?? Buffer.alloc(0));
  return { finished: a && both.subarray(0, a.length), peerFinished: b && both.subarray(a?.length ?? 0) };
}
