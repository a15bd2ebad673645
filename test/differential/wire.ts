// Endings that come from the wire, not from the peer's TLS stack: a FIN with
// no close_notify before it, and a reset, cut into the TCP connection by a
// relay between the two (run.ts), toward the client and toward the server.
import { big, noteCb, onError, politePeer, readAll } from './kit.js';
import type { Role, Scenario } from './run.js';

const other = (r: Role): Role => (r === 'client' ? 'server' : 'client');

/** `victim` gets the wire cut (`kind`) once it has received its first bytes; its peer wrote them. */
function cutAfterData(victim: Role, kind: 'fin' | 'rst', halfOpen = false): Scenario {
  const what = kind === 'fin' ? 'a FIN without close_notify' : 'a reset';
  const side: Scenario['server'] = (s, ctx) => {
    onError(s);
    readAll(s);
    // A peer's reset comes over the network, not inside the read that delivered the data: node:tls
    // reports one that lands within its own read callback as an EOF (the reset's errno is spent on a write).
    s.once('data', () => setTimeout(() => ctx.cut(victim, kind), 20));
    if (halfOpen) s.on('end', () => setTimeout(() => s.end('after the end'), 30));
  };
  const peer: Scenario['server'] = (s) => (politePeer(s), s.write('first bytes'));
  return {
    name: `after the ${other(victim)}'s first bytes, ${what} reaches the ${victim}${halfOpen ? ' (allowHalfOpen)' : ''}`,
    wire: true,
    ...(halfOpen ? { options: { allowHalfOpen: true } } : {}),
    server: victim === 'server' ? side : peer,
    client: victim === 'client' ? side : peer,
  };
}

export const wire: Scenario[] = [
  cutAfterData('client', 'fin'),
  cutAfterData('server', 'fin'),
  cutAfterData('client', 'rst'),
  cutAfterData('server', 'rst'),
  cutAfterData('client', 'fin', true),
  cutAfterData('server', 'fin', true),
  {
    // 8 KiB: below highWaterMark, so write() returns true on both (a larger write's 'drain' is SYNC_WRITES in allowed.ts).
    name: 'a reset reaches the client after it wrote 8 KiB to a server that is not reading',
    wire: true,
    server: (s) => void onError(s),
    client: async (s, ctx) => {
      onError(s);
      s.write(big(8 << 10), noteCb(ctx, 'write'));
      // After the server has its socket: a switch to the kernel slower than 20 ms (ASan under UML) met the reset mid-handshake.
      await ctx.serverReady();
      setTimeout(() => ctx.cut('client', 'rst'), 20);
    },
  },
  // A peer that resets instead of answering our end with its own (curl after a Connection: close response does).
  {
    name: 'the server ends; a reset reaches it instead of the client ending too',
    wire: true,
    clientOptions: { allowHalfOpen: true },
    server: (s) => (onError(s), readAll(s), s.end('bye')),
    client: (s, ctx) => (onError(s), readAll(s), s.once('end', () => setTimeout(() => ctx.cut('server', 'rst'), 20))),
  },
  {
    name: 'the client ends; a reset reaches it instead of the server ending too',
    wire: true,
    serverOptions: { allowHalfOpen: true },
    server: (s, ctx) => (onError(s), readAll(s), s.once('end', () => setTimeout(() => ctx.cut('client', 'rst'), 20))),
    client: (s) => (onError(s), readAll(s), s.end('bye')),
  },
];
