/**
 * What a TLS session blob (OpenSSL's `i2d_SSL_SESSION`, as node:tls's
 * `getSession()` and `'session'` give it) says without OpenSSL: its ticket.
 * @packageDocumentation
 */

/** One DER element: its tag, and where its content starts and ends; null where the encoding is cut short or malformed. */
function element(der: Buffer, at: number): { tag: number; start: number; end: number } | null {
  if (at + 2 > der.length) return null;
  const tag = der[at];
  let len = der[at + 1];
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > der.length) return null;
    len = der.readUIntBE(start, n);
    start += n;
  }
  return start + len <= der.length ? { tag, start, end: start + len } : null;
}

/** `[10] EXPLICIT` in OpenSSL's SSL_SESSION_ASN1: the session ticket (`tlsext_tick`). */
const TICKET_TAG = 0xaa;
const OCTET_STRING = 0x04;
const SEQUENCE = 0x30;

/**
 * The session ticket inside a session blob, as `tls.TLSSocket#getTLSTicket()`
 * returns it (a copy); undefined where the session has none or the blob is not
 * one OpenSSL wrote.
 */
export function ticketOf(session: Buffer): Buffer | undefined {
  const outer = element(session, 0);
  if (!outer || outer.tag !== SEQUENCE) return undefined;
  for (let at = outer.start; at < outer.end;) {
    const e = element(session, at);
    if (!e || e.end > outer.end) return undefined;
    if (e.tag === TICKET_TAG) {
      const inner = element(session, e.start);
      return inner && inner.tag === OCTET_STRING && inner.end <= e.end ? Buffer.from(session.subarray(inner.start, inner.end)) : undefined;
    }
    at = e.end;
  }
  return undefined;
}
