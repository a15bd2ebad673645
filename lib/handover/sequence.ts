/**
 * Sequence recovery for the switch from node:tls: each direction's records are
 * followed as they cross the wire tap, opened with the application keys (an
 * AEAD tag is a definitive test of where the application records start), and
 * counted. TLS 1.3 KeyUpdates are followed, so the kernel gets the keys and
 * sequence numbers in force at the switch, whatever node:tls did before it.
 * Only what the switch needs is kept: handshake records until the keys are
 * known, then received plaintext nobody has read yet.
 * @packageDocumentation
 */
import type * as tls from 'node:tls';
import { constants, type CipherName, type TlsVersion } from '../native/constants.js';
import { nextTrafficSecret, suiteOf, tls12Keys, tls13Keys, type SuiteHash } from '../record/derive.js';
import { KtlsError } from '../native/errors.js';
import { tls12Exporter, tls13Exporter, type KeyingExporter } from '../record/exporter.js';
import { keyUpdateMessage } from '../record/key-schedule.js';
import { RecordOpener, RecordSealer, type OpenedRecord } from '../record/layer.js';
import { Secrets } from '../record/secrets.js';
import { unpooled, zero } from '../record/unpooled.js';

const HEADER = 5;
const HANDSHAKE_KEY_UPDATE = 24;
/** Records held before the keys are known: a handshake, never a stream. */
const PENDING_LIMIT = 1 << 20;

/** Keys of one direction as a tracker follows them. */
interface TrackKeys {
  version: TlsVersion;
  cipher: CipherName;
  hash: SuiteHash;
  key: Buffer;
  iv: Buffer;
  /** TLS 1.3: the traffic secret the key and iv came from (KeyUpdate derives the next from it). */
  secret?: Buffer;
}

/** Orders KeyUpdates across both directions: did we answer the peer's last request? */
export interface KeyUpdateClock {
  tick: number;
}

/** One direction's records, followed from the first application record on. @internal */
export class RecordTrack {
  /** Plaintext of received application (and alert) records, for delivery after the switch. */
  readonly replay: OpenedRecord[] = [];
  /** Application bytes already dropped from the front of {@link replay} because the user read them through node:tls. */
  dropped = 0;
  /** When this direction last carried a KeyUpdate (clock tick), and whether it requested one back. */
  lastKeyUpdate = { tick: 0, requested: false };
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #keys: TrackKeys | null = null;
  #opener: RecordOpener | null = null;
  #keep: boolean;
  #clock: KeyUpdateClock;
  #handshake: Buffer = Buffer.alloc(0);
  // 'abandoned' rather than an Error made in advance: an Error's stack would keep the whole hand-over reachable for the connection's life.
  #error: KtlsError | 'abandoned' | null = null;
  #consumed: (() => number) | null = null;

  /** `keep`: hold received plaintext for replay (the direction node:tls reads). */
  constructor(keep: boolean, clock: KeyUpdateClock) {
    this.#keep = keep;
    this.#clock = clock;
  }

  /** A whole record that crossed the tap in this direction. */
  add(record: Buffer): void {
    if (this.#error) return;
    if (this.#keys) return this.#track(record);
    this.#pendingBytes += record.length;
    if (this.#pendingBytes > PENDING_LIMIT) return this.#fail('more handshake records than a handshake carries');
    this.#pending.push(Buffer.from(record));
  }

  /** The records held before the keys were known. */
  get pending(): readonly Buffer[] {
    return this.#pending;
  }

  get started(): boolean {
    return this.#keys !== null;
  }

  /** Starts following with the application keys: held records first. */
  start(keys: TrackKeys): void {
    if (this.#keys) return;
    this.#keys = keys;
    const held = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    for (const r of held) this.#track(r);
  }

  /** Stops following and forgets everything (the connection will not switch). */
  abandon(): void {
    this.#opener?.wipe();
    this.#opener = null;
    this.#keys?.key.fill(0);
    this.#keys?.secret?.fill(0);
    this.#keys = null;
    this.#pending = [];
    this.replay.length = 0;
    this.#error ??= 'abandoned';
  }

  /** Keeps replay bounded while node:tls is still in use: `consumed()` is the plaintext the user has read through it. */
  trimAs(consumed: () => number): void {
    this.#consumed = consumed;
  }

  /** Drops replay plaintext the user has read through node:tls (`consumed` bytes in all). */
  trim(consumed: number): void {
    while (this.replay.length > 0 && this.replay[0].type === constants().RECORD_APPLICATION_DATA && this.dropped + this.replay[0].data.length <= consumed) {
      this.dropped += this.replay.shift()!.data.length;
    }
  }

  /** Keys and next sequence number in force now; throws if the records could not be followed. */
  current(): { key: Buffer; iv: Buffer; seq: bigint; secret?: Buffer } {
    if (this.#error === 'abandoned') throw new KtlsError('ERR_KTLS_HANDOVER', 'record tracking was abandoned');
    if (this.#error) throw this.#error;
    const k = this.#keys;
    if (!k) throw new KtlsError('ERR_KTLS_HANDOVER', 'the application keys are not known');
    return { key: unpooled(k.key), iv: unpooled(k.iv), seq: this.#opener?.seq ?? 0n, ...(k.secret ? { secret: unpooled(k.secret) } : {}) };
  }

  wipe(): void {
    this.abandon();
  }

  #fail(message: string, cause?: unknown): void {
    this.#error = new KtlsError('ERR_KTLS_HANDOVER', message, { cause });
    this.#opener?.wipe();
    this.#pending = [];
    this.replay.length = 0;
  }

  #track(record: Buffer): void {
    const k = constants();
    const keys = this.#keys!;
    if (record[0] === k.RECORD_CHANGE_CIPHER_SPEC) return; // plaintext, no sequence number
    if (!this.#opener) {
      const trial = new RecordOpener(keys.version, keys.cipher, { key: keys.key, iv: keys.iv, seq: 0n });
      trial.push(record);
      let rec: OpenedRecord | null;
      try {
        rec = trial.next();
      } catch {
        trial.wipe(); // a handshake-key record: the application run has not started
        return;
      }
      this.#opener = trial;
      if (rec) this.#opened(rec);
      return;
    }
    this.#opener.push(record);
    try {
      const rec = this.#opener.next();
      if (rec) this.#opened(rec);
    } catch (err) {
      this.#fail('a record after the first application record does not open in order', err);
    }
  }

  #opened(rec: OpenedRecord): void {
    const k = constants();
    if (rec.type !== k.RECORD_HANDSHAKE) {
      if (!this.#keep) return;
      this.replay.push({ type: rec.type, data: Buffer.from(rec.data) });
      if (this.#consumed) this.trim(this.#consumed());
      return;
    }
    // Post-handshake messages node:tls consumed (tickets, KeyUpdate) are its to act on; a
    // KeyUpdate also moves this direction to the next keys for the records after it.
    if (this.#keys!.version !== 'TLSv1.3') return;
    this.#handshake = this.#handshake.length ? Buffer.concat([this.#handshake, rec.data]) : rec.data;
    let update: number | null = null;
    while (this.#handshake.length >= 4) {
      const len = this.#handshake.readUIntBE(1, 3);
      if (this.#handshake.length < 4 + len) break;
      if (this.#handshake[0] === HANDSHAKE_KEY_UPDATE && len === 1) update = this.#handshake[4]!;
      this.#handshake = this.#handshake.subarray(4 + len);
    }
    if (update !== null) this.#rekey(update === 1);
  }

  #rekey(requested: boolean): void {
    const keys = this.#keys!;
    if (!keys.secret) return this.#fail('a KeyUpdate crossed the wire but the traffic secret is unknown');
    const next = nextTrafficSecret(keys.hash, keys.secret);
    const derived = tls13Keys(keys.cipher, keys.hash, next);
    keys.secret.fill(0);
    keys.key.fill(0);
    this.#keys = { ...keys, key: derived.key, iv: derived.iv, secret: next };
    this.#opener!.rekey({ key: derived.key, iv: derived.iv, seq: 0n });
    this.lastKeyUpdate = { tick: ++this.#clock.tick, requested };
  }
}

/** What the wire tap followed in each direction. @internal */
export interface Tracks {
  /** Records node:tls consumed (received). */
  readonly fed: RecordTrack;
  /** Records node:tls wrote (sent). */
  readonly sent: RecordTrack;
  /** The session's keying material exporter, from the logged secrets (set by {@link startTracking}). */
  exporter?: KeyingExporter;
}

/**
 * Parses NSS key-log lines into `label -> secret` for this connection. The hex
 * is decoded byte by byte into unpooled Buffers: a secret never becomes a
 * JavaScript string (which nothing could zero) or a pooled Buffer.
 */
export function parseKeylog(lines: Buffer[]): Map<string, { random: Buffer; secret: Buffer }> {
  const out = new Map<string, { random: Buffer; secret: Buffer }>();
  for (const line of lines) {
    const sp1 = line.indexOf(0x20);
    const sp2 = sp1 < 0 ? -1 : line.indexOf(0x20, sp1 + 1);
    if (sp1 <= 0 || sp2 < 0) continue;
    let end = line.length;
    while (end > sp2 + 1 && (line[end - 1] === 0x0a || line[end - 1] === 0x0d || line[end - 1] === 0x20)) end--;
    const random = hexBytes(line, sp1 + 1, sp2);
    const secret = hexBytes(line, sp2 + 1, end);
    if (random && secret) out.set(line.toString('latin1', 0, sp1), { random, secret });
  }
  return out;
}

const nibble = (c: number): number => (c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1);

/** `line[start, end)` as hex, into an unpooled Buffer; null if it is not hex. */
function hexBytes(line: Buffer, start: number, end: number): Buffer | null {
  if (end <= start || (end - start) % 2 !== 0) return null;
  const out = Buffer.allocUnsafeSlow((end - start) / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = nibble(line[start + 2 * i]);
    const lo = nibble(line[start + 2 * i + 1]);
    if (hi < 0 || lo < 0) return (out.fill(0), null);
    out[i] = (hi << 4) | lo;
  }
  return out;
}

/** The server random: bytes 6..38 of the ServerHello body in the first handshake record. */
function serverRandom(records: readonly Buffer[]): Buffer {
  const hs = constants().RECORD_HANDSHAKE;
  for (const r of records) {
    if (r[0] === hs && r[HEADER] === 2 /* server_hello */) return Buffer.from(r.subarray(HEADER + 4 + 2, HEADER + 4 + 2 + 32));
  }
  throw new KtlsError('ERR_KTLS_HANDOVER', 'no ServerHello seen on the wire');
}

/**
 * The negotiated version and kernel cipher of a finished node:tls handshake, or
 * null where neither kTLS nor the userspace record layer can carry it (e.g. a
 * TLS 1.2 CBC suite): such a connection stays on node:tls.
 */
export function carriable(t: tls.TLSSocket): { version: TlsVersion; cipher: CipherName; hash: SuiteHash } | null {
  const version = t.getProtocol();
  if (version !== 'TLSv1.2' && version !== 'TLSv1.3') return null;
  const suite = suiteOf(t.getCipher().standardName);
  return suite ? { version, ...suite } : null;
}

/**
 * Starts following both directions once node:tls has the application keys
 * (at 'secure'); a no-op if already started. `isServer` picks which side's keys are ours.
 */
export function startTracking(t: tls.TLSSocket, keylog: Buffer[], tracks: Tracks, isServer: boolean): void {
  if (tracks.fed.started && tracks.sent.started) return;
  const suite = carriable(t);
  if (!suite) throw new KtlsError('ERR_KTLS_UNSUPPORTED', `kernel TLS cannot carry ${String(t.getProtocol())} ${t.getCipher().standardName}`);
  const log = parseKeylog(keylog);
  // Parsed: node:tls's lines are dropped, and each parsed secret is zeroed once what needs it has its own copy.
  keylog.length = 0;
  try {
    follow(log, tracks, suite, isServer);
  } finally {
    for (const e of log.values()) zero(e.secret, e.random);
  }
}

function follow(log: ReturnType<typeof parseKeylog>, tracks: Tracks, suite: NonNullable<ReturnType<typeof carriable>>, isServer: boolean): void {
  const { version, cipher, hash } = suite;
  if (version === 'TLSv1.3') {
    const c = log.get('CLIENT_TRAFFIC_SECRET_0');
    const s = log.get('SERVER_TRAFFIC_SECRET_0');
    if (!c || !s) throw new KtlsError('ERR_KTLS_HANDOVER', 'node:tls did not log the TLS 1.3 traffic secrets');
    const keys = (secret: Buffer): TrackKeys => ({ version, cipher, hash, ...tls13Keys(cipher, hash, secret), secret: unpooled(secret) });
    const ex = log.get('EXPORTER_SECRET');
    if (ex) tracks.exporter = tls13Exporter(hash, ex.secret);
    tracks.sent.start(keys(isServer ? s.secret : c.secret));
    tracks.fed.start(keys(isServer ? c.secret : s.secret));
    return;
  }
  const m = log.get('CLIENT_RANDOM');
  if (!m) throw new KtlsError('ERR_KTLS_HANDOVER', 'node:tls did not log the TLS 1.2 master secret');
  const sr = serverRandom(isServer ? tracks.sent.pending : tracks.fed.pending);
  const { client, server } = tls12Keys(cipher, hash, m.secret, m.random, sr);
  tracks.exporter = tls12Exporter(hash, m.secret, m.random, sr);
  tracks.sent.start({ version, cipher, hash, ...(isServer ? server : client) });
  tracks.fed.start({ version, cipher, hash, ...(isServer ? client : server) });
}

/** One direction's keys in force at the switch. @internal */
export interface SwitchKeys {
  key: Buffer;
  iv: Buffer;
  seq: bigint;
  /** TLS 1.3 traffic secret (for KeyUpdates after the switch). */
  secret?: Buffer;
}

/** Keys for the kernel at the switch, and what to deliver before reading the socket. @internal */
export interface Derived {
  version: TlsVersion;
  cipher: CipherName;
  hash: SuiteHash;
  tx: SwitchKeys;
  rx: SwitchKeys;
  /** Received plaintext node:tls consumed and nobody has read yet, in order. */
  early: OpenedRecord[];
  /** Application bytes at the front of `early` the user already read through node:tls. */
  skip: number;
  /** The peer asked for a KeyUpdate that node:tls has not answered: we owe it before anything else. */
  owesKeyUpdate: boolean;
}

/** The state of both directions now, for the kernel. `consumed`: plaintext the user read through node:tls. @internal */
export function deriveSecrets(t: tls.TLSSocket, tracks: Tracks, consumed: number): Derived {
  const suite = carriable(t);
  if (!suite) throw new KtlsError('ERR_KTLS_UNSUPPORTED', `kernel TLS cannot carry ${String(t.getProtocol())} ${t.getCipher().standardName}`);
  const tx = tracks.sent.current();
  const rx = tracks.fed.current();
  tracks.fed.trim(consumed);
  const early = tracks.fed.replay.splice(0);
  const peer = tracks.fed.lastKeyUpdate;
  const owesKeyUpdate = peer.requested && peer.tick > tracks.sent.lastKeyUpdate.tick;
  return { ...suite, tx, rx, early, skip: consumed - tracks.fed.dropped, owesKeyUpdate };
}

/**
 * Answers a KeyUpdate node:tls read but did not answer: the record (sealed
 * under the current TX keys) to send before anything else, after which `d.tx`
 * holds the next keys from sequence 0.
 * @internal
 */
export function answerKeyUpdate(d: Derived): Buffer {
  const sealer = new RecordSealer(d.version, d.cipher, d.tx);
  const wire = Buffer.concat(sealer.seal(constants().RECORD_HANDSHAKE, keyUpdateMessage(false)));
  sealer.wipe();
  const next = nextTrafficSecret(d.hash, d.tx.secret!);
  wipeKeys(d.tx);
  d.tx = { ...tls13Keys(d.cipher, d.hash, next), seq: 0n, secret: next };
  d.owesKeyUpdate = false;
  return wire;
}

/** The kernel's secrets for `d`, wrapping its buffers (wipe them after use) (TLS 1.2 GCM/CCM: the explicit nonce we send starts at the sequence number, as OpenSSL's does). */
export function secretsOf(d: Derived): Secrets {
  const txIv = unpooled(d.tx.iv);
  if (d.version === 'TLSv1.2' && d.cipher !== 'chacha20-poly1305') txIv.writeBigUInt64BE(d.tx.seq, 4);
  return new Secrets({
    version: d.version,
    cipher: d.cipher,
    tx: { key: d.tx.key, iv: txIv, seq: d.tx.seq },
    rx: { key: d.rx.key, iv: d.rx.iv, seq: d.rx.seq },
  });
}

/** Zeroes one direction's key material. */
export function wipeKeys(k: SwitchKeys): void {
  k.key.fill(0);
  k.iv.fill(0);
  k.secret?.fill(0);
}
