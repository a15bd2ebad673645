/**
 * Handshake messages after the handshake (RFC 8446 §4.6, RFC 5246 §7.4.1.1):
 * reassembled across records and checked before the socket acts on them.
 * What a peer may send depends on version and role; anything else is answered
 * with the alert OpenSSL would send.
 * @packageDocumentation
 */
import type { TlsVersion } from '../native/constants.js';
import { ALERT, type AlertErrorCode } from '../native/errors.js';

const EMPTY = Buffer.alloc(0);

const HELLO_REQUEST = 0;
const CLIENT_HELLO = 1;
const NEW_SESSION_TICKET = 4;
const CERTIFICATE_REQUEST = 13;
const KEY_UPDATE = 24;
/** Largest post-handshake message we reassemble (a ticket is a few hundred bytes; OpenSSL allows tickets up to 64 KiB). */
const MAX_MESSAGE = 1 << 16;

/** What to do with a complete message. */
export type PostHandshake =
  | { kind: 'key-update'; requested: boolean }
  | { kind: 'ticket' }
  /** TLS 1.2 renegotiation request (HelloRequest, or a client's ClientHello): refuse with a no_renegotiation warning. */
  | { kind: 'renegotiation' }
  /** `code`: the error's code where it is more specific than `ERR_KTLS_PROTOCOL`. */
  | { kind: 'fatal'; alert: number; reason: string; code?: AlertErrorCode };

/** Reassembles and classifies one direction's post-handshake messages. */
export class HandshakeReader {
  #version: TlsVersion;
  #role: 'client' | 'server' | undefined;
  #pending: Buffer = EMPTY;

  /** `role`: ours (the peer has the other); undefined after a bare `upgrade()`, which allows what either peer may send. */
  constructor(version: TlsVersion, role: 'client' | 'server' | undefined) {
    this.#version = version;
    this.#role = role;
  }

  /** A handshake message is split across records and not yet complete. */
  get partial(): boolean {
    return this.#pending.length > 0;
  }

  /** The messages a handshake record completes, in order. Stops at the first fatal one. */
  push(data: Buffer): PostHandshake[] {
    const buf = this.#pending.length > 0 ? Buffer.concat([this.#pending, data]) : data;
    const out: PostHandshake[] = [];
    let off = 0;
    while (buf.length - off >= 4) {
      const type = buf[off];
      const len = buf.readUIntBE(off + 1, 3);
      if (len > MAX_MESSAGE) return [...out, fatal(ALERT.decode_error, `handshake message of ${len} bytes`)];
      if (buf.length - off < 4 + len) break;
      const body = buf.subarray(off + 4, off + 4 + len);
      off += 4 + len;
      const msg = this.#classify(type, body);
      out.push(msg);
      if (msg.kind === 'fatal') return out;
      // RFC 8446 §5.1: a message before a key change must end its record.
      if (msg.kind === 'key-update' && off < buf.length)
        return [...out.slice(0, -1), fatal(ALERT.unexpected_message, 'a KeyUpdate was not the last message of its record')];
    }
    this.#pending = off < buf.length ? Buffer.from(buf.subarray(off)) : EMPTY; // a partial message only: usually nothing
    // A KeyUpdate is never worth fragmenting, and kTLS (6.14+) stops at the first
    // fragment waiting for new keys: the rest could never be read.
    if (this.#version === 'TLSv1.3' && this.#pending[0] === KEY_UPDATE) return [...out, fatal(ALERT.unexpected_message, 'a KeyUpdate split across records')];
    return out;
  }

  #classify(type: number, body: Buffer): PostHandshake {
    if (this.#version === 'TLSv1.3') {
      if (type === KEY_UPDATE) {
        if (body.length !== 1) return fatal(ALERT.decode_error, `KeyUpdate of ${body.length} bytes`);
        if (body[0] > 1) return fatal(ALERT.illegal_parameter, `KeyUpdate request_update ${body[0]}`);
        return { kind: 'key-update', requested: body[0] === 1 };
      }
      // After a handshake of ours (role known) the ticket is OpenSSL's to parse (see handover/tickets.ts): its malformed ones get decode_error here.
      if (type === NEW_SESSION_TICKET && this.#role !== 'server')
        return this.#role === undefined || wellFormedTicket(body)
          ? { kind: 'ticket' }
          : fatal(ALERT.decode_error, `a malformed NewSessionTicket of ${body.length} bytes`);
      if (type === CERTIFICATE_REQUEST && this.#role !== 'server')
        return fatal(
          ALERT.unexpected_message,
          'post-handshake client authentication (CertificateRequest) was not offered: kernel TLS carries records only',
          'ERR_KTLS_POST_HANDSHAKE_AUTH',
        );
      return fatal(ALERT.unexpected_message, `handshake message type ${type} after the handshake`);
    }
    if ((type === HELLO_REQUEST && this.#role !== 'server' && body.length === 0) || (type === CLIENT_HELLO && this.#role !== 'client'))
      return { kind: 'renegotiation' };
    return fatal(ALERT.unexpected_message, `handshake message type ${type} after the handshake`);
  }
}

/**
 * RFC 8446 §4.6.1: ticket_lifetime, ticket_age_add, ticket_nonce<0..255>,
 * ticket<1..2^16-1>, extensions<0..2^16-2>, and nothing after them (OpenSSL
 * answers anything else with decode_error).
 */
function wellFormedTicket(body: Buffer): boolean {
  let off = 8;
  if (body.length < off + 1) return false;
  off += 1 + body[off];
  if (body.length < off + 2) return false;
  const ticket = body.readUInt16BE(off);
  if (ticket === 0) return false;
  off += 2 + ticket;
  if (body.length < off + 2) return false;
  return off + 2 + body.readUInt16BE(off) === body.length;
}

/** The request_update byte of a well-formed KeyUpdate that ends this handshake record, or null (TLS 1.3). */
export function trailingKeyUpdate(data: Buffer): number | null {
  for (let off = 0; data.length - off >= 4;) {
    const len = data.readUIntBE(off + 1, 3);
    if (data[off] === KEY_UPDATE && len === 1 && off + 5 === data.length && data[off + 4] <= 1) return data[off + 4];
    off += 4 + len;
  }
  return null;
}

function fatal(alert: number, reason: string, code?: AlertErrorCode): PostHandshake {
  return code ? { kind: 'fatal', alert, reason, code } : { kind: 'fatal', alert, reason };
}
