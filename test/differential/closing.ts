// More ways a connection ends: who ends first, with what, and what is still
// in flight when it does.
import { big, endOnEnd, noteCb, onError, politePeer, readAll } from './kit.js';
import type { Scenario } from './run.js';

export const closing: Scenario[] = [
  {
    name: 'the client ends at once, before any data',
    server: (s) => politePeer(s),
    client: (s) => (onError(s), readAll(s), s.end()),
  },
  {
    name: 'the client destroys at once',
    server: (s) => (onError(s), readAll(s)),
    client: (s) => (onError(s), s.destroy()),
  },
  {
    name: 'the client destroys with an error it listens for',
    server: (s) => (onError(s), readAll(s)),
    client: (s) => (onError(s), s.destroy(Object.assign(new Error('client boom'), { code: 'ECLIENT' }))),
  },
  {
    name: 'end() with a callback and no data',
    server: (s, ctx) => (onError(s), readAll(s), s.end(() => ctx.note('end callback'))),
    client: (s) => politePeer(s),
  },
  {
    name: 'end(data, encoding, callback)',
    server: (s, ctx) => (onError(s), readAll(s), s.end('6869', 'hex', () => ctx.note('end callback'))),
    client: (s) => politePeer(s),
  },
  {
    name: 'the server destroys inside a write callback',
    server: (s, ctx) => {
      onError(s);
      readAll(s);
      s.write('first', (err) => (noteCb(ctx, 'write callback')(err), s.destroy()));
    },
    client: (s) => (onError(s), readAll(s)),
  },
  {
    name: 'destroy() twice, then write',
    server: (s, ctx) => {
      onError(s);
      s.destroy();
      s.destroy();
      s.write('after destroy', noteCb(ctx, 'write callback'));
    },
    client: (s) => (onError(s), readAll(s)),
  },
  {
    name: 'the server destroys on the first data with an error',
    server: (s) => (onError(s), s.once('data', () => s.destroy(Object.assign(new Error('bad request'), { code: 'EBADREQ' })))),
    client: (s) => (onError(s), readAll(s), s.write('request')),
  },
  {
    name: 'the client ends and destroys on finish',
    server: (s) => politePeer(s),
    client: (s) => (onError(s), readAll(s), s.on('finish', () => s.destroy()), s.end('bye')),
  },
  {
    name: 'the server ends while 4 MiB are queued to a reader that reads slowly',
    server: (s) => (onError(s), readAll(s), s.end(big(4 << 20))),
    client: async (s, ctx) => {
      onError(s);
      endOnEnd(s);
      s.pause();
      for (let i = 0; i < 20 && !s.readableEnded; i++) {
        while (s.read() !== null);
        await ctx.sleep(10);
      }
      s.resume();
    },
    settleMs: 5000,
  },
  {
    name: 'the client destroys, not reading, while the server writes 1 MiB',
    server: (s, ctx) => (onError(s), readAll(s), s.write(big(1 << 20), noteCb(ctx, 'write callback'))),
    client: (s, ctx) => (onError(s), s.pause(), void ctx.sleep(50).then(() => s.destroy())),
    settleMs: 3000,
  },
  {
    name: 'the server ends without reading while the client keeps writing',
    server: (s) => (onError(s), s.end('no more')),
    client: async (s, ctx) => {
      onError(s);
      readAll(s);
      endOnEnd(s);
      for (let i = 0; i < 5 && s.writable; i++) {
        s.write(big(1024));
        await ctx.sleep(5);
      }
    },
  },
];
