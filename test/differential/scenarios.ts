// The differential scenarios: ordinary things applications do with a TLS
// socket, each run on node:tls and on ktls in both roles. Each side's code is
// what an application would write; nothing here knows which stack it is on.
import { closing } from './closing.js';
import { files } from './files.js';
import { flow } from './flow.js';
import { halfOpenMore } from './half-open.js';
import { big, onError, readAll } from './kit.js';
import type { Scenario } from './run.js';
import type { AppSocket } from './stack.js';
import { state } from './state.js';
import { tls12 } from './tls12.js';
import { wire } from './wire.js';

/** Ending a connection, every way an application does it. */
const ending: Scenario[] = [
  {
    name: 'echo, then the client ends after its answer',
    server: (s) => (onError(s), s.pipe(s)),
    client: (s) => {
      onError(s);
      s.once('data', () => s.end());
      s.resume();
      s.write('hello');
    },
  },
  {
    name: 'the server ends without reading; the client reads and ends on end',
    server: (s) => (onError(s), s.end('bye')),
    client: (s) => {
      onError(s);
      s.on('end', () => s.end());
      readAll(s);
    },
  },
  {
    name: 'the server ends without reading and has no error listener',
    server: (s) => void s.end('bye'),
    client: (s) => {
      onError(s);
      s.on('end', () => s.end());
      readAll(s);
    },
  },
  {
    name: 'the client writes, then ends without reading',
    server: (s) => (onError(s), readAll(s), s.on('end', () => s.end())),
    client: (s) => (onError(s), s.end('request')),
  },
  {
    name: 'the server destroys at once',
    server: (s) => (onError(s), s.destroy()),
    client: (s) => (onError(s), readAll(s)),
  },
  {
    name: 'the server destroys with an error it listens for',
    server: (s) => (onError(s), s.destroy(Object.assign(new Error('boom'), { code: 'EBOOM' }))),
    client: (s) => (onError(s), readAll(s)),
  },
  {
    name: 'the server destroys with an error nobody listens for',
    server: (s) => void s.destroy(Object.assign(new Error('boom'), { code: 'EBOOM' })),
    client: (s) => (onError(s), readAll(s)),
  },
  {
    name: 'the client destroys after its first answer',
    server: (s) => (onError(s), s.pipe(s)),
    client: (s) => {
      onError(s);
      s.once('data', () => s.destroy());
      s.write('ping');
    },
  },
  {
    name: 'the server resets the connection',
    server: (s, ctx) => {
      onError(s);
      s.once('data', () => {
        // node:tls throws here (its handle is not a TCP handle): recorded, then destroyed.
        try {
          s.resetAndDestroy?.();
        } catch (err) {
          ctx.note(`resetAndDestroy threw ${String((err as NodeJS.ErrnoException).code)}`);
          s.destroy();
        }
      });
      readAll(s);
    },
    client: (s) => (onError(s), readAll(s), s.write('x')),
  },
  {
    name: 'the server ends after writing 4 KiB; the client destroys on end (Connection: close)',
    server: (s) => (onError(s), readAll(s), s.end(big(4096))),
    client: (s) => {
      onError(s);
      s.on('end', () => s.destroy());
      readAll(s);
    },
  },
  {
    name: 'the server ends after writing 4 KiB with no error listener; the client ends on end',
    server: (s) => (readAll(s), s.end(big(4096))),
    client: (s) => {
      onError(s);
      s.on('end', () => s.end());
      readAll(s);
    },
  },
  {
    name: 'the server writes 2 MiB and ends; the client reads it after a pause',
    server: (s) => (onError(s), readAll(s), s.end(big(2 << 20))),
    client: async (s, ctx) => {
      onError(s);
      s.pause();
      await ctx.sleep(200);
      s.on('end', () => s.end());
      s.resume();
    },
    settleMs: 4000,
  },
  {
    name: 'the server destroys while 2 MiB are queued to a reader that is not reading',
    server: async (s, ctx) => {
      onError(s);
      s.write(big(2 << 20));
      await ctx.sleep(100);
      s.destroy();
    },
    client: (s) => (onError(s), s.pause()),
  },
  {
    name: 'end() twice, and a write after end',
    server: (s, ctx) => {
      onError(s);
      s.end('a');
      s.end();
      s.write('late', (err) => ctx.note(`write callback ${err ? (err as NodeJS.ErrnoException).code : 'ok'}`));
    },
    client: (s) => (onError(s), readAll(s), s.on('end', () => s.end())),
  },
  {
    name: 'destroy() after end()',
    server: (s) => (onError(s), s.end('x'), s.destroy()),
    client: (s) => (onError(s), readAll(s)),
  },
];

/** Half-open connections. */
const halfOpen: Scenario[] = [
  {
    name: 'allowHalfOpen: the server answers after the client ended',
    serverOptions: { allowHalfOpen: true },
    server: (s) => {
      onError(s);
      readAll(s);
      s.on('end', () => s.end('late answer'));
    },
    client: (s) => (onError(s), readAll(s), s.end('question')),
  },
  {
    name: 'without allowHalfOpen: the server writes after the client ended',
    server: (s, ctx) => {
      onError(s);
      readAll(s);
      s.on('end', () => s.write('late', (err) => ctx.note(`write callback ${err ? (err as NodeJS.ErrnoException).code : 'ok'}`)));
    },
    client: (s) => (onError(s), readAll(s), s.end('question')),
  },
];

/** Reading: flow control, encodings, iteration. */
const reading: Scenario[] = [
  {
    name: 'setEncoding utf8 across a split multi-byte character',
    server: async (s, ctx) => {
      onError(s);
      const euro = Buffer.from('€');
      s.write(euro.subarray(0, 1));
      await ctx.sleep(50);
      s.end(euro.subarray(1));
    },
    client: (s) => {
      onError(s);
      s.setEncoding('utf8');
      s.on('end', () => s.end());
      readAll(s);
    },
  },
  {
    name: 'pause, then resume later',
    server: (s) => (onError(s), s.end(big(64 << 10))),
    client: async (s, ctx) => {
      onError(s);
      s.pause();
      await ctx.sleep(100);
      ctx.note(`readable before resume: ${String(s.readable)}`);
      s.on('end', () => s.end());
      s.resume();
    },
  },
  {
    name: 'async iteration until the end',
    server: (s) => (onError(s), s.end(big(100_000))),
    client: async (s, ctx) => {
      onError(s);
      let n = 0;
      for await (const chunk of s) n += (chunk as Buffer).length;
      ctx.note(`iterated ${n} bytes`);
      s.end();
    },
  },
  {
    name: 'read() on readable',
    server: (s) => (onError(s), s.end('abcdef')),
    client: (s, ctx) => {
      onError(s);
      let got = '';
      s.on('readable', () => {
        for (let c; (c = s.read() as Buffer | null) !== null;) got += c.toString();
      });
      s.on('end', () => (ctx.note(`read ${got}`), s.end()));
    },
  },
];

/** Writing: callbacks, corking, drain. */
const writing: Scenario[] = [
  {
    name: 'write callbacks and the end callback, in order',
    server: (s, ctx) => {
      onError(s);
      readAll(s);
      s.write('one', () => ctx.note('cb one'));
      s.write('two', () => ctx.note('cb two'));
      s.end('three', () => ctx.note('cb end'));
    },
    client: (s) => (onError(s), readAll(s), s.on('end', () => s.end())),
  },
  {
    name: 'cork, three writes, uncork',
    server: (s) => {
      onError(s);
      readAll(s);
      s.cork();
      s.write('a');
      s.write('b');
      s.write('c');
      process.nextTick(() => (s.uncork(), s.end()));
    },
    client: (s) => (onError(s), readAll(s), s.on('end', () => s.end())),
  },
  {
    name: 'write until false, then wait for drain',
    server: (s, ctx) => {
      onError(s);
      readAll(s);
      let n = 0;
      while (s.write(big(64 << 10))) n++;
      ctx.note(`write returned false (after at least one write: ${String(n >= 0)})`);
      s.once('drain', () => (ctx.note('drained'), s.end()));
    },
    client: (s) => (onError(s), readAll(s), s.on('end', () => s.end())),
    settleMs: 4000,
  },
];

/** Timeouts and socket options. */
const options: Scenario[] = [
  {
    name: 'setTimeout fires again after activity',
    server: (s) => (onError(s), s.pipe(s)),
    client: (s, ctx) => {
      onError(s);
      readAll(s);
      let fired = 0;
      s.setTimeout(120);
      s.on('timeout', () => {
        fired++;
        if (fired < 3) s.write('x');
        else {
          ctx.note(`timeouts ${fired}`);
          s.end();
        }
      });
    },
    settleMs: 3000,
  },
  {
    name: 'setTimeout(0) clears a timeout',
    server: (s) => (onError(s), readAll(s), s.on('end', () => s.end())),
    client: async (s, ctx) => {
      onError(s);
      readAll(s);
      s.setTimeout(50);
      s.setTimeout(0);
      await ctx.sleep(200);
      s.end();
    },
  },
  {
    name: 'setTimeout with a callback, idle connection',
    server: (s) => (onError(s), readAll(s), s.on('end', () => s.end())),
    client: (s, ctx) => {
      onError(s);
      readAll(s);
      s.setTimeout(80, () => (ctx.note('callback'), s.end()));
    },
  },
  {
    name: 'setNoDelay, setKeepAlive, ref and unref return the socket',
    server: (s, ctx) => {
      onError(s);
      ctx.note(`setNoDelay ${String(s.setNoDelay(true) === s)}`);
      ctx.note(`setKeepAlive ${String(s.setKeepAlive(true, 1000) === s)}`);
      ctx.note(`unref ${String(s.unref() === s)} ref ${String(s.ref() === s)}`);
      s.end('ok');
    },
    client: (s) => (onError(s), readAll(s), s.on('end', () => s.end())),
  },
];

/** What node:tls knew at the handshake, asked for after it. */
const session: Scenario[] = [
  {
    name: 'session getters return a fresh copy on each call; changing one changes nothing',
    server: (s, ctx) => {
      onError(s);
      readAll(s);
      const t = s as AppSocket & {
        getCipher(): { name: string } | undefined;
        getSharedSigalgs(): string[];
        getFinished(): Buffer | undefined;
        getPeerFinished(): Buffer | undefined;
        getEphemeralKeyInfo(): object | null;
      };
      const cipher = t.getCipher()!;
      const name = cipher.name;
      cipher.name = 'changed';
      ctx.note(`getCipher fresh ${String(t.getCipher() !== cipher)} unchanged ${String(t.getCipher()!.name === name)}`);
      const algs = t.getSharedSigalgs();
      algs.push('changed');
      ctx.note(`getSharedSigalgs fresh ${String(t.getSharedSigalgs() !== algs)} unchanged ${String(!t.getSharedSigalgs().includes('changed'))}`);
      for (const [what, get] of [
        ['getFinished', () => t.getFinished()],
        ['getPeerFinished', () => t.getPeerFinished()],
      ] as const) {
        const f = get()!;
        const first = f[0];
        f[0] ^= 0xff;
        ctx.note(`${what} fresh ${String(get() !== f)} unchanged ${String(get()![0] === first)}`);
      }
      ctx.note(`getEphemeralKeyInfo fresh ${String(t.getEphemeralKeyInfo() !== t.getEphemeralKeyInfo())}`);
      s.end('ok');
    },
    client: (s) => (onError(s), readAll(s), s.on('end', () => s.end())),
  },
];

const tls13: Scenario[] = [
  ...ending,
  ...closing,
  ...halfOpen,
  ...halfOpenMore,
  ...reading,
  ...writing,
  ...flow,
  ...options,
  ...state,
  ...session,
  ...wire,
  ...files,
];

/** Every scenario, in order: TLS 1.3 (node:tls's default), then the TLS 1.2 repeats. */
export const SCENARIOS: Scenario[] = [...tls13, ...tls12(tls13)];
