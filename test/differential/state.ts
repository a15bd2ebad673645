// What a socket says about itself through its life, and its timers.
import { endOnEnd, onError, politePeer, readAll } from './kit.js';
import type { Scenario } from './run.js';
import type { AppSocket } from './stack.js';

type Described = AppSocket & {
  remoteAddress?: string;
  remotePort?: number;
  remoteFamily?: string;
  localAddress?: string;
  localPort?: number;
  encrypted?: boolean;
  authorized?: boolean;
  address(): unknown;
  getProtocol(): string | null;
  getCipher(): { version: string } | undefined;
  isSessionReused(): boolean;
  pending?: boolean;
  connecting?: boolean;
};

const describe = (s: Described): string =>
  JSON.stringify({
    remoteAddress: s.remoteAddress,
    remoteFamily: s.remoteFamily,
    localAddress: s.localAddress,
    ports: [typeof s.remotePort, typeof s.localPort],
    address: typeof s.address(),
    encrypted: s.encrypted,
    protocol: s.getProtocol(),
    cipherVersion: s.getCipher()?.version,
    reused: s.isSessionReused(),
    pending: s.pending,
    connecting: s.connecting,
  });

export const state: Scenario[] = [
  {
    name: 'what the socket says about its connection',
    server: (s, ctx) => (onError(s), ctx.note(describe(s as Described)), readAll(s), s.end()),
    client: (s, ctx) => (onError(s), ctx.note(describe(s as Described)), readAll(s), endOnEnd(s)),
  },
  {
    name: 'authorized on a client that verified the server',
    server: (s) => (onError(s), readAll(s), s.end()),
    client: (s, ctx) => (onError(s), ctx.note(`authorized ${String((s as Described).authorized)}`), readAll(s), endOnEnd(s)),
  },
  {
    name: 'readyState, readable and writable through end and close',
    server: (s, ctx) => {
      onError(s);
      readAll(s);
      const at = (when: string): void => ctx.note(`${when}: ${String(s.readyState)} readable ${String(s.readable)} writable ${String(s.writable)}`);
      at('start');
      s.end('bye', () => at('end callback'));
      at('after end()');
      s.on('close', () => at('close'));
    },
    client: (s) => politePeer(s),
  },
  {
    name: 'setTimeout on the server, silent client: the server ends on timeout',
    server: (s, ctx) => {
      onError(s);
      readAll(s);
      s.setTimeout(100);
      s.on('timeout', () => (ctx.note('timeout'), s.end()));
    },
    client: (s) => politePeer(s),
  },
  {
    name: 'setTimeout re-armed with a longer value',
    server: (s) => politePeer(s),
    client: async (s, ctx) => {
      onError(s);
      readAll(s);
      const start = Date.now();
      s.setTimeout(50);
      s.setTimeout(250);
      s.once('timeout', () => (ctx.note(`timeout after at least 200 ms: ${String(Date.now() - start >= 200)}`), s.end()));
    },
  },
  {
    name: 'a timeout does not fire while data flows',
    server: (s) => (onError(s), s.pipe(s)),
    client: async (s, ctx) => {
      onError(s);
      readAll(s);
      let timeouts = 0;
      s.setTimeout(150);
      s.on('timeout', () => timeouts++);
      for (let i = 0; i < 10; i++) {
        s.write('tick');
        await ctx.sleep(40);
      }
      ctx.note(`timeouts while busy ${timeouts}`);
      s.setTimeout(0);
      s.end();
    },
  },
  {
    name: 'setTimeout returns the socket; its callback is a once listener',
    server: (s) => politePeer(s),
    client: (s, ctx) => {
      onError(s);
      readAll(s);
      let calls = 0;
      ctx.note(`returns the socket ${String(s.setTimeout(60, () => calls++) === s)}`);
      setTimeout(() => s.write('x'), 90);
      setTimeout(() => (ctx.note(`callback calls ${calls} timeout listeners ${s.listenerCount('timeout')}`), s.setTimeout(0), s.end()), 250);
    },
  },
  {
    name: 'setNoDelay(false) and setKeepAlive(false)',
    server: (s, ctx) => {
      onError(s);
      ctx.note(`setNoDelay ${String(s.setNoDelay(false) === s)} setKeepAlive ${String(s.setKeepAlive(false) === s)}`);
      readAll(s);
      s.end('ok');
    },
    client: (s) => politePeer(s),
  },
];
