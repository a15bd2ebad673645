// The addon refuses bad arguments with typed errors before touching memory or
// taking ownership of anything (an fd passed to a constructor that throws is
// still the caller's).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { loadBinding } from '../../lib/native/binding.js';

const { EBADF } = os.constants.errno;

const b = loadBinding().binding!;
const k = b.constants;
const noop = (): void => undefined;
const fdCount = (): number => fs.readdirSync('/proc/self/fd').length;

t.test('numbers that are not int32 are refused, not coerced (NaN is not fd 0)', async (t) => {
  for (const v of [NaN, 1.5, Infinity, -Infinity, 2 ** 31, -(2 ** 31) - 1]) {
    t.throws(() => b.getsockoptInt(v, k.SOL_SOCKET, k.SO_TYPE), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, `getsockoptInt(${v})`);
    t.throws(() => b.setUlp(v), { code: 'ERR_OUT_OF_RANGE' }, `setUlp(${v})`);
  }
  for (const v of ['0', null, undefined, {}, 1n]) {
    t.throws(() => b.closeFd(v as number), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }, `closeFd(${String(v)})`);
  }
});

t.test('new Handle checks fd, callback and out array before it takes the fd', async (t) => {
  const before = fdCount();
  const fd = fs.openSync('/dev/null', 'r');
  const bad: Array<[string, unknown[], string]> = [
    ['NaN fd', [NaN, noop, new Int32Array(1)], 'ERR_OUT_OF_RANGE'],
    ['negative fd', [-1, noop, new Int32Array(1)], 'ERR_OUT_OF_RANGE'],
    ['no callback', [fd, 5, new Int32Array(1)], 'ERR_INVALID_ARG_TYPE'],
    ['empty out array', [fd, noop, new Int32Array(0)], 'ERR_INVALID_ARG_TYPE'],
    ['out array of bytes', [fd, noop, new Uint8Array(4)], 'ERR_INVALID_ARG_TYPE'],
    ['no out array', [fd, noop], 'ERR_INVALID_ARG_TYPE'],
  ];
  const Handle = b.Handle as unknown as new (...args: unknown[]) => unknown;
  for (const [name, args, code] of bad) t.throws(() => new Handle(...args), { code }, name);
  t.ok(fs.fstatSync(fd).isCharacterDevice(), "the fd is still open and still the caller's");
  const h = new b.Handle(fd, noop, new Int32Array(1));
  t.equal(h.fd, fd, 'a valid Handle owns the fd');
  t.equal(h.close(), 0);
  t.equal(h.close(), 0, 'close twice is harmless');
  t.equal(h.recv(Buffer.alloc(4), 0, 4), -EBADF, 'recv after close answers EBADF, never touches the fd');
  t.equal(fdCount(), before, 'no fd left behind');
});

t.test('buffer ranges outside the buffer are refused', async (t) => {
  const fd = fs.openSync('/dev/zero', 'r');
  const h = new b.Handle(fd, noop, new Int32Array(1));
  const buf = Buffer.alloc(8);
  for (const [off, len] of [
    [-1, 4],
    [0, -1],
    [4, 5],
    [9, 0],
    [0, 2 ** 31 - 1],
  ]) {
    t.throws(() => h.recv(buf, off, len), { code: 'ERR_OUT_OF_RANGE' }, `recv(${off}, ${len})`);
    t.throws(() => b.readFd(fd, buf, off, len), { code: 'ERR_OUT_OF_RANGE' }, `readFd(${off}, ${len})`);
  }
  t.throws(() => h.send([buf, 'x' as unknown as Buffer], 0), { code: 'ERR_INVALID_ARG_TYPE' }, 'send of a non-Buffer');
  h.close();
});

t.test('a DataView is not a Buffer, and a detached out array is never written', async (t) => {
  const fd = fs.openSync('/dev/null', 'r');
  t.throws(() => b.readFd(fd, new DataView(new ArrayBuffer(8)) as unknown as Buffer, 0, 4), { code: 'ERR_INVALID_ARG_TYPE' }, 'readFd(DataView)');
  fs.closeSync(fd);
  const pair = b.socketPair() as [number, number];
  const out = new Int32Array(1);
  const h = new b.Handle(pair[0], noop, out);
  t.throws(() => h.send([new DataView(new ArrayBuffer(4)) as unknown as Buffer], 0), { code: 'ERR_INVALID_ARG_TYPE' }, 'send([DataView])');
  structuredClone(out.buffer, { transfer: [out.buffer] }); // detaches the array under the handle
  b.writeFd(pair[1], Buffer.from('x'), 0, 1);
  t.equal(h.recv(Buffer.alloc(4), 0, 4), 1, 'recv still works (the record type has nowhere to go)');
  h.close();
  b.closeFd(pair[1]);
});
