// Every secrets field is validated with a typed error naming the field and the
// expected size, and a Secrets object never shows key bytes.
import t from 'tap';
import * as util from 'node:util';
import { randomBytes } from 'node:crypto';
import { Secrets, normalizeSecrets } from '../../lib/record/secrets.js';

const good = () => ({
  version: 'TLSv1.3',
  cipher: 'aes-128-gcm',
  tx: { key: randomBytes(16), iv: randomBytes(12), seq: 0n },
  rx: { key: randomBytes(16), iv: randomBytes(12), seq: 5 },
});

t.test('valid secrets normalize to library-owned copies with bigint seqs', async (t) => {
  const s = good();
  const n = normalizeSecrets(s);
  t.equal(n.rx?.seq, 5n);
  t.ok(n.tx?.key.equals(s.tx.key));
  t.not(n.tx?.key.buffer, s.tx.key.buffer, 'the key was copied, not referenced');
});

t.test('each bad field is rejected with a code and the field named', async (t) => {
  const cases: Array<[string, (s: ReturnType<typeof good>) => unknown, string, string]> = [
    ['not an object', () => null, 'ERR_INVALID_ARG_TYPE', 'secrets'],
    ['unknown version', (s) => ({ ...s, version: 'TLSv1.1' }), 'ERR_INVALID_ARG_VALUE', 'secrets.version'],
    ['unknown cipher', (s) => ({ ...s, cipher: 'aes-128-cbc' }), 'ERR_INVALID_ARG_VALUE', 'secrets.cipher'],
    ['neither direction', (s) => ({ version: s.version, cipher: s.cipher }), 'ERR_INVALID_ARG_VALUE', 'secrets.tx'],
    ['short key', (s) => ({ ...s, tx: { ...s.tx, key: randomBytes(15) } }), 'ERR_INVALID_ARG_VALUE', 'secrets.tx.key'],
    ['AES-256 key too short', (s) => ({ ...s, cipher: 'aes-256-gcm' }), 'ERR_INVALID_ARG_VALUE', 'secrets.tx.key'],
    ['key not a buffer', (s) => ({ ...s, rx: { ...s.rx, key: 'secret' } }), 'ERR_INVALID_ARG_TYPE', 'secrets.rx.key'],
    ['iv of 8 bytes', (s) => ({ ...s, rx: { ...s.rx, iv: randomBytes(8) } }), 'ERR_INVALID_ARG_VALUE', 'secrets.rx.iv'],
    ['negative seq', (s) => ({ ...s, tx: { ...s.tx, seq: -1 } }), 'ERR_INVALID_ARG_VALUE', 'secrets.tx.seq'],
    ['seq beyond 2^64', (s) => ({ ...s, tx: { ...s.tx, seq: 1n << 64n } }), 'ERR_INVALID_ARG_VALUE', 'secrets.tx.seq'],
    ['fractional seq', (s) => ({ ...s, tx: { ...s.tx, seq: 1.5 } }), 'ERR_INVALID_ARG_VALUE', 'secrets.tx.seq'],
    ['seq a string', (s) => ({ ...s, tx: { ...s.tx, seq: '1' } }), 'ERR_INVALID_ARG_TYPE', 'secrets.tx.seq'],
    ['direction not an object', (s) => ({ ...s, tx: 1 }), 'ERR_INVALID_ARG_TYPE', 'secrets.tx'],
  ];
  for (const [name, mutate, code, field] of cases) {
    let err: (Error & { code?: string }) | undefined;
    try {
      normalizeSecrets(mutate(good()));
    } catch (e) {
      err = e as Error & { code?: string };
    }
    t.equal(err?.code, code, `${name}: ${code}`);
    t.match(err?.message, field, `${name}: names ${field}`);
  }
});

t.test('the size error says what was expected and what was received', async (t) => {
  const s = good();
  t.throws(() => normalizeSecrets({ ...s, tx: { ...s.tx, key: randomBytes(15) } }), {
    name: 'RangeError',
    message: 'Expected a 16-byte Buffer for secrets.tx.key but received 15 bytes',
  });
});

t.test('inspect and JSON of a Secrets object show no key bytes', async (t) => {
  const s = new Secrets(good() as ConstructorParameters<typeof Secrets>[0]);
  const shown = util.inspect(s, { depth: 10 }) + JSON.stringify(s) + util.inspect(s.tx, { depth: 10 });
  for (const b of [s.tx!.key, s.tx!.iv, s.rx!.key, s.rx!.iv]) {
    t.notMatch(shown, b.toString('hex'), 'no hex');
    t.notMatch(shown, b.toString('base64'), 'no base64');
  }
  t.match(shown, /redacted/);
  s.wipe();
  t.ok(
    s.tx!.key.every((x) => x === 0),
    'wipe() zeroes the keys',
  );
});

t.test('things that only look like Buffers are refused with a typed error, and each field is read once', async (t) => {
  const good = { version: 'TLSv1.3' as const, cipher: 'aes-128-gcm' as const, tx: { key: Buffer.alloc(16), iv: Buffer.alloc(12), seq: 0n } };
  const fakes: Array<[string, unknown]> = [
    ['a Proxy of a Buffer', new Proxy(Buffer.alloc(16), {})],
    ['an object with Buffer.prototype', Object.setPrototypeOf({ length: 16 }, Buffer.prototype)],
  ];
  for (const [name, key] of fakes) t.throws(() => normalizeSecrets({ ...good, tx: { ...good.tx, key } }), { code: 'ERR_INVALID_ARG_TYPE' }, name);
  let reads = 0;
  const shifty = {
    ...good,
    get version() {
      return reads++ === 0 ? 'TLSv1.3' : 'TLSv1.0';
    },
  };
  t.equal(normalizeSecrets(shifty).version, 'TLSv1.3', 'a getter is read once: what was checked is what is used');
  const nullProto = Object.create(null) as object;
  t.throws(() => normalizeSecrets({ ...good, cipher: nullProto }), { code: 'ERR_INVALID_ARG_VALUE' }, 'an unprintable cipher still gets its typed error');
});
