// allowHalfOpen: which side may go on writing after the other ended.
import { endOnEnd, noteCb, onError, readAll } from './kit.js';
import type { Scenario } from './run.js';

export const halfOpenMore: Scenario[] = [
  {
    name: 'allowHalfOpen: the server answers 30 ms after the client ended',
    serverOptions: { allowHalfOpen: true },
    server: (s, ctx) => {
      onError(s);
      readAll(s);
      s.on('end', () => void ctx.sleep(30).then(() => s.end('late answer', noteCb(ctx, 'end callback'))));
    },
    client: (s) => (onError(s), readAll(s), s.end('question')),
  },
  {
    name: 'allowHalfOpen: the client writes 30 ms after the server ended',
    clientOptions: { allowHalfOpen: true },
    server: (s) => (onError(s), readAll(s), s.end('no more from me')),
    client: (s, ctx) => {
      onError(s);
      readAll(s);
      s.on('end', () => void ctx.sleep(30).then(() => s.end('but more from me', noteCb(ctx, 'end callback'))));
    },
  },
  {
    name: 'allowHalfOpen on both sides: each ends 30 ms after the other',
    options: { allowHalfOpen: true },
    server: (s, ctx) => {
      onError(s);
      readAll(s);
      s.on('end', () => void ctx.sleep(30).then(() => s.end('server done')));
    },
    client: (s) => (onError(s), readAll(s), s.end('client done')),
  },
  {
    name: 'without allowHalfOpen: the client writes 30 ms after the server ended',
    server: (s) => (onError(s), readAll(s), s.end('no more from me')),
    client: (s, ctx) => {
      onError(s);
      readAll(s);
      s.on('end', () => void ctx.sleep(30).then(() => s.write('too late', noteCb(ctx, 'write callback'))));
    },
  },
  {
    name: 'allowHalfOpen: the server never ends after the client ended',
    serverOptions: { allowHalfOpen: true },
    server: (s) => (onError(s), readAll(s)),
    client: (s) => (onError(s), readAll(s), endOnEnd(s), s.end('question')),
    settleMs: 300,
  },
];
