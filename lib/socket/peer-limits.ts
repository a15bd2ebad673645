/**
 * How much control traffic one peer may send: KeyUpdates, empty records and
 * TLS 1.2 warning alerts cost us work (a rekey, a reply, a wakeup) and carry no
 * data, so each is counted in a time window and a peer over its limit gets
 * `unexpected_message` and a close, as OpenSSL caps the same three.
 * @packageDocumentation
 */
import { invalidArgType, invalidArgValue } from '../native/errors.js';

/** Per-peer limits on records that carry no application data ({@link KtlsSocketOptions.peerLimits}). */
export interface PeerLimits {
  /** KeyUpdate messages the peer may send per window (default 32, OpenSSL's MAX_KEY_UPDATE_MESSAGES). */
  keyUpdates?: number;
  /** Empty records (no plaintext) per window (default 32, OpenSSL's MAX_EMPTY_RECORDS). */
  emptyRecords?: number;
  /** TLS 1.2 warning alerts per window (default 5, OpenSSL's MAX_WARN_ALERT_COUNT). */
  warningAlerts?: number;
  /** The window in milliseconds (default 1000). */
  windowMs?: number;
}

/** The kinds of record {@link PeerLimits} bounds. */
export type PeerEvent = 'keyUpdates' | 'emptyRecords' | 'warningAlerts';

/** The limits a socket gets where `peerLimits` leaves one out. */
export const DEFAULT_PEER_LIMITS: Readonly<Required<PeerLimits>> = Object.freeze({ keyUpdates: 32, emptyRecords: 32, warningAlerts: 5, windowMs: 1000 });

/** Validates `options.peerLimits`. @internal */
export function checkPeerLimits(v: unknown, name = 'options.peerLimits'): void {
  if (v === undefined) return;
  if (typeof v !== 'object' || v === null) throw invalidArgType(`Expected an object for ${name} but received ${v === null ? 'null' : typeof v}`);
  for (const key of Object.keys(DEFAULT_PEER_LIMITS) as Array<keyof PeerLimits>) {
    const n: unknown = (v as PeerLimits)[key];
    if (n === undefined) continue;
    if (typeof n !== 'number') throw invalidArgType(`Expected a number for ${name}.${key} but received ${typeof n}`);
    if (!Number.isSafeInteger(n) || n < (key === 'windowMs' ? 1 : 0))
      throw invalidArgValue(`Expected a ${key === 'windowMs' ? 'positive' : 'non-negative'} integer for ${name}.${key} but received ${n}`);
  }
}

/** Counts one peer's control records in fixed windows. @internal */
export class PeerBudget {
  // Plain fields and the shared defaults: every idle connection carries one of these.
  readonly #limits: Readonly<Required<PeerLimits>>;
  #keyUpdates = 0;
  #emptyRecords = 0;
  #warningAlerts = 0;
  #windowStart = 0;

  constructor(limits?: PeerLimits) {
    this.#limits = limits ? { ...DEFAULT_PEER_LIMITS, ...limits } : DEFAULT_PEER_LIMITS;
  }

  /** Counts one `event`; returns a reason when the peer is over its limit. */
  spend(event: PeerEvent, now = Date.now()): string | null {
    if (now - this.#windowStart >= this.#limits.windowMs) {
      this.#windowStart = now;
      this.#keyUpdates = this.#emptyRecords = this.#warningAlerts = 0;
    }
    const n = event === 'keyUpdates' ? ++this.#keyUpdates : event === 'emptyRecords' ? ++this.#emptyRecords : ++this.#warningAlerts;
    const max = this.#limits[event];
    return n > max ? `the peer sent more than ${max} ${NAMES[event]} in ${this.#limits.windowMs} ms` : null;
  }
}

const NAMES: Record<PeerEvent, string> = { keyUpdates: 'KeyUpdates', emptyRecords: 'empty records', warningAlerts: 'warning alerts' };
