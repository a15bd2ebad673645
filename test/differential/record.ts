// What an application can observe of one socket, recorded so that node:tls's
// and ktls's runs of a scenario can be compared as data: events in order with
// their arguments (runs of 'data' folded into one entry), errors by
// code/errno/syscall, the bytes received, and the state once it settled.
import { createHash } from 'node:crypto';
import type { AppSocket } from './stack.js';

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
export function record(s: AppSocket): { rec: SideRecord; closed: Promise<void>; note: (text: string) => void; snapshot: () => void } {
  const rec: SideRecord = { events: [], received: { bytes: 0, sha256: '' } };
  const hash = createHash('sha256');
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
  const push = (e: string): void => {
    if (e === 'data' && rec.events[rec.events.length - 1] === 'data') return;
    rec.events.push(e);
  };
  const emit = s.emit.bind(s);
  // Wrapping emit (rather than listening) sees every event without changing what the
  // application's listeners decide: an 'error' nobody listens to is recorded as the
  // crash it would have been, and swallowed here so the run goes on.
  s.emit = ((event: string | symbol, ...args: unknown[]): boolean => {
    if (typeof event !== 'string') return emit(event, ...args);
    switch (event) {
      case 'data': {
        const chunk = args[0] as Buffer | string;
        const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
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
    closed,
    note: (text) => rec.events.push(`# ${text}`),
    snapshot: () => {
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
