/**
 * What a TLS peer is owed when it breaks the record or handshake protocol
 * after the switch: the alert OpenSSL would send (RFC 8446 §6), then the
 * connection closed. Part of the handling group; the same cases run against
 * the userspace record layer in the package's own tests.
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import type * as net from 'node:net';
import type { TlsVersion } from '../../native/constants.js';
import { constants } from '../../native/constants.js';
import { ALERT, type KtlsAlertError } from '../../native/errors.js';
import type { RecordOpener, RecordSealer } from '../../record/layer.js';
import type { KtlsSocket } from '../../socket/socket.js';
import type { Check, CheckContext } from '../types.js';
import { errorOf, openAll, wirePair } from '../util.js';

/** One malformed input and the answer it must get. */
export interface AlertCase {
  id: string;
  title: string;
  versions?: readonly TlsVersion[];
  /** What the peer sends, sealed with its keys where it is a record at all. */
  input(sealer: RecordSealer, version: TlsVersion): Buffer[];
  /** The alert we must send (its RFC name). */
  alert: (version: TlsVersion) => keyof typeof ALERT;
  /** The socket's error code. */
  code: string;
}

const seal = (s: RecordSealer, type: number, data: number[] | Buffer): Buffer[] => s.seal(type, Buffer.isBuffer(data) ? data : Buffer.from(data));

/** The malformed inputs, with OpenSSL's answer to each. */
export const ALERT_CASES: readonly AlertCase[] = [
  {
    id: 'alert-bad-tag',
    title: 'a record that fails authentication gets bad_record_mac, then a close',
    input: (s) => {
      const bad = Buffer.concat(seal(s, constants().RECORD_APPLICATION_DATA, Buffer.from('forged')));
      bad[bad.length - 1] ^= 1;
      return [bad];
    },
    alert: () => 'bad_record_mac',
    code: 'ERR_KTLS_BAD_RECORD',
  },
  {
    id: 'alert-oversized',
    title: 'a record over 2^14+256 bytes gets record_overflow, then a close',
    input: () => [Buffer.from([23, 3, 3, 0x41, 0x01]), randomBytes(0x4101)],
    alert: () => 'record_overflow',
    code: 'ERR_KTLS_BAD_RECORD',
  },
  {
    id: 'alert-ccs',
    title: 'a ChangeCipherSpec after the TLS 1.3 handshake gets unexpected_message, then a close',
    versions: ['TLSv1.3'],
    input: () => [Buffer.from([20, 3, 3, 0, 1, 1])],
    alert: () => 'unexpected_message',
    code: 'ERR_KTLS_PROTOCOL',
  },
  {
    id: 'alert-bad-version',
    title: 'a record with a wrong legacy version gets decode_error (TLS 1.3) or protocol_version (TLS 1.2), then a close',
    input: () => [Buffer.from([23, 3, 1, 0, 40]), randomBytes(40)],
    alert: (v) => (v === 'TLSv1.3' ? 'decode_error' : 'protocol_version'),
    code: 'ERR_KTLS_BAD_RECORD',
  },
  {
    id: 'alert-empty-alert',
    title: 'an encrypted alert record with no body gets decode_error, then a close',
    input: (s) => seal(s, constants().RECORD_ALERT, []),
    alert: () => 'decode_error',
    code: 'ERR_KTLS_PROTOCOL',
  },
  {
    id: 'alert-keyupdate-length',
    title: 'a KeyUpdate of the wrong length gets decode_error, then a close',
    versions: ['TLSv1.3'],
    input: (s) => seal(s, constants().RECORD_HANDSHAKE, [24, 0, 0, 2, 0, 0]),
    alert: () => 'decode_error',
    code: 'ERR_KTLS_PROTOCOL',
  },
  {
    id: 'alert-keyupdate-value',
    title: 'a KeyUpdate with a request_update other than 0 or 1 gets illegal_parameter, then a close',
    versions: ['TLSv1.3'],
    input: (s) => seal(s, constants().RECORD_HANDSHAKE, [24, 0, 0, 1, 7]),
    alert: () => 'illegal_parameter',
    code: 'ERR_KTLS_PROTOCOL',
  },
  {
    id: 'alert-keyupdate-split',
    title: 'a KeyUpdate split across records (here with application data between) gets unexpected_message, then a close',
    versions: ['TLSv1.3'],
    input: (s) => {
      const k = constants();
      return [
        ...seal(s, k.RECORD_HANDSHAKE, [24, 0]),
        ...seal(s, k.RECORD_APPLICATION_DATA, Buffer.from('between')),
        ...seal(s, k.RECORD_HANDSHAKE, [0, 1, 0]),
      ];
    },
    alert: () => 'unexpected_message',
    code: 'ERR_KTLS_PROTOCOL',
  },
  {
    id: 'alert-unexpected-handshake',
    title: 'a handshake message not allowed after the handshake (a ServerHello) gets unexpected_message, then a close',
    input: (s) => seal(s, constants().RECORD_HANDSHAKE, [2, 0, 0, 0]),
    alert: () => 'unexpected_message',
    code: 'ERR_KTLS_PROTOCOL',
  },
];

/** Everything the peer receives until the connection closes (FIN or reset). */
function untilClosed(raw: net.Socket, signal: AbortSignal): Promise<{ bytes: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const done = (closed: boolean): void => resolve({ bytes: Buffer.concat(chunks), closed });
    raw.on('data', (c: Buffer) => chunks.push(c));
    raw.once('end', () => done(true));
    raw.once('error', () => done(true));
    signal.addEventListener('abort', () => done(false), { once: true });
  });
}

/** Sends a case's input to `sock` from `raw`; checks the socket's error, the alert the peer received and the close. */
export async function expectAlert(
  ctx: Pick<CheckContext, 'equal' | 'ok' | 'observe' | 'signal'>,
  c: AlertCase,
  version: TlsVersion,
  sock: KtlsSocket,
  raw: net.Socket,
  sealer: RecordSealer,
  opener: RecordOpener,
): Promise<void> {
  const k = constants();
  const err = errorOf(sock) as Promise<KtlsAlertError>;
  sock.resume();
  const received = untilClosed(raw, ctx.signal);
  raw.write(Buffer.concat(c.input(sealer, version)));
  const e = await err;
  ctx.equal(e.code, c.code, 'socket error code');
  ctx.equal(e.alert, c.alert(version), 'socket error alert');
  ctx.equal(e.alertSent, true, 'the alert went out');
  const { bytes, closed } = await received;
  opener.push(bytes);
  const recs = openAll(opener);
  ctx.observe('peerReceived', recs.map((r) => `${r.type}:${r.data.toString('hex')}`).join(' '));
  ctx.equal(recs.length, 1, 'the peer received exactly one record');
  ctx.equal(recs[0]?.type, k.RECORD_ALERT, 'an alert record');
  ctx.equal(recs[0]?.data[0], 2, 'fatal');
  ctx.equal(recs[0]?.data[1], ALERT[c.alert(version)], `description ${c.alert(version)}`);
  ctx.ok(closed, 'then the connection closed');
}

/** The cases as checks of the handling group (kernel records). */
export const alertChecks: Check[] = [
  ...ALERT_CASES.map((c): Check => ({
    id: c.id,
    title: c.title,
    ...(c.versions ? { versions: c.versions } : {}),
    async run(ctx) {
      const { sock, raw, sealer, opener } = await wirePair(ctx);
      await expectAlert(ctx, c, ctx.version, sock, raw, sealer, opener);
    },
  })),
  {
    id: 'user-canceled',
    title: 'a TLS 1.3 user_canceled alert is a closure alert: data after it is delivered and close_notify ends the stream cleanly',
    versions: ['TLSv1.3'],
    async run(ctx) {
      const k = constants();
      const { sock, raw, sealer } = await wirePair(ctx);
      const chunks: Buffer[] = [];
      sock.on('data', (c: Buffer) => chunks.push(c));
      const ended = new Promise<string>(
        (resolve) => (sock.once('end', () => resolve('end')), sock.once('error', (e: Error & { code?: string }) => resolve(e.code ?? e.message))),
      );
      raw.write(
        Buffer.concat([
          ...seal(sealer, k.RECORD_ALERT, [1, 90]),
          ...seal(sealer, k.RECORD_APPLICATION_DATA, Buffer.from('still here')),
          ...seal(sealer, k.RECORD_ALERT, [1, 0]),
        ]),
      );
      ctx.equal(await ended, 'end', 'the stream ends without an error');
      ctx.equal(Buffer.concat(chunks).toString(), 'still here', 'data after user_canceled');
    },
  },
  {
    id: 'no-renegotiation',
    title: 'a TLS 1.2 HelloRequest is refused with a no_renegotiation warning and the connection goes on',
    versions: ['TLSv1.2'],
    async run(ctx) {
      const k = constants();
      const { sock, raw, sealer, opener } = await wirePair(ctx);
      const got = new Promise<Buffer>((resolve) => sock.once('data', resolve));
      raw.write(Buffer.concat([...seal(sealer, k.RECORD_HANDSHAKE, [0, 0, 0, 0]), ...seal(sealer, k.RECORD_APPLICATION_DATA, Buffer.from('after'))]));
      ctx.equal((await got).toString(), 'after', 'data after the HelloRequest');
      const warning = await new Promise<Buffer>((resolve) => raw.once('data', resolve));
      opener.push(warning);
      const recs = openAll(opener);
      ctx.equal(recs.map((r) => `${r.type}:${r.data.toString('hex')}`).join(' '), `${k.RECORD_ALERT}:0164`, 'a warning no_renegotiation alert');
      ctx.equal(sock.destroyed, false, 'the socket is still open');
    },
  },
];
