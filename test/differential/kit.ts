// Small helpers the scenario files share: what an application would write in
// a line, kept here so that every scenario reads the same way.
import type { AppSocket } from './stack.js';
import type { SideContext } from './run.js';

/** `n` bytes of 'a'. */
export const big = (n: number): Buffer => Buffer.alloc(n, 0x61);
/** An application that handles errors (by ignoring them). */
export const onError = (s: AppSocket): void => void s.on('error', () => undefined);
/** Reads and discards everything. */
export const readAll = (s: AppSocket): void => void s.resume();
/** Ends our side when the peer ends its side. */
export const endOnEnd = (s: AppSocket): void => void s.on('end', () => s.end());
/** The ordinary peer: handles errors, reads everything, ends when the other side ends. */
export const politePeer = (s: AppSocket): void => (onError(s), readAll(s), endOnEnd(s));
/** Notes a write or end callback's outcome. */
export const noteCb =
  (ctx: SideContext, what: string) =>
  (err?: Error | null): void =>
    ctx.note(`${what} ${err ? String((err as NodeJS.ErrnoException).code) : 'ok'}`);
