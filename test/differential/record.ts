// What an application can observe of one socket, recorded so that node:tls's
// and ktls's runs of a scenario can be compared as data: events in order with
// their arguments (runs of 'data' folded into one entry), errors by
// code/errno/syscall, the bytes received, and the state once it settled.
import { createHash } from 'node:crypto';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { ParityMember } from '../helpers/parity-log.js';
import type { AppSocket } from './stack.js';

/** The node:tls and net.Socket methods of their own (as docs/node-tls-parity.md lists them) that a scenario may call. */
const METHODS = [tls.TLSSocket.prototype, net.Socket.prototype].flatMap((proto) =>
  Object.getOwnPropertyNames(proto).filter(
    (n) => !n.startsWith('_') && n !== 'constructor' && n !== 'read' && typeof Object.getOwnPropertyDescriptor(proto, n)?.value === 'function',
  ),
);
/** The net.Socket events the parity table lists that a record observes. */
const EVENTS = new Set(['close', 'data', 'drain', 'end', 'error', 'timeout']);

/** One side's observations. */
export interface SideRecord {
  events: string[];
  received: { bytes: number; sha256: string };
  state?: Record<string, unknown>;
}

function errorText(err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  if (!e || typeof e !== 'object') return String(err);
  const parts = [`code=${String(e.code)}`];
  if (e.errno !== undefined) parts.push(`errno=${String(e.errno)}`);
  if (e.syscall !== undefined) parts.push(`syscall=${e.syscall}`);
  return parts.join(' ');
}

/** Records `s` from now on; `closed` resolves at its 'close'. */
export function record(s: AppSocket): {
  rec: SideRecord;
  closed: Promise<void>;
  note: (text: string) => void;
  snapshot: () => void;
  /** The node:tls members this socket's scenario exercised: methods called, events seen, state read. */
  used: Set<ParityMember>;
} {
  const rec: SideRecord = { events: [], received: { bytes: 0, sha256: '' } };
  const used = new Set<ParityMember>(['TLSSocket#readyState']);
  const target = s as unknown as Record<string, unknown>;
  for (const name of METHODS) {
    const method = target[name];
    if (typeof method !== 'function') continue;
    // An own property over the prototype's: every call (the application's or the stream's own) counts it.
    target[name] = function (this: unknown, ...args: unknown[]): unknown {
      used.add(`TLSSocket#${name}`);
      return (method as (...a: unknown[]) => unknown).apply(this, args);
    };
  }
  const hash = createHash('sha256');
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
  // Once the state is taken the record is closed: what the harness's own cleanup causes is not observed.
  let frozen = false;
  const push = (e: string): void => {
    if (frozen) return;
    // How many 'data' events a run of bytes takes depends on how they were read, not on the stack.
    if (e.startsWith('data') && rec.events[rec.events.length - 1] === e) return;
    rec.events.push(e);
  };
  const emit = s.emit.bind(s);
  // Wrapping emit (rather than listening) sees every event without changing what the
  // application's listeners decide: an 'error' nobody listens to is recorded as the
  // crash it would have been, and swallowed here so the run goes on.
  s.emit = ((event: string | symbol, ...args: unknown[]): boolean => {
    if (typeof event !== 'string') return emit(event, ...args);
    if (EVENTS.has(event)) used.add(`TLSSocket@${event}`);
    switch (event) {
      case 'data': {
        const chunk = args[0] as Buffer | string;
        const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        if (frozen) break;
        rec.received.bytes += b.length;
        hash.update(b);
        push(`data${typeof chunk === 'string' ? '(string)' : ''}`);
        break;
      }
      case 'error':
        push(`error ${errorText(args[0])}${s.listenerCount('error') === 0 ? ' UNCAUGHT' : ''}`);
        if (s.listenerCount('error') === 0) return true;
        break;
      case 'end':
      case 'finish':
      case 'timeout':
      case 'drain':
        push(event);
        break;
      default:
        break;
    }
    const r = emit(event, ...args);
    if (event === 'close') resolveClosed();
    return r;
  }) as typeof s.emit;
  // 'close' through a listener: what listeners are given is what counts (a class may fill in hadError).
  s.prependListener('close', (hadError: unknown) => push(`close(${String(hadError)})`));
  return {
    rec,
    used,
    closed,
    note: (text) => push(`# ${text}`),
    snapshot: () => {
      frozen = true;
      rec.received.sha256 = hash.copy().digest('hex').slice(0, 16);
      rec.state = {
        destroyed: s.destroyed,
        readyState: s.readyState,
        writableEnded: s.writableEnded,
        writableFinished: s.writableFinished,
        readableEnded: s.readableEnded,
      };
    },
  };
}
