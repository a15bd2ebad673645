/**
 * Hand-over from a `node:tls` handshake to the kernel. node:tls talks to the
 * network through a {@link WireTap} that frames every record both ways, so at
 * the switch we know exactly which records Node consumed and produced, and the
 * sequence numbers come from trial-decrypting those records with the
 * application keys (an AEAD tag is a definitive test), never from assumptions.
 * @packageDocumentation
 */
import { Duplex } from 'node:stream';
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import { constants, type CipherName, type TlsVersion } from './constants.js';
import { suiteOf, tls12Keys, tls13Keys, type SuiteHash } from './derive.js';
import { KtlsError } from './errors.js';
import { RecordOpener } from './record.js';
import { Secrets } from './secrets.js';

const HEADER = 5;

/** Splits complete TLS records off the front of `buf`. */
function frame(buf: Buffer): { records: Buffer[]; rest: Buffer } {
  const records: Buffer[] = [];
  let off = 0;
  while (buf.length - off >= HEADER) {
    const len = HEADER + buf.readUInt16BE(off + 3);
    if (buf.length - off < len) break;
    records.push(buf.subarray(off, off + len));
    off += len;
  }
  return { records, rest: buf.subarray(off) };
}

/**
 * The stream node:tls reads and writes instead of the socket. Incoming bytes
 * are passed on whole records at a time, so node:tls never holds a partial
 * record; `hold()` stops passing them on.
 * @internal
 */
export class WireTap extends Duplex {
  /** Complete records passed to node:tls, in order. */
  readonly fed: Buffer[] = [];
  /** Complete records node:tls wrote, in order. */
  readonly sent: Buffer[] = [];
  /** Bytes node:tls wrote after the switch (must stay 0). */
  lateWrites = 0;
  #raw: net.Socket;
  #in: Buffer = Buffer.alloc(0);
  #out: Buffer = Buffer.alloc(0);
  #held = false;
  #switched = false;
  #coalesce: boolean;
  #corked = false;
  #onData = (chunk: Buffer): void => {
    this.#in = this.#in.length ? Buffer.concat([this.#in, chunk]) : chunk;
    this.#feed();
  };
  #onEnd = (): void => {
    if (!this.#held) this.push(null);
  };
  #onError = (err: Error): void => {
    if (!this.#held) this.destroy(err);
  };

  /**
   * `coalesce` (default): each flight node:tls writes in one turn goes out in one
   * write, as few segments as the MSS allows. false: one write per record with
   * Nagle off, a segment per record (a baseline for tests and benchmarks).
   */
  constructor(raw: net.Socket, coalesce = true) {
    super({ allowHalfOpen: true });
    this.#raw = raw;
    this.#coalesce = coalesce;
    raw.on('data', this.#onData).on('end', this.#onEnd).on('error', this.#onError);
  }

  #feed(): void {
    if (this.#held) return;
    const { records, rest } = frame(this.#in);
    this.#in = Buffer.from(rest);
    for (const r of records) {
      this.fed.push(r);
      this.push(r);
    }
  }

  /**
   * Stops passing bytes to node:tls and lets go of the socket's events. Returns
   * the wire bytes node:tls has not consumed: records still waiting in this
   * stream's buffer (node:tls applies backpressure) and any partial record.
   */
  hold(): Buffer {
    this.#held = true;
    this.#uncork();
    if (!this.#coalesce && this.#out.length > 0) this.#raw.write(this.#out);
    this.#raw.pause();
    this.#raw.off('data', this.#onData).off('end', this.#onEnd).off('error', this.#onError);
    const back: Buffer[] = [];
    for (let left = this.readableLength; left > 0; ) {
      const r = this.fed.pop();
      if (!r) throw new KtlsError('ERR_KTLS_HANDOVER', 'unconsumed bytes do not match the records fed to node:tls');
      back.unshift(r);
      left -= r.length;
    }
    // Whatever is buffered now must never reach node:tls: it is ours.
    this.removeAllListeners('data');
    this.pause();
    return Buffer.concat([...back, this.#in]);
  }

  #uncork(): void {
    if (!this.#corked) return;
    this.#corked = false;
    this.#raw.uncork();
  }

  /** After this, anything node:tls writes is counted, not sent. */
  markSwitched(): void {
    this.#switched = true;
  }

  override _read(): void {
    // Bytes are pushed as they arrive; node:tls applies no backpressure during a handshake.
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.#switched) {
      this.lateWrites += chunk.length;
      cb();
      return;
    }
    this.#out = this.#out.length ? Buffer.concat([this.#out, chunk]) : chunk;
    const { records, rest } = frame(this.#out);
    this.#out = Buffer.from(rest);
    this.sent.push(...records.map((r) => Buffer.from(r)));
    if (!this.#coalesce) {
      // One write per record, no Nagle: the record-per-segment baseline to measure against.
      this.#raw.setNoDelay(true);
      for (const r of records) this.#raw.write(r);
      cb();
      return;
    }
    // node:tls hands over a flight in one or several writes in one turn; corked,
    // node:net sends them as one writev, so the flight fills segments.
    if (!this.#corked) {
      this.#corked = true;
      this.#raw.cork();
      setImmediate(() => this.#uncork());
    }
    // Acknowledge at once: node:net queues it, and node:tls must never keep output back from us.
    this.#raw.write(chunk);
    cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    // node:tls never ends the connection for us: the socket lives on under the kernel.
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    cb(err);
  }
}

/** TCP_INFO counters of a connection at the switch to kTLS. */
export interface HandshakeTcp {
  /** Segments sent (SYN/SYN-ACK and pure ACKs included). */
  segmentsOut: number;
  /** Segments received. */
  segmentsIn: number;
  /** Segments sent that carried data: the handshake flights. */
  dataSegmentsOut: number;
}

/** What node:tls knew about the session, kept for the KtlsSocket. */
export interface TlsInfo {
  /** TCP segments each way up to the switch (from `TCP_INFO`), when the kernel reports them. */
  handshakeTcp?: HandshakeTcp;
  /** Negotiated ALPN protocol, or false. */
  alpnProtocol: string | false | null;
  /** SNI server name (server side: what the client asked for). */
  servername: string | false | null | undefined;
  /** Whether the peer certificate was verified. */
  authorized: boolean;
  /** Why it was not, if it was not. */
  authorizationError: Error | null;
  /** `getPeerCertificate(true)` at the switch. */
  peerCertificate: tls.DetailedPeerCertificate | Record<string, never>;
  /** `getSession()` at the switch (client side). */
  session: Buffer | undefined;
  /** `isSessionReused()`. */
  sessionReused: boolean;
  /** `getProtocol()`. */
  protocol: string | null;
  /** `getCipher()`. */
  cipher: tls.CipherNameAndProtocol;
}

/** Parses NSS key-log lines into `label -> secret` for this connection. */
export function parseKeylog(lines: Buffer[]): Map<string, { random: Buffer; secret: Buffer }> {
  const out = new Map<string, { random: Buffer; secret: Buffer }>();
  for (const line of lines) {
    const [label, random, secret] = line.toString('latin1').trim().split(' ');
    if (label && random && secret) out.set(label, { random: Buffer.from(random, 'hex'), secret: Buffer.from(secret, 'hex') });
  }
  return out;
}

/** The server random: bytes 6..38 of the ServerHello body in the first handshake record. */
function serverRandom(records: Buffer[]): Buffer {
  const hs = constants().RECORD_HANDSHAKE;
  for (const r of records) {
    if (r[0] === hs && r[HEADER] === 2 /* server_hello */) return Buffer.from(r.subarray(HEADER + 4 + 2, HEADER + 4 + 2 + 32));
  }
  throw new KtlsError('ERR_KTLS_HANDOVER', 'no ServerHello seen on the wire');
}

/**
 * Finds the run of records protected with `keys`: the first record that opens
 * at sequence 0 starts it, and every record after it must open in order.
 * Returns the index of its first record (records.length if none) and its length.
 */
function applicationRun(version: TlsVersion, cipher: CipherName, keys: { key: Buffer; iv: Buffer }, records: Buffer[], direction: string): { first: number; count: bigint } {
  const ccs = constants().RECORD_CHANGE_CIPHER_SPEC;
  let opener: RecordOpener | null = null;
  let first = records.length;
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    if (r[0] === ccs) continue; // plaintext, no sequence number
    if (opener === null) {
      const trial = new RecordOpener(version, cipher, { key: keys.key, iv: keys.iv, seq: 0n });
      trial.push(r);
      try {
        trial.next();
        opener = trial;
        first = i;
      } catch {
        trial.wipe(); // a handshake-key record: not ours yet
      }
      continue;
    }
    opener.push(r);
    try {
      opener.next();
    } catch (err) {
      throw new KtlsError('ERR_KTLS_HANDOVER', `a ${direction} record after the first application record does not open in order`, { cause: err });
    }
  }
  const count = opener?.seq ?? 0n;
  opener?.wipe();
  return { first, count };
}

/** Secrets for the kernel, and the received records to open again after the switch. @internal */
export interface Derived {
  secrets: Secrets;
  /** TLS 1.3: the application traffic secrets, kept for KeyUpdate. */
  trafficSecrets?: { tx: Buffer; rx: Buffer };
  /**
   * Application records node:tls was fed after the handshake. node:tls may
   * still hold their plaintext inside OpenSSL, and nobody has read it, so they
   * are opened again, by us, and delivered first.
   */
  replay: Buffer[];
}

/**
 * Derives the session's secrets for the kernel from what node:tls logged and
 * what crossed the wire. `isServer` picks which side's keys are ours.
 * @internal
 */
export function deriveSecrets(tlsSocket: tls.TLSSocket, keylog: Buffer[], tap: WireTap, isServer: boolean): Derived {
  const protocol = tlsSocket.getProtocol();
  if (protocol !== 'TLSv1.2' && protocol !== 'TLSv1.3') throw new KtlsError('ERR_KTLS_UNSUPPORTED', `kernel TLS needs TLS 1.2 or 1.3; negotiated ${String(protocol)}`);
  const standard = tlsSocket.getCipher().standardName;
  const suite = suiteOf(standard);
  if (!suite) throw new KtlsError('ERR_KTLS_UNSUPPORTED', `kernel TLS has no cipher for ${standard}`);
  const log = parseKeylog(keylog);
  let client: { key: Buffer; iv: Buffer };
  let server: { key: Buffer; iv: Buffer };
  if (protocol === 'TLSv1.3') {
    const c = log.get('CLIENT_TRAFFIC_SECRET_0');
    const s = log.get('SERVER_TRAFFIC_SECRET_0');
    if (!c || !s) throw new KtlsError('ERR_KTLS_HANDOVER', 'node:tls did not log the TLS 1.3 traffic secrets');
    client = tls13Keys(suite.cipher, suite.hash as SuiteHash, c.secret);
    server = tls13Keys(suite.cipher, suite.hash, s.secret);
  } else {
    const m = log.get('CLIENT_RANDOM');
    if (!m) throw new KtlsError('ERR_KTLS_HANDOVER', 'node:tls did not log the TLS 1.2 master secret');
    const sr = serverRandom(isServer ? tap.sent : tap.fed);
    ({ client, server } = tls12Keys(suite.cipher, suite.hash, m.secret, m.random, sr));
  }
  const ours = isServer ? server : client;
  const theirs = isServer ? client : server;
  const txSeq = applicationRun(protocol, suite.cipher, ours, tap.sent, 'sent').count;
  const run = applicationRun(protocol, suite.cipher, theirs, tap.fed, 'received');
  // TLS 1.2's Finished is the first record under the new keys; it belongs to the handshake.
  const skip = protocol === 'TLSv1.2' && run.first < tap.fed.length ? 1 : 0;
  const replay = tap.fed.slice(run.first + skip);
  const rxSeq = BigInt(skip);
  const tx = { key: ours.key, iv: Buffer.from(ours.iv), seq: txSeq };
  // TLS 1.2 GCM/CCM: the explicit nonce we send starts at the sequence number, as OpenSSL's does.
  if (protocol === 'TLSv1.2' && suite.cipher !== 'chacha20-poly1305') tx.iv.writeBigUInt64BE(txSeq, 4);
  const secrets = new Secrets({ version: protocol, cipher: suite.cipher, tx, rx: { key: theirs.key, iv: theirs.iv, seq: rxSeq } });
  if (protocol !== 'TLSv1.3') return { secrets, replay };
  const [cs, ss] = [log.get('CLIENT_TRAFFIC_SECRET_0')!.secret, log.get('SERVER_TRAFFIC_SECRET_0')!.secret];
  return { secrets, replay, trafficSecrets: { tx: Buffer.from(isServer ? ss : cs), rx: Buffer.from(isServer ? cs : ss) } };
}

/** Snapshot of what node:tls exposes about the session. @internal */
export function tlsInfo(s: tls.TLSSocket): TlsInfo {
  return {
    alpnProtocol: s.alpnProtocol ?? false,
    servername: (s as tls.TLSSocket & { servername?: string | false | null }).servername,
    authorized: s.authorized,
    authorizationError: s.authorizationError ?? null,
    peerCertificate: s.getPeerCertificate(true) as tls.DetailedPeerCertificate,
    session: s.getSession(),
    sessionReused: s.isSessionReused(),
    protocol: s.getProtocol(),
    cipher: s.getCipher(),
  };
}
