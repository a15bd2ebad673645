// Fuzzes the addon itself: every binding function and every Handle method on
// random argument lists. Each call returns what lib/native/binding.ts says it returns
// (bytes or -errno, a bigint, a string, an array, an object) or throws a
// TypeError/RangeError with a code. The fuzzing runs in a child process so that
// a crash is a failed test naming the seed and iteration, not a lost run.
//
// The only fds that reach the addon are ones this file made: a fuzzed close,
// write or shutdown must never land on the test runner's stdio or tap's pipes.
// Anything else in an fd position is a number no fd can have, or not an fd.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as util from 'node:util';
import type { Test } from 'tap';
import { loadBinding, type Binding, type NativeHandle } from '../../lib/native/binding.js';
import { handleFd } from '../../lib/native/net-handle.js';
import { loopbackPair } from '../../lib/native/probe.js';
import {
  FUZZ_SEED,
  FuzzTrap,
  anyValue,
  buffer,
  check,
  detach,
  envInt,
  errorKey,
  fuzz,
  isResizable,
  number,
  replayLine,
  resize,
  resizableBuffer,
  show,
  string,
  tally,
  typedArray,
  type FuzzRun,
  type Gen,
} from '../helpers/fuzz.js';

const FILE = 'native/fuzz-binding.test.js';
// Iterations of 1-3 binding function calls. Under user-mode-linux every syscall costs milliseconds (30 000
// took 140 s under UML 6.1 and over 150 s under 5.10, against 2 s here), so a guest runs the first 10 000
// of the same seeded sequence: the host run covers all of them, the guest adds real kTLS behind them.
const CALLS = envInt('KTLS_FUZZ_BINDING', process.env.KTLS_KERNEL_LABEL?.startsWith('UML') ? 10_000 : 30_000);
const HANDLES = envInt('KTLS_FUZZ_HANDLES', 20_000); // Handles, each given 1-6 method calls
const CHILD_MS = envInt('KTLS_FUZZ_CHILD_MS', 150_000); // a child still running after this is hung
const VERBOSE = process.env.KTLS_FUZZ_VERBOSE === '1'; // the child prints every call before making it
const NO_FD = 2 ** 30;
const SO_PEERPIDFD = 77; // <asm-generic/socket.h>, Linux 6.5 // above fs.nr_open's ceiling: no process can have an fd this high

type Kind =
  | 'fd'
  | 'fresh'
  | 'direction'
  | 'version'
  | 'cipher'
  | 'buffer'
  | 'int'
  | 'count'
  | 'spliceFlags'
  | 'flag'
  | 'pipeSize'
  | 'events'
  | 'family'
  | 'address'
  | 'path'
  | 'statOut'
  | 'port'
  | 'level'
  | 'optname'
  | 'buffers'
  | 'recordType'
  | 'how'
  | 'offset'
  | 'length'
  | 'key'
  | 'nonce'
  | 'seq'
  | 'lingerSeconds';

const isErrno = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v < 0 && v >= -4095;
const isCount = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const zeroOrErrno = (v: unknown): boolean => v === 0 || isErrno(v);
const countOrErrno = (v: unknown): boolean => isCount(v) || isErrno(v);
const fdPair = (v: unknown): boolean => Array.isArray(v) && v.length === 2 && v.every(isCount);
const TCP_INFO_FIELDS = [
  'state',
  'options',
  'rtt',
  'sndMss',
  'sndCwnd',
  'totalRetrans',
  'bytesAcked',
  'bytesReceived',
  'segsOut',
  'segsIn',
  'dataSegsIn',
  'dataSegsOut',
  'bytesSent',
];

/** Each binding function: what its arguments are, what it may return, and whether it makes fds (ours to close). */
const FUNCTIONS: Record<string, { args: Kind[]; returns: (v: unknown, args: unknown[]) => boolean; makesFds?: true }> = {
  setUlp: { args: ['fd'], returns: zeroOrErrno },
  getUlp: { args: ['fd'], returns: (v) => typeof v === 'string' || isErrno(v) },
  setKeys: { args: ['fd', 'direction', 'version', 'cipher', 'key', 'nonce', 'seq'], returns: zeroOrErrno },
  getSeq: { args: ['fd', 'direction'], returns: (v) => (typeof v === 'bigint' && v >= 0n && v < 1n << 64n) || isErrno(v) },
  adopt: { args: ['fd', 'flag'], returns: countOrErrno, makesFds: true },
  setRecordSize: { args: ['fd', 'int'], returns: zeroOrErrno },
  getRecordSize: { args: ['fd'], returns: (v) => (isCount(v) && (v as number) <= 0xffff) || isErrno(v) },
  sendfile: { args: ['fd', 'fd', 'count', 'count'], returns: countOrErrno },
  splice: { args: ['fd', 'fd', 'count', 'spliceFlags'], returns: countOrErrno },
  pipe: { args: ['flag', 'pipeSize'], returns: (v) => fdPair(v) || isErrno(v), makesFds: true },
  socketPair: { args: [], returns: (v) => fdPair(v) || isErrno(v), makesFds: true },
  ready: { args: ['fd', 'events'], returns: (v) => (isCount(v) && (v as number) <= 7) || isErrno(v) },
  fdKind: { args: ['fd'], returns: (v) => [1, 2, 3, 4].includes(v as number) || isErrno(v) },
  fdFlags: { args: ['fd'], returns: countOrErrno },
  openFile: { args: ['path'], returns: countOrErrno, makesFds: true },
  statFd: { args: ['fd', 'statOut'], returns: zeroOrErrno },
  statPath: { args: ['path', 'statOut'], returns: zeroOrErrno },
  readFd: { args: ['fd', 'buffer', 'offset', 'length'], returns: (v, a) => (isCount(v) && (v as number) <= (a[3] as number)) || isErrno(v) },
  writeFd: { args: ['fd', 'buffer', 'offset', 'length'], returns: (v, a) => (isCount(v) && (v as number) <= (a[3] as number)) || isErrno(v) },
  tcpInfo: {
    args: ['fd'],
    returns: (v) => isErrno(v) || (typeof v === 'object' && v !== null && TCP_INFO_FIELDS.every((k) => typeof (v as Record<string, unknown>)[k] === 'number')),
  },
  tlsDiag: {
    args: ['fd'],
    returns: (v) =>
      isErrno(v) ||
      (typeof v === 'object' &&
        v !== null &&
        typeof (v as Record<string, unknown>).ulp === 'string' &&
        ['version', 'cipher', 'txConf', 'rxConf'].every((k) => isCount((v as Record<string, unknown>)[k])) &&
        ['zeroCopyTx', 'rxNoPad'].every((k) => typeof (v as Record<string, unknown>)[k] === 'boolean')),
  },
  fastOpenSocket: { args: ['family'], returns: countOrErrno, makesFds: true },
  connectFd: { args: ['fd', 'address', 'port'], returns: zeroOrErrno },
  tcpSocket: { args: ['family'], returns: countOrErrno, makesFds: true },
  bindFd: { args: ['fd', 'address', 'port'], returns: zeroOrErrno },
  closeFd: { args: ['fresh'], returns: zeroOrErrno },
  // An option's value may itself be negative (SO_PEEK_OFF is -1 when unset): any int32.
  getsockoptInt: { args: ['fd', 'level', 'optname'], returns: (v) => typeof v === 'number' && (v | 0) === v },
  setsockoptInt: { args: ['fd', 'level', 'optname', 'int'], returns: zeroOrErrno },
  peerConnected: { args: ['fd'], returns: zeroOrErrno },
  setLinger: { args: ['fd', 'flag', 'lingerSeconds'], returns: zeroOrErrno },
  tcpEntered: { args: ['fd'], returns: countOrErrno },
};

const METHODS: Record<string, { args: Kind[]; returns: (v: unknown, args: unknown[]) => boolean }> = {
  poll: { args: ['events'], returns: zeroOrErrno },
  recv: { args: ['buffer', 'offset', 'length'], returns: (v, a) => (isCount(v) && (v as number) <= (a[2] as number)) || isErrno(v) },
  send: { args: ['buffers', 'recordType'], returns: countOrErrno },
  shutdown: { args: ['how'], returns: zeroOrErrno },
  close: { args: [], returns: zeroOrErrno },
  ref: { args: [], returns: (v) => v === undefined },
  unref: { args: [], returns: (v) => v === undefined },
};

/** This process's open fds and what each is, for the leak check and its report. */
function openFds(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      out[fd] = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      // the directory's own fd, gone by now
    }
  }
  return out;
}

function isTypedArgError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return (err instanceof TypeError && code === 'ERR_INVALID_ARG_TYPE') || (err instanceof RangeError && code === 'ERR_OUT_OF_RANGE');
}

const showArgs = (args: readonly unknown[]): string => args.map(show).join(', ');

// ---------------------------------------------------------------- the child

/** fds one iteration made; every one is closed at its end. */
class Fds {
  readonly pool: number[] = [];
  /** A regular file that paths may name (opened read-only only). */
  tempFile = '/dev/null';
  readonly #all = new Set<number>();

  add(fd: number, pooled = true): number {
    this.#all.add(fd);
    if (pooled) this.pool.push(fd);
    return fd;
  }

  /** An fd a callee took over (closeFd, Handle): no longer ours to close. */
  release(fd: number): void {
    this.#all.delete(fd);
  }

  closeAll(): void {
    for (const fd of this.#all) fs.closeSync(fd);
    this.#all.clear();
  }
}

interface Shared {
  b: Binding;
  tcp: number[]; // a connected loopback pair, for the TCP, ULP and kTLS paths
  tempFile: string; // reopened read-only each iteration: sendfile and splice can read it but nothing can grow it
  counts: Record<string, number>;
}

/** The fds every iteration starts from: all non-blocking or never blocking, so no fuzzed call can wait. */
function iterationFds(s: Shared): Fds {
  const fds = new Fds();
  const pair = s.b.socketPair();
  const pipe = s.b.pipe(1, 0);
  check(Array.isArray(pair) && Array.isArray(pipe), 'socketPair() or pipe() failed in setup');
  for (const fd of [...pair, ...pipe]) fds.add(fd);
  fds.add(fs.openSync('/dev/null', 'r+'));
  fds.add(fs.openSync(s.tempFile, 'r'));
  fds.tempFile = s.tempFile;
  const tcp = s.b.fastOpenSocket(s.b.constants.AF_INET); // unconnected
  if (tcp >= 0) fds.add(tcp);
  for (const fd of s.tcp) fds.pool.push(fd);
  return fds;
}

/** A plausible value of a kind, or any value at all; never an fd this process did not make for the purpose. */
function arg(g: Gen, kind: Kind, fds: Fds, b: Binding): unknown {
  const k = b.constants;
  if (kind === 'fresh') {
    if (g.chance(0.8)) return fds.add(fs.openSync('/dev/null', 'r'), false);
    return safeNonFd(g, fds);
  }
  if (kind === 'fd') return g.chance(0.8) ? g.pick(fds.pool) : safeNonFd(g, fds);
  if (g.chance(0.15)) return sanitize(anyValue(g), kind, fds);
  switch (kind) {
    case 'direction':
      return g.pick([k.TLS_TX, k.TLS_RX, 0, 3, -1, g.int32()]);
    case 'version':
      return g.pick([k.TLS_1_2_VERSION, k.TLS_1_3_VERSION, 0, 0x0301, 0xffff, 0x10303, g.int32()]);
    case 'cipher':
      return g.pick([...Object.values(b.ciphers).map((c) => c.id), 0, 50, 0x10033, g.int32()]);
    case 'buffer':
      return buffer(g, g.pick([0, 1, 8, 12, 16, 32, 33, 64, 4096, 65536]));
    // Mostly the sizes setKeys takes, so that calls reach setsockopt(SOL_TLS).
    case 'key':
      return buffer(g, g.pick([16, 32, 16, 32, 0, 15, 24, 33]));
    case 'nonce':
      return buffer(g, g.chance(0.8) ? 12 : g.pick([0, 8, 11, 13, 16]));
    case 'seq':
      return buffer(g, g.chance(0.8) ? 8 : g.pick([0, 7, 9, 12]));
    case 'int':
    case 'offset':
    case 'length':
      return g.chance(0.5) ? g.range(-2, 70000) : number(g);
    case 'count':
      return g.pick([0, 1, 5, 4096, 65536, 2 ** 31, 2 ** 53 - 1, number(g)]);
    case 'spliceFlags':
      return g.pick([0, k.SPLICE_F_NONBLOCK, k.SPLICE_F_NONBLOCK | k.SPLICE_F_MOVE, k.SPLICE_F_MORE, -1, g.int32()]);
    case 'flag':
      return g.pick([0, 1, -1, 2, 2 ** 31 - 1]);
    case 'pipeSize':
      return g.pick([0, 1, 4096, 65536, 1 << 20, 2 ** 31 - 1, -1, g.int32()]);
    case 'events':
      return g.pick([0, 1, 2, 3, 4, 7, -1, g.int32()]);
    case 'family':
      return g.pick([k.AF_INET, k.AF_INET6, 0, 1, 16, 17, 44, -1, g.int32()]);
    // Files that exist (read-only opens only), that do not, and strings the addon must refuse.
    case 'path':
      return g.chance(0.8) ? g.pick([fds.tempFile, '/dev/null', '/proc/self/status', '/nonexistent/x', '', 'a\u0000b', '.']) : string(g);
    case 'statOut':
      return g.weighted<() => unknown>([
        [6, () => new Float64Array(8)],
        [1, () => new Float64Array(g.pick([0, 7, 9]))],
        [1, () => new Int32Array(8)],
        [1, () => anyValue(g)],
      ])();
    case 'address':
      return g.chance(0.7) ? g.pick(['127.0.0.1', '::1', '0.0.0.0', '::', '256.0.0.1', '', '127.0.0.1\u0000x']) : string(g);
    // Only port 0 (refused by loopback) or values the addon refuses: nothing reaches a real service.
    case 'port':
      return g.chance(0.7) ? 0 : sanitize(number(g), 'port', fds);
    case 'level':
      return g.pick([k.SOL_SOCKET, k.SOL_TCP, k.SOL_TLS, 0, 41, g.range(0, 300), g.int32()]);
    case 'optname':
      return g.chance(0.8) ? g.range(0, 80) : g.int32();
    case 'recordType':
      return g.pick([0, 20, 21, 22, 23, 24, 255, 256, -1, g.int32()]);
    case 'how':
      return g.pick([0, 1, 2, 3, -1, g.int32()]);
    // Never a positive linger time: a later close() of a socket with unsent data would block for it.
    case 'lingerSeconds':
      return g.pick([0, 0, -1, -(2 ** 31)]); // negative: refused by the addon
    case 'buffers':
      return g.weighted<() => unknown>([
        [5, () => Array.from({ length: g.range(0, 4) }, () => buffer(g))],
        [1, () => Array.from({ length: g.pick([1024, 1025]) }, () => Buffer.alloc(1))],
        [1, () => [buffer(g), anyValue(g)]],
        [2, () => anyValue(g)],
      ])();
  }
}

/** A number no fd of this process can be, or a value that is not an int32 at all. */
function safeNonFd(g: Gen, fds: Fds): unknown {
  return sanitize(g.chance(0.5) ? g.pick([-1, -2, -(2 ** 31), NO_FD, NO_FD + g.int(2 ** 30 - 1), 2 ** 31 - 1]) : anyValue(g), 'fd', fds);
}

/** Random values in fd and port positions must not name a real fd or a real port: move them out of reach. */
function sanitize(v: unknown, kind: Kind, fds: Fds): unknown {
  if (typeof v !== 'number' || !Number.isInteger(v)) return v;
  if (kind === 'port') return v >= 0 && v <= 2 ** 31 - 1 ? 0 : v;
  if (kind === 'lingerSeconds') return v > 0 ? 0 : v;
  if ((kind === 'fd' || kind === 'fresh') && v >= 0 && v < NO_FD && !fds.pool.includes(v)) return NO_FD + v; // catches -0 too
  return v;
}

/** Random arity: usually the declared arguments, sometimes fewer or extra. */
function argList(g: Gen, kinds: readonly Kind[], fds: Fds, b: Binding): unknown[] {
  const args = kinds.map((kind) => arg(g, kind, fds, b));
  // Mostly a range inside the buffer, so that the call reaches the syscall.
  const at = kinds.indexOf('offset');
  const buf = args[at - 1];
  if (at > 0 && util.types.isUint8Array(buf) && g.chance(0.7)) {
    // a brand check: look-alikes pass Buffer.isBuffer
    args[at] = g.int(buf.length + 1);
    args[at + 1] = g.int(buf.length - (args[at] as number) + 1);
  }
  if (g.chance(0.05)) return args.slice(0, g.int(args.length + 1));
  if (g.chance(0.05)) return [...args, anyValue(g)];
  return args;
}

/** Calls `f`, checks the outcome against `returns`, and tallies it under `name`. */
function callChecked(
  name: string,
  f: () => unknown,
  returns: (v: unknown) => boolean,
  counts: Record<string, number>,
  args: readonly unknown[],
): { ok: boolean; value?: unknown } {
  if (VERBOSE) process.stderr.write(`${name}(${showArgs(args)})\n`);
  let value: unknown;
  try {
    value = f();
  } catch (err) {
    const ours = err instanceof FuzzTrap;
    check(isTypedArgError(err) || ours, `${name} threw ${errorKey(err)}`, () => `${name}(${showArgs(args)}): ${(err as Error)?.stack ?? show(err)}`);
    tally(counts, `${name} ${ours ? 'passed our exception through' : errorKey(err)}`);
    return { ok: false };
  }
  check(returns(value), `${name} returned a value of an undocumented type or range`, () => `${name}(${showArgs(args)}) returned ${show(value)}`);
  tally(counts, `${name} ${isErrno(value) ? 'errno' : 'returned'}`);
  return { ok: true, value };
}

function closeMade(value: unknown, b: Binding): void {
  for (const fd of Array.isArray(value) ? value : [value]) if (typeof fd === 'number' && fd >= 0) b.closeFd(fd);
}

function functionsIteration(s: Shared, g: Gen): void {
  const fds = iterationFds(s);
  try {
    for (let n = g.range(1, 3); n > 0; n--) {
      const name = g.pick(Object.keys(FUNCTIONS));
      const spec = FUNCTIONS[name];
      const args = argList(g, spec.args, fds, s.b);
      const fn = (s.b as unknown as Record<string, (...a: unknown[]) => unknown>)[name];
      const r = callChecked(
        name,
        () => fn(...args),
        (v) => spec.returns(v, args),
        s.counts,
        args,
      );
      if (r.ok && spec.makesFds) closeMade(r.value, s.b);
      // getsockopt(SO_PEERPIDFD) answers with a new fd (a pidfd for the peer): ours to close.
      if (name === 'getsockoptInt' && r.ok && args[1] === s.b.constants.SOL_SOCKET && args[2] === SO_PEERPIDFD && (r.value as number) >= 0)
        fs.closeSync(r.value as number);
      if (name === 'closeFd' && r.ok && r.value === 0) fds.release(args[0] as number);
    }
  } finally {
    fds.closeAll();
  }
}

async function handleIteration(s: Shared, g: Gen): Promise<void> {
  const fds = iterationFds(s);
  const Handle = s.b.Handle as unknown as new (...a: unknown[]) => NativeHandle;
  let handle: NativeHandle | null = null;
  try {
    const peers: number[] = [];
    // The fd a Handle takes over: made for it alone, as closeFd's.
    const own = g.weighted<() => unknown>([
      [
        4,
        () => {
          const pair = s.b.socketPair() as number[];
          fds.add(pair[1]);
          peers.push(pair[1]);
          return fds.add(pair[0], false);
        },
      ],
      [1, () => fds.add(fs.openSync('/dev/null', 'r'), false)],
      [1, () => safeNonFd(g, fds)],
    ])();
    const onPoll = g.weighted<() => unknown>([
      [6, () => (): void => tally(s.counts, 'onPoll called')],
      [
        1,
        () => (): never => {
          throw new FuzzTrap('fuzz: onPoll');
        },
      ], // must reach 'uncaughtException', nothing worse
      [
        2,
        () => {
          const v = anyValue(g);
          return typeof v === 'function' ? null : v;
        },
      ],
    ])();
    const out = g.weighted<() => unknown>([
      [4, () => new Int32Array(g.pick([1, 1, 2, 8]))],
      [1, () => new Int32Array(new SharedArrayBuffer(4))],
      [1, () => new Int32Array(resizableBuffer(4, 64))],
      [1, () => new Int32Array(0)],
      [1, () => typedArray(g)],
      [1, () => anyValue(g)],
    ])();
    const ctorArgs = g.chance(0.9) ? [own, onPoll, out] : [own, onPoll, out].slice(0, g.int(3));
    const made = callChecked(
      'new Handle',
      () => new Handle(...ctorArgs),
      (v) => typeof v === 'object' && v !== null,
      s.counts,
      ctorArgs,
    );
    if (!made.ok) return;
    handle = made.value as NativeHandle;
    if (typeof own === 'number') fds.release(own);
    check(handle.fd === own, `Handle.fd ${handle.fd} is not the fd it was given (${String(own)})`);
    if (g.chance(0.15)) handle.close();

    for (let n = g.range(1, 6); n > 0; n--) {
      const action = g.weighted<string>([
        [10, 'method'],
        [2, 'peer writes'],
        [1, 'yield'],
        [1, 'shrink out'],
      ]);
      if (VERBOSE && action !== 'method' && action !== 'shrink out') process.stderr.write(`(${action})\n`);
      if (action === 'peer writes' && peers.length > 0) {
        try {
          fs.writeSync(peers[0], g.bytes(g.range(1, 5000)));
        } catch (err) {
          // Full, or the Handle's end was shut down or closed by an earlier call.
          check(['EAGAIN', 'EPIPE', 'ECONNRESET'].includes((err as NodeJS.ErrnoException).code ?? ''), `peer write: ${String(err)}`);
        }
      } else if (action === 'yield') {
        await new Promise((resolve) => setImmediate(resolve)); // lets onPoll run
      } else if (action === 'shrink out') {
        // The caller's out array loses its memory after the Handle kept it.
        if (util.types.isInt32Array(out) && !(out.buffer instanceof SharedArrayBuffer)) {
          // a brand check: look-alikes pass instanceof
          const how = isResizable(out.buffer) ? 'resized to 0' : 'detached';
          if (VERBOSE) process.stderr.write(`(out array ${how})\n`);
          if (isResizable(out.buffer)) resize(out.buffer, 0);
          else if (out.buffer.byteLength > 0) detach(out);
          tally(s.counts, `out array ${how}`);
        }
      } else {
        const name = g.pick([...Object.keys(METHODS), 'fd']);
        if (name === 'fd') {
          check(Number.isInteger(handle.fd) && handle.fd >= -1, `Handle.fd is ${String(handle.fd)}`);
          continue;
        }
        const spec = METHODS[name];
        const args = argList(g, spec.args, fds, s.b);
        const h = handle as unknown as Record<string, (...a: unknown[]) => unknown>;
        const r = callChecked(
          `Handle.${name}`,
          () => h[name](...args),
          (v) => spec.returns(v, args),
          s.counts,
          args,
        );
        if (name === 'close' && r.ok) check(handle.fd === -1, 'Handle.fd after close() is not -1');
      }
    }
  } finally {
    handle?.close();
    fds.closeAll();
  }
}

interface ChildResult {
  run: Omit<FuzzRun, 'failure'> & { failure: { iteration: number; error: string } | null };
  counts: Record<string, number>;
  fdsBefore: Record<string, string>;
  fdsAfter: Record<string, string>;
  uncaught: string[];
}

async function child(target: string, progressPath: string, resultPath: string): Promise<void> {
  const b = loadBinding().binding!;
  const progress = fs.openSync(progressPath, 'w');
  // Beside the progress file, in the folder the parent removes however the child ends. Not an
  // unlinked file reopened through /proc/self/fd: user-mode-linux's hostfs answers that open with ENOMEM.
  const tempFile = path.join(path.dirname(progressPath), 'data');
  fs.writeFileSync(tempFile, Buffer.alloc(65536, 0x5a));
  const counts: Record<string, number> = {};
  const uncaught: string[] = [];
  // A throwing onPoll is reported through 'uncaughtException' (native/socket.cc); only our own FuzzTrap may arrive there.
  process.on('uncaughtException', (err) => {
    if (err instanceof FuzzTrap) tally(counts, 'onPoll exception reached uncaughtException');
    else uncaught.push(err?.stack ?? String(err));
  });
  const fdsBefore = openFds();
  const [c, a] = await loopbackPair();
  const tcp = [b.adopt(handleFd(c), 1), b.adopt(handleFd(a), 1)];
  c.destroy();
  a.destroy();
  check(
    tcp.every((fd) => fd >= 0),
    'adopt() of the loopback pair failed in setup',
  );
  const shared: Shared = { b, tcp, tempFile, counts };
  const mark = (i: number): void => void fs.writeSync(progress, `${i}`.padEnd(16), 0);
  const run =
    target === 'binding/functions'
      ? await fuzz(FILE, target, CALLS, (g) => functionsIteration(shared, g), mark)
      : await fuzz(FILE, target, HANDLES, (g) => handleIteration(shared, g), mark);
  for (const fd of tcp) fs.closeSync(fd);
  await new Promise((resolve) => setImmediate(resolve)); // libuv finishes closing poll handles
  const failure = run.failure && { iteration: run.failure.iteration, error: (run.failure.error as Error)?.stack ?? String(run.failure.error) };
  const result: ChildResult = { run: { ...run, failure }, counts, fdsBefore, fdsAfter: openFds(), uncaught };
  fs.closeSync(progress);
  fs.writeFileSync(resultPath, JSON.stringify(result));
}

// ---------------------------------------------------------------- the test

interface Spawned {
  died: string | null; // how the child ended, when it did not finish its run
  last: number; // the iteration it had started last
  result: ChildResult | null;
  stderr: string;
}

function spawnChild(target: string, extraEnv: Record<string, string> = {}): Spawned {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-fuzz-'));
  const progressPath = path.join(dir, 'progress');
  const resultPath = path.join(dir, 'result.json');
  // The child is plain node: none of tap's variables, so it is not taken for a tap child.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TAP') && !k.startsWith('_TAPJS') && k !== 'NODE_OPTIONS'));
  const r = spawnSync(process.execPath, [__filename], {
    env: { ...env, ...extraEnv, KTLS_FUZZ_CHILD: target, KTLS_FUZZ_PROGRESS: progressPath, KTLS_FUZZ_RESULT: resultPath },
    timeout: CHILD_MS,
    killSignal: 'SIGKILL',
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const last = fs.existsSync(progressPath) ? Number(fs.readFileSync(progressPath, 'utf8').trim()) : NaN;
  const result: ChildResult | null = fs.existsSync(resultPath) ? (JSON.parse(fs.readFileSync(resultPath, 'utf8')) as ChildResult) : null;
  fs.rmSync(dir, { recursive: true, force: true });
  const died = r.error
    ? `ran past ${CHILD_MS} ms (KTLS_FUZZ_CHILD_MS) and was killed`
    : r.signal
      ? `was killed by ${r.signal}`
      : r.status !== 0 || !result
        ? `exited with status ${r.status}`
        : null;
  return { died, last, result, stderr: (r.stderr ?? '').slice(-6000) };
}

function runChild(t: Test, target: string, what: string): void {
  const started = performance.now();
  const { died, last, result, stderr } = spawnChild(target);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (died) {
    t.comment(`${target}: the child ${died} during iteration ${last} (seed ${FUZZ_SEED})\n${stderr}`);
    // That iteration again, alone and printing each call: the report then shows what crashed.
    if (!process.env.KTLS_FUZZ_ONLY && Number.isInteger(last)) {
      const again = spawnChild(target, { KTLS_FUZZ_ONLY: `${target}#${last}`, KTLS_FUZZ_VERBOSE: '1' });
      t.comment(`${target}: iteration ${last} replayed alone ${again.died ?? 'finished'}; its calls:\n${again.stderr}`);
    }
    t.comment(`replay: ${replayLine(FILE, target, last)} (KTLS_FUZZ_VERBOSE=1 prints each call)`);
  }
  t.ok(!died, `${target}: the process survives every call (${seconds} s)`);
  if (!result) return;
  const { run, counts } = result;
  t.comment(`${target}: ${run.iterations} iterations in ${(run.ms / 1000).toFixed(1)} s (slowest ${run.slowestMs.toFixed(1)} ms), seed ${FUZZ_SEED}`);
  if (run.failure)
    t.comment(
      `${target}: iteration ${run.failure.iteration} (seed ${FUZZ_SEED}) failed\n${run.failure.error}\nreplay: ${replayLine(FILE, target, run.failure.iteration)}`,
    );
  t.ok(run.failure === null, `${target}: ${what}`);
  t.same(result.uncaught, [], `${target}: nothing but the fuzzer's own callback exceptions reached 'uncaughtException'`);
  t.same(
    result.fdsAfter,
    result.fdsBefore,
    `${target}: every fd and Handle made is closed (the same ${Object.keys(result.fdsBefore).length} fds open before and after)`,
  );
  const lines = Object.entries(counts)
    .sort(([x], [y]) => x.localeCompare(y))
    .map(([k, v]) => `  ${k}: ${v}`);
  t.comment(`${target} outcomes:\n${lines.join('\n')}`);
}

async function main(): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- the child process loads tap only in its child role
  const { t } = require('tap') as typeof import('tap');
  const b = loadBinding().binding!;

  t.test('the fuzz tables name every binding function and every Handle method', async (t) => {
    const exported = Object.keys(b)
      .filter((k) => typeof (b as unknown as Record<string, unknown>)[k] === 'function' && k !== 'Handle')
      .sort();
    t.same(exported, Object.keys(FUNCTIONS).sort(), 'binding functions');
    const proto = Object.getOwnPropertyNames(b.Handle.prototype)
      .filter((k) => k !== 'constructor' && k !== 'fd')
      .sort();
    t.same(proto, Object.keys(METHODS).sort(), 'Handle methods');
  });

  t.test('every binding function returns its documented type or throws ERR_INVALID_ARG_TYPE / ERR_OUT_OF_RANGE', async (t) => {
    runChild(t, 'binding/functions', 'every call returned bytes, -errno or its documented type, or threw a typed argument error');
  });

  t.test('every Handle method, on open and closed Handles, returns its documented type or throws a typed argument error', async (t) => {
    runChild(t, 'binding/handle', 'every constructor and method call returned its documented type or threw a typed argument error');
  });
}

const childTarget = process.env.KTLS_FUZZ_CHILD;
if (childTarget) {
  child(childTarget, process.env.KTLS_FUZZ_PROGRESS!, process.env.KTLS_FUZZ_RESULT!).catch((err: unknown) => {
    process.stderr.write(`fuzz child setup failed: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
} else {
  void main();
}
