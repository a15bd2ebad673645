// Fuzzes the secrets validator: whatever object it is given, normalizeSecrets
// returns secrets whose fields have the cipher's sizes, or throws a TypeError /
// RangeError with a Node-style code; the Secrets wrapper adds nothing else and
// never shows key bytes. Seeded; see helpers/fuzz.ts.
import t from 'tap';
import * as util from 'node:util';
import { CIPHER_NAMES, VERSIONS, cipherSpec, type CipherName, type TlsVersion } from '../../lib/native/constants.js';
import { Secrets, normalizeSecrets, type NormalizedSecrets, type TlsSecrets } from '../../lib/record/secrets.js';
import { BUFFER_SIZES, FuzzTrap, anyValue, check, envInt, errorKey, fuzz, reportRun, show, tally, trapProxy, typedArray, type Gen } from '../helpers/fuzz.js';

const FILE = 'record/fuzz-secrets.test.js';
const COUNT = envInt('KTLS_FUZZ_SECRETS', 20_000); // per target
const U64_END = 1n << 64n;

type Field = 'key' | 'iv' | 'seq';
type Obj = Record<string, unknown>;

interface Plain {
  version: TlsVersion;
  cipher: CipherName;
  tx?: { key: Buffer; iv: Buffer; seq: bigint | number };
  rx?: { key: Buffer; iv: Buffer; seq: bigint | number };
}

function seqValue(g: Gen): bigint | number {
  return g.weighted<() => bigint | number>([
    [3, () => 0],
    [2, () => g.range(1, 1 << 20)],
    [1, () => 2 ** 53 - 1],
    [2, () => g.u64()],
    [1, () => U64_END - 1n],
    [1, () => 0n],
  ])();
}

function validSecrets(g: Gen): Plain {
  const version = g.pick(VERSIONS);
  const cipher = g.pick(CIPHER_NAMES);
  const spec = cipherSpec(cipher);
  const direction = (): Plain['tx'] => ({ key: g.bytes(spec.keySize), iv: g.bytes(spec.nonceSize), seq: seqValue(g) });
  const which = g.pick(['tx', 'rx', 'both'] as const);
  return { version, cipher, ...(which !== 'rx' ? { tx: direction() } : {}), ...(which !== 'tx' ? { rx: direction() } : {}) };
}

/** A value for `field` that is wrong in a way a caller could plausibly get wrong. */
function nearMiss(g: Gen, field: string, s: Plain): unknown {
  const spec = cipherSpec(s.cipher);
  if (field === 'version')
    return g.pick<unknown>(['TLSv1.1', 'TLSv1', 'tlsv1.3', 'TLSv1.3 ', 'TLSv1.2\u0000', 0x0304, 772, new String('TLSv1.3'), ['TLSv1.3'], '']);
  if (field === 'cipher')
    return g.pick<unknown>([...CIPHER_NAMES.filter((c) => c !== s.cipher), 'AES-128-GCM', 'aes-128-cbc', 'aes128gcm', 'chacha20', 51, '']);
  if (field.endsWith('seq'))
    return g.pick<unknown>([-1, -1n, 2 ** 53, 2 ** 64, U64_END, -(2n ** 63n), 0.5, -0, NaN, Infinity, '0', '1', Object(1n), Object(0), true, null]);
  if (field.endsWith('key') || field.endsWith('iv')) {
    const size = field.endsWith('key') ? spec.keySize : spec.nonceSize;
    return g.pick<() => unknown>([
      () => Buffer.alloc(g.pick([0, size - 1, size + 1, 4, 8, 12, 16, 24, 32, 33].filter((n) => n !== size))),
      () => new Uint8Array(size),
      () => Array.from({ length: size }, () => 0),
      () => Buffer.alloc(size).toString('hex'),
      () => new DataView(new ArrayBuffer(size)),
      () => Buffer.alloc(size).buffer,
      () => Buffer.alloc(g.pick(BUFFER_SIZES)),
      () => typedArray(g),
    ])();
  }
  return g.pick<unknown>([null, 0, false, '', [], 'tx', 1]);
}

interface Derived {
  input: unknown;
  /** Every property a plain data property with the value validSecrets gave (edits change values, not their nature). */
  plain: boolean;
  edits: string[];
}

const setData = (o: Obj, name: string, value: unknown): void =>
  void Object.defineProperty(o, name, { value, writable: true, enumerable: true, configurable: true });

/** Valid secrets with 1..3 fields replaced, deleted, turned into accessors or traps, and sometimes a different container. */
function derived(g: Gen): Derived {
  const s = validSecrets(g);
  const obj: Obj = { ...s, ...(s.tx ? { tx: { ...s.tx } } : {}), ...(s.rx ? { rx: { ...s.rx } } : {}) };
  const ours = new Set<unknown>([obj.tx, obj.rx].filter(Boolean));
  const edits: string[] = [];
  let plain = true;
  const paths = ['version', 'cipher', 'tx', 'rx', 'tx.key', 'tx.iv', 'tx.seq', 'rx.key', 'rx.iv', 'rx.seq'];
  for (
    let n = g.weighted([
      [5, 1],
      [3, 2],
      [2, 3],
    ] as const);
    n > 0;
    n--
  ) {
    const path = g.pick(paths);
    const [first, second] = path.split('.') as [string, Field | undefined];
    let holder: Obj = obj;
    if (second) {
      // Only into the direction objects made here, still in place: never through an earlier edit's getter or Proxy.
      const d = Object.getOwnPropertyDescriptor(obj, first)?.value as unknown;
      if (!ours.has(d)) continue;
      holder = d as Obj;
    }
    const name = second ?? first;
    const valid = Object.getOwnPropertyDescriptor(holder, name)?.value as unknown;
    const kind = g.weighted<string>([
      [4, 'near'],
      [4, 'random'],
      [1, 'delete'],
      [1, 'getter'],
      [1, 'flaky getter'],
      [1, 'trap'],
      [1, 'inherited'],
    ]);
    edits.push(`${path}: ${kind}`);
    const replace = (value: unknown): void => {
      edits[edits.length - 1] += ` ${show(value)}`;
      setData(holder, name, value);
    };
    switch (kind) {
      case 'near':
        replace(nearMiss(g, path, s));
        break;
      case 'random':
        replace(anyValue(g));
        plain = false;
        break;
      case 'delete':
        delete holder[name];
        break;
      case 'getter':
        Object.defineProperty(holder, name, { get: () => anyValue(g), enumerable: true, configurable: true });
        plain = false;
        break;
      case 'flaky getter': {
        // Valid on the first read, anything after: validation must use what it checked.
        let reads = 0;
        Object.defineProperty(holder, name, { get: () => (reads++ === 0 ? valid : anyValue(g)), enumerable: true, configurable: true });
        plain = false;
        break;
      }
      case 'trap':
        Object.defineProperty(holder, name, {
          get: () => {
            throw new FuzzTrap('fuzz: getter');
          },
          enumerable: true,
          configurable: true,
        });
        plain = false;
        break;
      case 'inherited': {
        delete holder[name];
        Object.setPrototypeOf(holder, { [name]: valid });
        plain = false;
        break;
      }
    }
  }
  const container = g.weighted<string>([
    [12, 'object'],
    [1, 'proxy'],
    [1, 'trap proxy'],
    [1, 'frozen'],
    [1, 'null prototype'],
    [1, 'array'],
  ]);
  if (container !== 'object') edits.push(`container: ${container}`);
  switch (container) {
    case 'proxy':
      return { input: new Proxy(obj, {}), plain: false, edits };
    case 'trap proxy':
      return { input: trapProxy(obj), plain: false, edits };
    case 'frozen':
      return { input: Object.freeze(obj), plain, edits };
    case 'null prototype':
      return { input: Object.defineProperties(Object.create(null) as Obj, Object.getOwnPropertyDescriptors(obj)), plain, edits };
    case 'array':
      return { input: Object.defineProperties([], Object.getOwnPropertyDescriptors(obj)), plain, edits };
    default:
      return { input: obj, plain, edits };
  }
}

function isTypedArgError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return (err instanceof TypeError && code === 'ERR_INVALID_ARG_TYPE') || (err instanceof RangeError && code === 'ERR_INVALID_ARG_VALUE');
}

/** Checks a normalizeSecrets result against the cipher's sizes (and, for plain input, against the input). */
function checkNormalized(r: NormalizedSecrets, input: unknown, plain: boolean): void {
  check(VERSIONS.includes(r.version), 'accepted with a version not in VERSIONS', () => show(r.version));
  check(CIPHER_NAMES.includes(r.cipher), 'accepted with a cipher not in CIPHER_NAMES', () => show(r.cipher));
  check(r.tx !== undefined || r.rx !== undefined, 'accepted with neither tx nor rx');
  check(
    Object.keys(r).every((k) => ['version', 'cipher', 'tx', 'rx'].includes(k)),
    `extra fields ${Object.keys(r).join(',')}`,
  );
  const spec = cipherSpec(r.cipher);
  for (const dir of ['tx', 'rx'] as const) {
    const d = r[dir];
    if (!d) continue;
    check(d.key instanceof Uint8Array && Buffer.isBuffer(d.key) && d.key.length === spec.keySize, `${dir}.key is not a ${spec.keySize}-byte Buffer`);
    check(d.iv instanceof Uint8Array && Buffer.isBuffer(d.iv) && d.iv.length === spec.nonceSize, `${dir}.iv is not a ${spec.nonceSize}-byte Buffer`);
    check(typeof d.seq === 'bigint' && d.seq >= 0n && d.seq < U64_END, `${dir}.seq is not a bigint in [0, 2^64)`, () => show(d.seq));
  }
  if (!plain) return;
  const s = input as Plain;
  check(r.version === s.version && r.cipher === s.cipher, 'version or cipher differ from the input');
  for (const dir of ['tx', 'rx'] as const) {
    const d = r[dir];
    const given = s[dir];
    check((d === undefined) === (given === undefined), `${dir} present in one of input and output only`);
    if (!d || !given) continue;
    check(d.key.equals(given.key) && d.iv.equals(given.iv) && d.seq === BigInt(given.seq), `${dir} differs from the input`);
    // The result owns copies: later writes to the caller's buffers do not reach it.
    given.key[0] ^= 0xff;
    given.iv[0] ^= 0xff;
    check(d.key[0] !== given.key[0] && d.iv[0] !== given.iv[0], `${dir}: the result shares the caller's key or iv memory`);
    given.key[0] ^= 0xff;
    given.iv[0] ^= 0xff;
  }
}

type Outcome = { ok: true; value: NormalizedSecrets } | { ok: false; error: unknown };

function normalize(input: unknown): Outcome {
  try {
    return { ok: true, value: normalizeSecrets(input) };
  } catch (error) {
    return { ok: false, error };
  }
}

/** normalizeSecrets' contract on one input; tallies the outcome. */
function checkContract(input: unknown, plain: boolean, counts: Record<string, number>): Outcome {
  const out = normalize(input);
  if (out.ok) {
    checkNormalized(out.value, input, plain);
    tally(counts, 'accepted');
  } else {
    const err = out.error;
    check(isTypedArgError(err) || err instanceof FuzzTrap, `threw ${errorKey(err)}`, () => (err as Error)?.stack ?? show(err));
    tally(counts, err instanceof FuzzTrap ? "the caller's own exception passed through" : errorKey(err));
  }
  return out;
}

function summary(counts: Record<string, number>): string {
  return Object.entries(counts)
    .sort(([, a], [, b]) => b - a)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
}

t.test('normalizeSecrets on valid secrets with fields replaced returns cipher-sized fields or throws ERR_INVALID_ARG_TYPE/VALUE', async (t) => {
  const counts: Record<string, number> = {};
  const run = await fuzz(FILE, 'secrets/derived', COUNT, (g) => {
    const { input, plain, edits } = derived(g);
    try {
      checkContract(input, plain, counts);
    } catch (err) {
      (err as Error).message += `\nedits: ${edits.join('; ')}`;
      throw err;
    }
  });
  reportRun(t, run, 'every derived object was accepted with valid fields or refused with a typed error');
  t.comment(`secrets/derived: ${summary(counts)}`);
  if (!run.failure && !process.env.KTLS_FUZZ_ONLY && COUNT >= 1000)
    t.ok(counts.accepted > 0 && counts.accepted < COUNT, 'the fuzzer reaches both the accepting and the refusing paths');
});

t.test('normalizeSecrets on any JS value throws ERR_INVALID_ARG_TYPE/VALUE', async (t) => {
  const counts: Record<string, number> = {};
  const run = await fuzz(FILE, 'secrets/any', COUNT, (g) => {
    const value = g.chance(0.5)
      ? anyValue(g)
      : {
          version: g.chance(0.5) ? g.pick(VERSIONS) : anyValue(g),
          cipher: g.chance(0.5) ? g.pick(CIPHER_NAMES) : anyValue(g),
          tx: anyValue(g),
          rx: anyValue(g),
        };
    try {
      checkContract(value, false, counts);
    } catch (err) {
      (err as Error).message += `\ninput: ${show(value)}`;
      throw err;
    }
  });
  reportRun(t, run, 'every value was refused with a typed error (or accepted with valid fields)');
  t.comment(`secrets/any: ${summary(counts)}`);
});

t.test('the Secrets wrapper is accepted exactly like the object it wraps and never shows key bytes', async (t) => {
  const counts: Record<string, number> = {};
  const run = await fuzz(FILE, 'secrets/class', COUNT, (g) => {
    const { input, plain, edits } = derived(g);
    const context = (): string => `edits: ${edits.join('; ')}`;
    let wrapped: Secrets;
    try {
      wrapped = new Secrets(input as TlsSecrets);
    } catch (err) {
      check(err instanceof FuzzTrap, `new Secrets threw ${errorKey(err)}`, () => `${(err as Error)?.stack ?? show(err)}\n${context()}`);
      tally(counts, "the caller's own exception passed through");
      return;
    }
    let direct: Outcome;
    let viaWrapper: Outcome;
    try {
      direct = plain ? normalize(input) : { ok: false, error: null };
      viaWrapper = checkContract(wrapped, false, counts);
    } catch (err) {
      (err as Error).message += `\n${context()}`;
      throw err;
    }
    if (!plain || !direct.ok) return;
    check(viaWrapper.ok, `the wrapper of valid secrets was refused: ${errorKey(!viaWrapper.ok && viaWrapper.error)}`, context);
    const a = direct.value;
    const b = viaWrapper.value;
    for (const dir of ['tx', 'rx'] as const) {
      check((a[dir] === undefined) === (b[dir] === undefined), `${dir} lost or gained through the wrapper`, context);
      const x = a[dir];
      const y = b[dir];
      if (x && y) check(x.key.equals(y.key) && x.iv.equals(y.iv) && x.seq === y.seq, `${dir} differs through the wrapper`, context);
    }
    const shown = `${util.inspect(wrapped, { depth: 5 })}\n${JSON.stringify(wrapped)}\n${util.inspect(wrapped.tx)}\n${util.inspect(wrapped.rx)}`;
    for (const dir of ['tx', 'rx'] as const) {
      const d = (input as Plain)[dir];
      if (!d) continue;
      for (const bytes of [d.key, d.iv]) {
        const head = bytes.subarray(0, 8);
        for (const form of [
          head.toString('hex'),
          [...head].map((v) => v.toString(16).padStart(2, '0')).join(' '),
          [...head].join(','),
          head.toString('base64').slice(0, 8),
        ])
          check(!shown.includes(form), `inspect/JSON shows ${dir} bytes (${form})`, () => `${context()}\n${shown}`);
      }
    }
    tally(counts, 'redacted');
  });
  reportRun(t, run, 'wrapping changes no outcome, refusals are typed, and no key byte is shown');
  t.comment(`secrets/class: ${summary(counts)}`);
});
