// Seeded fuzzing: generators for bytes and for JS values of every kind, a TLS
// record mutator, and a loop that stops at the first failing iteration and says
// how to replay it. Every iteration draws from its own PRNG, derived from
// (seed, target, iteration), so one iteration replays alone:
//   KTLS_FUZZ_SEED=<seed> KTLS_FUZZ_ONLY='<target>#<iteration>' node_modules/.bin/tap --disable-coverage dist/test/<file>
import * as util from 'node:util';
import type { Test } from 'tap';
import { prng } from './tls.js';

/** A non-negative integer from the environment, or the default. */
export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${name} must be a non-negative integer, got ${raw}`);
  return n;
}

/** The run's seed: KTLS_FUZZ_SEED, else a fixed number so that CI runs are identical. */
export const FUZZ_SEED = envInt('KTLS_FUZZ_SEED', 0x6b746c73);

/** Each fuzz target and its iterations in a default run (docs/reliability.md quotes them). */
export const FUZZ_TARGETS: ReadonlyArray<{ target: string; iterations: number }> = [
  { target: 'record opener: mutated records (test/record/fuzz-record.test.ts)', iterations: envInt('KTLS_FUZZ_RECORDS', 100_000) },
  { target: 'secrets validator: random objects, 3 targets (test/record/fuzz-secrets.test.ts)', iterations: 3 * envInt('KTLS_FUZZ_SECRETS', 20_000) },
  {
    target: 'binding functions: random argument lists (test/native/fuzz-binding.test.ts; the first 10,000 inside a UML guest)',
    iterations: envInt('KTLS_FUZZ_BINDING', 30_000),
  },
  { target: 'binding Handles: random method calls (test/native/fuzz-binding.test.ts)', iterations: envInt('KTLS_FUZZ_HANDLES', 20_000) },
];
// A single iteration's wall time past which it counts as a hang (generous: the suite also runs under user-mode-linux).
const SLOW_MS = envInt('KTLS_FUZZ_SLOW_MS', 20_000);

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The seed of one iteration's PRNG. */
export function iterationSeed(seed: number, target: string, iteration: number): number {
  let h = Math.imul(seed >>> 0, 0x9e3779b1) ^ fnv1a(target);
  h = Math.imul(h ^ (iteration >>> 0), 0x85ebca6b) ^ Math.floor(iteration / 2 ** 32);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The error that our own traps (Proxies, getters) throw: code under test may let it through, unchanged, and nothing else. */
export class FuzzTrap extends Error {
  readonly code = 'FUZZ_TRAP';
}

/** Draws from one seeded PRNG. */
export class Gen {
  constructor(readonly rand: () => number) {}

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.rand() * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.rand() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** Picks by weight: [[weight, value], ...]. */
  weighted<T>(items: readonly (readonly [number, T])[]): T {
    let r = this.rand() * items.reduce((s, [w]) => s + w, 0);
    for (const [w, v] of items) if ((r -= w) < 0) return v;
    return items[items.length - 1][1];
  }

  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i += 4) {
      const x = (this.rand() * 2 ** 32) >>> 0;
      b[i] = x;
      if (i + 1 < n) b[i + 1] = x >>> 8;
      if (i + 2 < n) b[i + 2] = x >>> 16;
      if (i + 3 < n) b[i + 3] = x >>> 24;
    }
    return b;
  }

  /** A uniformly random unsigned 64-bit value. */
  u64(): bigint {
    return (BigInt((this.rand() * 2 ** 32) >>> 0) << 32n) | BigInt((this.rand() * 2 ** 32) >>> 0);
  }

  /** A random int32 (full range). */
  int32(): number {
    return (this.rand() * 2 ** 32) | 0;
  }

  /** Splits n into random chunk sizes: one piece, a few, or (for short inputs) single bytes. */
  chunking(n: number): number[] {
    const mode = n <= 512 ? this.int(4) : this.int(3);
    if (n === 0 || mode === 0) return [n];
    if (mode === 3) return Array.from({ length: n }, () => 1);
    const sizes: number[] = [];
    for (let left = n; left > 0;) {
      const size = Math.min(left, mode === 1 ? this.range(1, 8) : this.range(1, Math.max(1, Math.ceil(n / 3))));
      sizes.push(size);
      left -= size;
    }
    return sizes;
  }
}

// ---- random JS values ----

export const INTERESTING_NUMBERS: readonly number[] = [
  0,
  -0,
  1,
  -1,
  2,
  3,
  5,
  8,
  12,
  16,
  255,
  256,
  1024,
  4096,
  16384,
  65535,
  65536,
  NaN,
  Infinity,
  -Infinity,
  0.5,
  -0.5,
  1.5,
  1e-300,
  Number.MIN_VALUE,
  Number.EPSILON,
  Number.MAX_VALUE,
  -Number.MAX_VALUE,
  2 ** 31 - 1,
  2 ** 31,
  -(2 ** 31),
  -(2 ** 31) - 1,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 53 - 1,
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 53),
  2 ** 64,
  2 ** 63,
];
const INTERESTING_BIGINTS: readonly bigint[] = [0n, 1n, -1n, 2n ** 31n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 64n, -(2n ** 64n), 2n ** 200n];
const INTERESTING_STRINGS: readonly string[] = [
  '',
  'a',
  '0',
  '1',
  '-1',
  '1e3',
  'NaN',
  'Infinity',
  ' 12 ',
  '0x10',
  '\u0000',
  '\ud800',
  'é',
  'tls',
  'TLSv1.2',
  'TLSv1.3',
  'TLSv1.1',
  'tlsv1.3',
  'TLSv1.3\u0000',
  'aes-128-gcm',
  'AES-128-GCM',
  'aes-256-gcm',
  'chacha20-poly1305',
  'aes-128-ccm',
  'aes-128-cbc',
  '127.0.0.1',
  '::1',
  '0.0.0.0',
  '255.255.255.255',
  '1.2.3',
  '::ffff:127.0.0.1',
  'localhost',
  '__proto__',
  'constructor',
  'toString',
];
const TYPED_ARRAYS = [
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
] as const;
export const BUFFER_SIZES: readonly number[] = [0, 1, 2, 3, 4, 5, 7, 8, 9, 11, 12, 13, 15, 16, 17, 24, 31, 32, 33, 64, 100, 4095, 4096, 16384, 65537];

/** Detaches the memory under `view` (it then reads as length 0) and returns the view. */
export function detach<T extends ArrayBufferView>(view: T): T {
  structuredClone(view.buffer, { transfer: [view.buffer as ArrayBuffer] });
  return view;
}

/** A resizable ArrayBuffer (ES2024), so views over it can shrink after a callee has kept them. */
export function resizableBuffer(size: number, max: number): ArrayBuffer {
  return new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer)(size, { maxByteLength: max });
}

export function resize(ab: ArrayBufferLike, size: number): void {
  (ab as unknown as { resize(n: number): void }).resize(size);
}

export function isResizable(ab: ArrayBufferLike): boolean {
  return (ab as unknown as { resizable?: boolean }).resizable === true;
}

/** A Proxy whose every trap throws {@link FuzzTrap}. */
export function trapProxy(target: object = {}): object {
  const trap = (): never => {
    throw new FuzzTrap('fuzz: trapped property access');
  };
  return new Proxy(target, {
    get: trap,
    has: trap,
    ownKeys: trap,
    getOwnPropertyDescriptor: trap,
    getPrototypeOf: trap,
    set: trap,
    defineProperty: trap,
    deleteProperty: trap,
    apply: trap,
    construct: trap,
  });
}

export function number(g: Gen): number {
  return g.weighted<() => number>([
    [6, () => g.pick(INTERESTING_NUMBERS)],
    [2, () => g.int32()],
    [2, () => g.range(-4096, 70000)],
    [1, () => (g.rand() - 0.5) * 2 ** g.range(0, 70)],
  ])();
}

export function string(g: Gen): string {
  return g.weighted<() => string>([
    [4, () => g.pick(INTERESTING_STRINGS)],
    [2, () => g.bytes(g.range(0, 40)).toString('latin1')],
    [1, () => String.fromCharCode(...Array.from({ length: g.range(1, 8) }, () => g.int(0x10000)))],
    [1, () => 'x'.repeat(g.pick([256, 4097, 70000]))],
  ])();
}

/** A Buffer of an odd size: fresh, pooled, a view at an offset, over a SharedArrayBuffer, or detached. */
export function buffer(g: Gen, size = g.pick(BUFFER_SIZES)): Buffer {
  return g.weighted<() => Buffer>([
    [4, () => g.bytes(size)],
    [2, () => Buffer.alloc(size)],
    [1, () => g.bytes(size + 7).subarray(3, 3 + size)],
    [1, () => Buffer.from(new SharedArrayBuffer(size))],
    [1, () => Buffer.from(resizableBuffer(size, size + 64))],
    [1, () => detach(Buffer.from(new ArrayBuffer(size)))],
  ])();
}

/** A typed array of any element type (or a DataView), empty or not, over any kind of ArrayBuffer. */
export function typedArray(g: Gen): ArrayBufferView {
  const T = g.pick(TYPED_ARRAYS);
  const length = g.pick([0, 0, 1, 2, 3, 4, 16, 100]);
  const bytes = length * T.BYTES_PER_ELEMENT;
  return g.weighted<() => ArrayBufferView>([
    [5, () => new T(length)],
    [1, () => new T(new SharedArrayBuffer(bytes) as unknown as ArrayBuffer)], // the lib types lag: every typed array takes one
    [1, () => new T(resizableBuffer(bytes, bytes + 64))], // length-tracking
    [1, () => detach(new T(length))],
    [1, () => new DataView(new ArrayBuffer(length))],
  ])();
}

const FUNCTIONS: readonly (() => unknown)[] = [
  () => () => 0,
  () =>
    function named() {
      return undefined;
    },
  () => async () => 1,
  () =>
    function* gen() {
      yield 1;
    },
  () => (() => 0).bind(null),
  () => Math.max,
  () => Buffer.isBuffer,
  () => Array.prototype.push,
];

/** Any JS value: primitives of every type, containers, Buffers, typed arrays, functions, Proxies, look-alikes and accessors. */
export function anyValue(g: Gen, depth = 0): unknown {
  const kind = g.weighted<string>([
    [8, 'number'],
    [2, 'bigint'],
    [4, 'string'],
    [1, 'symbol'],
    [2, 'nullish'],
    [1, 'boolean'],
    [depth < 2 ? 2 : 0, 'array'],
    [depth < 2 ? 2 : 0, 'object'],
    [3, 'buffer'],
    [3, 'typed'],
    [1, 'arraybuffer'],
    [1, 'function'],
    [1, 'class'],
    [1, 'proxy'],
    [1, 'lookalike'],
    [1, 'coercing'],
    [depth < 2 ? 1 : 0, 'accessor'],
    [1, 'builtin'],
  ]);
  switch (kind) {
    case 'number':
      return number(g);
    case 'bigint':
      return g.chance(0.6) ? g.pick(INTERESTING_BIGINTS) : g.u64() - (g.chance(0.2) ? 1n << 63n : 0n);
    case 'string':
      return string(g);
    case 'symbol':
      return g.pick([Symbol(), Symbol('fuzz'), Symbol.iterator, Symbol.for('ktls'), Symbol.toPrimitive]);
    case 'nullish':
      return g.chance(0.5) ? null : undefined;
    case 'boolean':
      return g.chance(0.5);
    case 'array':
      return g.weighted<() => unknown[]>([
        [4, () => Array.from({ length: g.range(0, 4) }, () => anyValue(g, depth + 1))],
        [2, () => Array.from({ length: g.range(0, 4) }, () => buffer(g))],
        [1, () => new Array(g.pick([1, 5, 1025, 100000]))], // sparse
        [1, () => Array.from({ length: 1025 }, () => Buffer.alloc(0))],
        [
          1,
          () => {
            const a = [buffer(g), buffer(g)];
            Object.defineProperty(a, 1, {
              get: () => {
                throw new FuzzTrap('fuzz: element getter');
              },
            });
            return a;
          },
        ],
      ])();
    case 'object':
      return g.weighted<() => object>([
        [3, () => Object.fromEntries(Array.from({ length: g.range(0, 4) }, () => [string(g), anyValue(g, depth + 1)]))],
        [1, () => ({})],
        [1, () => Object.create(null) as object],
        [1, () => ({ length: number(g) })],
        [1, () => ({ __proto__: null, toString: null, valueOf: null })],
      ])();
    case 'buffer':
      return buffer(g);
    case 'typed':
      return typedArray(g);
    case 'arraybuffer':
      return g.pick([
        () => new ArrayBuffer(g.pick(BUFFER_SIZES)),
        () => new SharedArrayBuffer(8),
        () => {
          const ab = new ArrayBuffer(8);
          structuredClone(ab, { transfer: [ab] });
          return ab;
        },
      ])();
    case 'function':
      return g.pick(FUNCTIONS)();
    case 'class':
      return class Fuzz {};
    case 'proxy':
      return g.weighted<() => object>([
        [3, () => trapProxy()],
        [1, () => trapProxy(Buffer.alloc(16))],
        [1, () => trapProxy(() => 0)],
        [1, () => new Proxy(Buffer.alloc(16), {})], // transparent: not a Buffer to a brand check
        [1, () => new Proxy([Buffer.alloc(4)], {})],
      ])();
    case 'lookalike':
      return g.pick<() => object>([
        () => Object.create(Buffer.prototype) as object,
        () => Object.setPrototypeOf({ length: 16 }, Buffer.prototype) as object,
        () => Object.create(Int32Array.prototype) as object,
        () => Object.create(Array.prototype) as object,
        () => ({ type: 'Buffer', data: [1, 2, 3] }),
        () => ({ 0: 1, length: 1 }),
      ])();
    case 'coercing':
      return g.pick<() => object>([
        () => ({ valueOf: () => 3 }),
        () => ({ [Symbol.toPrimitive]: () => 7 }),
        () => ({ toString: () => 'TLSv1.3' }),
        () => ({
          valueOf: () => {
            throw new FuzzTrap('fuzz: valueOf');
          },
        }),
        () => Object(5) as object,
        () => Object(5n) as object,
        () => Object('s') as object,
      ])();
    case 'accessor': {
      // A getter that answers something new on every read.
      const o: Record<string, unknown> = {};
      for (const key of ['value', 'length', string(g)]) Object.defineProperty(o, key, { get: () => anyValue(g, depth + 1), enumerable: true });
      return o;
    }
    default:
      return g.pick<() => unknown>([
        () => new Date(0),
        () => /x/g,
        () => new Map(),
        () => new Set([1]),
        () => Promise.resolve(1),
        () => new Error('e'),
        () => new WeakRef({}),
        () => globalThis,
        () => process,
      ])();
  }
}

// ---- byte mutation ----

/** Where TLS record headers sit in a byte string, and lengths worth writing into their length fields. */
export interface RecordShape {
  headers: readonly number[];
  lengths: readonly number[];
}

const TYPE_BYTES = [0, 1, 19, 20, 21, 22, 23, 24, 0x7f, 0x80, 0xff];
const VERSIONS = [0x0303, 0x0300, 0x0301, 0x0302, 0x0304, 0x0203, 0x0000, 0xffff, 0x7f1c, 0xfefd];
const BYTE_VALUES = [0x00, 0x01, 0x7f, 0x80, 0xff];

/** A mutated copy of `input` (1..4 edits) and the edits, for the failure report. */
export function mutate(g: Gen, input: Buffer, shape?: RecordShape): { bytes: Buffer; ops: string[] } {
  let b = Buffer.from(input);
  const ops: string[] = [];
  const rounds = g.weighted([
    [6, 1],
    [2, 2],
    [1, 3],
    [1, 4],
  ] as const);
  for (let r = 0; r < rounds; r++) {
    const header = shape && shape.headers.length > 0 ? g.pick(shape.headers) : 0;
    const op = g.weighted<string>([
      [4, 'flip'],
      [3, 'set'],
      [2, 'insert'],
      [2, 'delete'],
      [1, 'truncate'],
      [1, 'duplicate'],
      [1, 'copy'],
      [shape ? 2 : 0, 'type'],
      [shape ? 2 : 0, 'version'],
      [shape ? 3 : 0, 'length'],
    ]);
    const pos = (extra = 0): number => g.int(b.length + extra);
    switch (op) {
      case 'flip': {
        if (b.length === 0) break;
        const at = pos();
        const bit = g.int(8);
        b[at] ^= 1 << bit;
        ops.push(`flip ${at}.${bit}`);
        break;
      }
      case 'set': {
        if (b.length === 0) break;
        const at = pos();
        const v = g.chance(0.5) ? g.pick(BYTE_VALUES) : g.int(256);
        b[at] = v;
        ops.push(`set ${at}=${v}`);
        break;
      }
      case 'insert': {
        const at = pos(1);
        const add = g.chance(0.2) ? Buffer.from([g.pick(TYPE_BYTES), 3, 3, g.int(256), g.int(256)]) : g.bytes(g.range(1, 32));
        b = Buffer.concat([b.subarray(0, at), add, b.subarray(at)]);
        ops.push(`insert ${at}+${add.toString('hex')}`);
        break;
      }
      case 'delete': {
        if (b.length === 0) break;
        const at = pos();
        const n = Math.min(b.length - at, g.chance(0.5) ? 1 : g.range(1, 64));
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + n)]);
        ops.push(`delete ${at}-${n}`);
        break;
      }
      case 'truncate': {
        const n = pos();
        b = b.subarray(0, n);
        ops.push(`truncate ${n}`);
        break;
      }
      case 'duplicate': {
        if (b.length === 0) break;
        const at = pos();
        const n = Math.min(b.length - at, g.range(1, 600));
        const to = pos(1);
        b = Buffer.concat([b.subarray(0, to), b.subarray(at, at + n), b.subarray(to)]);
        ops.push(`duplicate ${at}-${n}@${to}`);
        break;
      }
      case 'copy': {
        if (b.length < 2) break;
        const from = pos();
        const to = pos();
        const n = Math.min(b.length - Math.max(from, to), g.range(1, 32));
        b.copy(b, to, from, from + n);
        ops.push(`copy ${from}-${n}@${to}`);
        break;
      }
      case 'type': {
        if (header >= b.length) break;
        const v = g.chance(0.8) ? g.pick(TYPE_BYTES) : g.int(256);
        b[header] = v;
        ops.push(`type@${header}=${v}`);
        break;
      }
      case 'version': {
        if (header + 2 >= b.length) break;
        const v = g.chance(0.8) ? g.pick(VERSIONS) : g.int(0x10000);
        b.writeUInt16BE(v, header + 1);
        ops.push(`version@${header}=${v.toString(16)}`);
        break;
      }
      case 'length': {
        if (header + 4 >= b.length) break;
        const old = b.readUInt16BE(header + 3);
        const v =
          g.weighted<number>([
            [3, g.pick(shape!.lengths)],
            [2, Math.max(0, old + g.pick([-17, -16, -2, -1, 1, 2, 16]))],
            [1, old],
            [1, g.int(0x10000)],
            [1, g.pick([0, 1, 0xffff, 0x8000])],
          ]) & 0xffff;
        b.writeUInt16BE(v, header + 3);
        ops.push(`length@${header}=${v}`);
        break;
      }
    }
  }
  return { bytes: b, ops };
}

// ---- the loop ----

export interface FuzzFailure {
  target: string;
  seed: number;
  iteration: number;
  error: unknown;
  replay: string;
}

export interface FuzzRun {
  target: string;
  iterations: number;
  ms: number;
  slowestMs: number;
  failure: FuzzFailure | null;
}

/** `KTLS_FUZZ_ONLY='target#i'`: replay that one iteration and run nothing else. */
function only(): { target: string; iteration: number } | null {
  const raw = process.env.KTLS_FUZZ_ONLY;
  if (!raw) return null;
  const at = raw.lastIndexOf('#');
  const iteration = Number(raw.slice(at + 1));
  if (at < 0 || !Number.isSafeInteger(iteration) || iteration < 0) throw new RangeError(`KTLS_FUZZ_ONLY must be target#iteration, got ${raw}`);
  return { target: raw.slice(0, at), iteration };
}

/** The shell line that replays one iteration of `file` (a test under dist/test/). */
export function replayLine(file: string, target: string, iteration: number, seed = FUZZ_SEED): string {
  return `KTLS_FUZZ_SEED=${seed} KTLS_FUZZ_ONLY='${target}#${iteration}' node_modules/.bin/tap --disable-coverage dist/test/${file}`;
}

/**
 * Runs `body` for iterations [0, count) of `target`, each with its own Gen, and
 * stops at the first that throws (a failed check or an unexpected error) or that
 * runs past the hang bound. `onIteration` hears of each iteration before it
 * starts (so a process that dies can say where).
 */
export async function fuzz(
  file: string,
  target: string,
  count: number,
  body: (g: Gen, i: number) => void | Promise<void>,
  onIteration?: (i: number) => void,
): Promise<FuzzRun> {
  const focus = only();
  const list = focus ? (focus.target === target ? [focus.iteration] : []) : Array.from({ length: count }, (_, i) => i);
  const start = performance.now();
  let slowestMs = 0;
  for (const i of list) {
    onIteration?.(i);
    const began = performance.now();
    let error: unknown = null;
    try {
      await body(new Gen(prng(iterationSeed(FUZZ_SEED, target, i))), i);
    } catch (err) {
      error = err ?? new Error(`iteration threw ${String(err)}`);
    }
    const took = performance.now() - began;
    slowestMs = Math.max(slowestMs, took);
    if (!error && took > SLOW_MS) error = new Error(`iteration took ${Math.round(took)} ms (bound ${SLOW_MS} ms, KTLS_FUZZ_SLOW_MS)`);
    if (error) {
      const failure = { target, seed: FUZZ_SEED, iteration: i, error, replay: replayLine(file, target, i) };
      return { target, iterations: list.indexOf(i) + 1, ms: performance.now() - start, slowestMs, failure };
    }
  }
  return { target, iterations: list.length, ms: performance.now() - start, slowestMs, failure: null };
}

/** A fuzz failure as one readable block: what failed, where, and how to replay it. */
export function describeFailure(f: FuzzFailure): string {
  const e = f.error as { stack?: string };
  return `${f.target}: iteration ${f.iteration} (seed ${f.seed}) failed\n${e?.stack ?? String(f.error)}\nreplay: ${f.replay}`;
}

/** Asserts a run found nothing; on a failure, prints seed, iteration, the error and the replay line. */
export function reportRun(t: Test, run: FuzzRun, what: string): void {
  t.comment(`${run.target}: ${run.iterations} iterations in ${(run.ms / 1000).toFixed(1)} s (slowest ${run.slowestMs.toFixed(1)} ms), seed ${FUZZ_SEED}`);
  if (run.failure) t.comment(describeFailure(run.failure));
  t.ok(run.failure === null, `${run.target}: ${what}`, run.failure ? { diagnostic: true, replay: run.failure.replay } : {});
}

// Never through a value's own inspect or getters: look-alikes and traps throw there.
const INSPECT = { depth: 1, maxArrayLength: 6, maxStringLength: 40, breakLength: Infinity, showProxy: true, getters: false, customInspect: false };

/** A value as text for a failure report, whatever the value. */
export function show(value: unknown): string {
  try {
    return util.inspect(value, INSPECT).replace(/\s*\n\s*/g, ' ');
  } catch {
    return `<${typeof value}>`;
  }
}

/** An error's class name and code, as one short key for tallies. */
export function errorKey(err: unknown): string {
  const e = err as { constructor?: { name?: string }; code?: unknown };
  return `${e?.constructor?.name ?? typeof err}:${String(e?.code)}`;
}

/** Adds one to `counts[key]`. */
export function tally(counts: Record<string, number>, key: string, n = 1): void {
  counts[key] = (counts[key] ?? 0) + n;
}

/** Throws an Error with `message` (and optional detail) unless `cond`: the fuzz loop turns it into the report. */
export function check(cond: unknown, message: string, detail?: () => string): asserts cond {
  if (!cond) throw new Error(detail ? `${message}\n${detail()}` : message);
}
