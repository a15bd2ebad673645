/**
 * Session ticket keys that every process and machine derives alike from one
 * shared secret and the clock, so a fleet resumes each other's sessions
 * without talking to each other.
 * @packageDocumentation
 */
import { hkdfSync } from 'node:crypto';
import { invalidArgType, invalidArgValue } from '../native/errors.js';

/** Options of {@link ticketKeys} and {@link rotateTicketKeys}. */
export interface TicketKeyOptions {
  /** The secret every server shares (at least 32 bytes; a string is taken as UTF-8). Keep it out of logs and source control. */
  secret: Buffer | string;
  /** How long one key is current, in ms (default 12 hours; at least 1 s). */
  periodMs?: number;
}

/** The keys of one period, as {@link ticketKeys} returns them. */
export interface TicketKeys {
  /** The 48-byte key for `tls.Server#setTicketKeys` / the `ticketKeys` option in this period. */
  current: Buffer;
  /** The previous period's key (what servers used until `startsAt`). */
  previous: Buffer;
  /** The period number (`floor(time / periodMs)`). */
  period: number;
  /** When this period started (ms since the epoch). */
  startsAt: number;
  /** When the next period's key takes over (ms since the epoch). */
  endsAt: number;
}

const DEFAULT_PERIOD = 12 * 60 * 60 * 1000;
/** setTimeout's largest delay (2^31 - 1 ms, 24.8 days): a longer one fires after 1 ms. */
const MAX_TIMER = 2 ** 31 - 1;

function checked(options: TicketKeyOptions): { secret: Buffer; periodMs: number } {
  if (options === null || typeof options !== 'object') throw invalidArgType(`Expected options to be an object but received ${typeof options}`);
  const { secret } = options;
  const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
  if (!Buffer.isBuffer(bytes)) throw invalidArgType(`Expected a Buffer or string for options.secret but received ${typeof secret}`);
  if (bytes.length < 32) throw invalidArgValue(`Expected at least 32 bytes for options.secret but received ${bytes.length}`);
  const periodMs = options.periodMs ?? DEFAULT_PERIOD;
  if (!Number.isSafeInteger(periodMs) || periodMs < 1000)
    throw invalidArgValue(`Expected an integer of at least 1000 for options.periodMs but received ${String(periodMs)}`);
  return { secret: bytes, periodMs };
}

const keyOf = (secret: Buffer, period: number): Buffer => Buffer.from(hkdfSync('sha256', secret, 'ktls session ticket keys', `period ${period}`, 48));

/**
 * The ticket keys for the period that contains `time` (default now): HKDF-SHA256
 * of the shared secret and the period number. Every server with the same
 * secret and period length gets the same keys at the same time.
 */
export function ticketKeys(options: TicketKeyOptions, time: number = Date.now()): TicketKeys {
  const { secret, periodMs } = checked(options);
  if (typeof time !== 'number') throw invalidArgType(`Expected a number of ms since the epoch for time but received ${typeof time}`);
  if (!Number.isFinite(time)) throw Object.assign(new RangeError(`Expected a finite time but received ${time}`), { code: 'ERR_OUT_OF_RANGE' });
  const period = Math.floor(time / periodMs);
  return { current: keyOf(secret, period), previous: keyOf(secret, period - 1), period, startsAt: period * periodMs, endsAt: (period + 1) * periodMs };
}

/** What {@link rotateTicketKeys} returns. */
export interface TicketKeyRotation {
  /** The keys installed now. */
  readonly keys: TicketKeys;
  /** Stops rotating (the last key stays installed). */
  stop(): void;
}

/**
 * Installs the current period's key on `server` (a {@link KtlsServer},
 * `tls.Server` or anything with `setTicketKeys`) and replaces it at every
 * period boundary. The timer does not keep the process alive.
 *
 * Node's `setTicketKeys` holds one key, so a ticket issued in one period no
 * longer resumes after the boundary (that connection makes a full handshake
 * and gets a fresh ticket). Choose `periodMs` well above the session lifetime
 * (`sessionTimeout`, 300 s by default) so that few tickets meet a boundary.
 */
export function rotateTicketKeys(server: { setTicketKeys(keys: Buffer): void }, options: TicketKeyOptions): TicketKeyRotation {
  if (server === null || typeof server !== 'object' || typeof server.setTicketKeys !== 'function')
    throw invalidArgType('Expected a server with setTicketKeys() for server');
  const { periodMs } = checked(options);
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let keys = ticketKeys(options);
  let installed: number | null = null;
  const install = (): void => {
    if (stopped) return;
    keys = ticketKeys(options);
    if (keys.period !== installed) {
      server.setTicketKeys(keys.current);
      installed = keys.period;
    }
    // Re-read the clock at each boundary rather than trusting an interval: timers drift, the clock is the agreement.
    // Periods longer than a timer can wait are reached in steps.
    timer = setTimeout(install, Math.min(Math.max(keys.endsAt - Date.now(), 1), periodMs, MAX_TIMER));
    timer.unref();
  };
  install();
  return {
    get keys(): TicketKeys {
      return keys;
    },
    stop: (): void => {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
