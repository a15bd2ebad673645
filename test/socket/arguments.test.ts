// Every argument is checked in TypeScript before a native call sees it: a bad
// one throws Node's own codes (ERR_INVALID_ARG_TYPE, ERR_OUT_OF_RANGE) naming
// the argument, and the socket goes on working.
import * as fs from 'node:fs';
import t from 'tap';
import * as ktls from '../../lib/index.js';
import { readBytes, upgradedPair } from '../helpers/pair.js';

t.test('fd arguments: a non-number, a fraction, NaN, a negative or a past-int32 value throw before the native call', async (t) => {
  const [a, b] = await upgradedPair('TLSv1.3', 'aes-128-gcm', { fallback: 'userspace' });
  const bad: Array<[string, () => unknown, string]> = [
    ['tcpInfo(1.5)', () => ktls.tcpInfo(1.5), 'ERR_OUT_OF_RANGE'],
    ['tcpInfo(-1)', () => ktls.tcpInfo(-1), 'ERR_OUT_OF_RANGE'],
    ['sendFile(NaN)', () => a.sendFile(NaN), 'ERR_OUT_OF_RANGE'],
    ['sendFile(2 ** 31)', () => a.sendFile(2 ** 31), 'ERR_OUT_OF_RANGE'],
    ['spliceFrom(2 ** 31)', () => a.spliceFrom(2 ** 31), 'ERR_OUT_OF_RANGE'],
    ["spliceFrom('3')", () => a.spliceFrom('3' as unknown as number), 'ERR_INVALID_ARG_TYPE'],
    ['spliceTo(0.5)', () => a.spliceTo(0.5), 'ERR_OUT_OF_RANGE'],
    ['spliceTo(Infinity)', () => a.spliceTo(Infinity), 'ERR_OUT_OF_RANGE'],
  ];
  for (const [what, call, code] of bad) {
    let thrown: unknown;
    try {
      call();
    } catch (err) {
      thrown = err;
    }
    t.match(thrown, { code }, `${what} throws ${code}`);
    t.ok(thrown instanceof (code === 'ERR_OUT_OF_RANGE' ? RangeError : TypeError), `${what}: a ${code === 'ERR_OUT_OF_RANGE' ? 'RangeError' : 'TypeError'}`);
    t.notMatch(String((thrown as Error | undefined)?.message), /native/, `${what}: not the native layer's message`);
  }
  a.write('still usable');
  t.equal((await readBytes(b, 12)).toString(), 'still usable');
  a.destroy();
  b.destroy();
});

t.test('length and offset options: a non-number is ERR_INVALID_ARG_TYPE, a negative or fractional one ERR_OUT_OF_RANGE', async (t) => {
  const [a, b] = await upgradedPair('TLSv1.3', 'aes-128-gcm', { fallback: 'userspace' });
  t.throws(() => a.sendFile('/dev/null', { length: '5' as unknown as number }), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => a.sendFile('/dev/null', { offset: 1.5 }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => a.spliceFrom(0, { length: -1 }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => a.spliceTo(1, { length: NaN }), { code: 'ERR_OUT_OF_RANGE' });
  a.destroy();
  b.destroy();
});

t.test('spliceTo() on a socket with setEncoding() is refused, and the bytes it holds stay readable', async (t) => {
  const [a, b] = await upgradedPair('TLSv1.3', 'aes-128-gcm', { fallback: 'userspace' });
  b.setEncoding('utf8');
  a.write('héllo');
  await new Promise((r) => setTimeout(r, 50)); // read ahead into b's buffer
  const [r, w] = ktls.createPipe();
  t.throws(() => b.spliceTo(w), { code: 'ERR_KTLS_ENCODING' });
  const got = await new Promise<string>((resolve) => b.once('data', resolve));
  t.equal(got, 'héllo', 'the buffered text is still delivered');
  fs.closeSync(r);
  fs.closeSync(w);
  a.destroy();
  b.destroy();
});
