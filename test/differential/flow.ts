// Reading and writing as applications do it: encodings, flow control, pipes,
// iteration, corking, callbacks and drain.
import { Writable, pipeline } from 'node:stream';
import { big, endOnEnd, noteCb, onError, politePeer, readAll } from './kit.js';
import type { Scenario } from './run.js';

const bytes = Buffer.from(Array.from({ length: 256 }, (_v, i) => i));

export const flow: Scenario[] = [
  {
    name: 'setEncoding hex',
    server: (s) => (onError(s), readAll(s), s.end(bytes)),
    client: (s) => (onError(s), s.setEncoding('hex'), readAll(s), endOnEnd(s)),
  },
  {
    name: 'setEncoding base64 across writes of 1, 2 and 4 bytes',
    server: async (s, ctx) => {
      onError(s);
      readAll(s);
      for (const n of [1, 2, 4]) {
        s.write(bytes.subarray(0, n));
        await ctx.sleep(20);
      }
      s.end();
    },
    client: (s) => (onError(s), s.setEncoding('base64'), readAll(s), endOnEnd(s)),
  },
  {
    name: 'a data listener added 100 ms after the data arrived',
    server: (s) => (onError(s), readAll(s), s.end('early words')),
    client: async (s, ctx) => {
      onError(s);
      endOnEnd(s);
      await ctx.sleep(100);
      ctx.note(`readableLength ${s.readableLength}`);
      s.on('data', () => undefined);
    },
  },
  {
    name: "only an 'end' listener, no data",
    server: (s) => (onError(s), readAll(s), s.end()),
    client: (s, ctx) => (onError(s), s.on('end', () => (ctx.note('ended without reading'), s.end()))),
  },
  {
    name: 'pause inside the first data handler, resume 50 ms later',
    // 1 MiB: more than any one read of either stack, so data comes before and after the pause on both.
    server: (s) => (onError(s), readAll(s), s.end(big(1 << 20))),
    client: (s, ctx) => {
      onError(s);
      endOnEnd(s);
      s.once('data', () => {
        s.pause();
        ctx.note(`isPaused ${String((s as unknown as { isPaused(): boolean }).isPaused())}`);
        setTimeout(() => s.resume(), 50);
      });
      s.on('data', () => undefined);
    },
    settleMs: 3000,
  },
  {
    name: 'unshift part of the first chunk back',
    server: (s) => (onError(s), readAll(s), s.end('HEADER:body')),
    client: (s, ctx) => {
      onError(s);
      endOnEnd(s);
      s.once('readable', () => {
        const all = s.read() as Buffer;
        const colon = all.indexOf(':');
        ctx.note(`header ${all.subarray(0, colon).toString()}`);
        s.unshift(all.subarray(colon + 1));
        readAll(s);
      });
    },
  },
  {
    name: 'read(3) in fixed steps on readable',
    server: (s) => (onError(s), readAll(s), s.end('abcdefghij')),
    client: (s, ctx) => {
      onError(s);
      const parts: string[] = [];
      s.on('readable', () => {
        for (let c; (c = s.read(3) as Buffer | null) !== null;) parts.push(c.toString());
      });
      s.on('end', () => (ctx.note(`parts ${parts.join('|')} left ${s.readableLength}`), s.end()));
    },
  },
  {
    name: 'pipe into a slow Writable',
    server: (s) => (onError(s), readAll(s), s.end(big(512 << 10))),
    client: (s) => {
      onError(s);
      endOnEnd(s);
      // The socket's own record holds the bytes; when the sink finishes races the socket's 'close'.
      const slow = new Writable({ highWaterMark: 1024, write: (_c: Buffer, _e, cb) => void setTimeout(cb, 1) });
      s.pipe(slow);
    },
    settleMs: 5000,
  },
  {
    name: 'pipeline into a Writable, ended by the peer',
    server: (s) => (onError(s), readAll(s), s.end('through a pipeline')),
    client: (s, ctx) => {
      let n = 0;
      const sink = new Writable({ write: (c: Buffer, _e, cb) => ((n += c.length), cb()) });
      pipeline(s, sink, (err) => ctx.note(`pipeline done ${err ? String(err.code) : 'ok'} ${n}`));
    },
  },
  {
    name: 'for await with break after the first chunk',
    server: (s) => (onError(s), readAll(s), s.write('first'), setTimeout(() => s.end('second'), 50)),
    client: async (s, ctx) => {
      onError(s);
      for await (const chunk of s) {
        ctx.note(`first chunk ${(chunk as Buffer).length}`);
        break;
      }
    },
  },
  {
    name: 'write a string with an encoding: latin1 and hex',
    server: (s, ctx) => (onError(s), readAll(s), s.write('é', 'latin1', noteCb(ctx, 'latin1')), s.end('ff00', 'hex')),
    client: (s) => politePeer(s),
  },
  {
    name: 'write an empty buffer with a callback',
    server: (s, ctx) => (onError(s), readAll(s), s.write(Buffer.alloc(0), noteCb(ctx, 'empty write')), s.end('x')),
    client: (s) => politePeer(s),
  },
  {
    name: 'cork, 100 small writes, uncork on the next tick',
    server: (s, ctx) => {
      onError(s);
      readAll(s);
      s.cork();
      let cbs = 0;
      for (let i = 0; i < 100; i++) s.write(`line ${i}\n`, () => cbs++);
      process.nextTick(() => (s.uncork(), s.end(() => ctx.note(`callbacks ${cbs}`))));
    },
    client: (s) => politePeer(s),
  },
  {
    name: 'nested cork, two uncorks',
    server: (s, ctx) => {
      onError(s);
      readAll(s);
      s.cork();
      s.cork();
      s.write('a');
      s.uncork();
      ctx.note(`writableCorked ${s.writableCorked}`);
      s.write('b');
      s.uncork();
      ctx.note(`writableCorked ${s.writableCorked}`);
      s.end();
    },
    client: (s) => politePeer(s),
  },
  {
    name: 'write 1 MiB to a reader paused for 200 ms, end in the write callback',
    server: (s, ctx) => {
      onError(s);
      readAll(s);
      s.write(big(1 << 20), (err) => (noteCb(ctx, 'write callback')(err), s.end()));
    },
    client: async (s, ctx) => {
      onError(s);
      endOnEnd(s);
      s.pause();
      await ctx.sleep(200);
      s.resume();
    },
    settleMs: 3000,
  },
];
