// sendFile / spliceFrom / spliceTo / cork behaviour, shared by the kernel suite
// (UML or a kTLS host) and the host suite (userspace record layer).
import type { Test } from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ktls from '../../lib/index.js';
import { loadBinding } from '../../lib/native/binding.js';
import type { CipherName, TlsVersion } from '../../lib/native/constants.js';
import { capabilities, carries } from './kernel.js';
import { readAll, sha256, upgradedPair } from './pair.js';

export const FILE_SIZES = [
  0,
  1,
  4095,
  4096,
  4097,
  16383,
  16384,
  16385,
  65537,
  1024 * 1024 + 7,
  ...Array.from({ length: 3 }, () => 1 + Math.floor(Math.random() * 200_000)),
];

export function tempDir(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-zc-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Reads a pipe's read end to EOF without blocking the loop. */
export function drainFd(fd: number): Promise<Buffer> {
  return readAll(fs.createReadStream('', { fd, autoClose: true }));
}

/** Sends a record of `type` on `socket`'s connection, bypassing the socket (through a dup of its fd). */
export function sendRawRecord(socket: ktls.KtlsSocket, type: number, body: Buffer): number {
  const b = loadBinding().binding!;
  const dup = b.adopt(socket.fd);
  const h = new b.Handle(dup, () => undefined, new Int32Array(1));
  const n = h.send([body], type);
  h.close();
  return n;
}

export function zeroCopySuite(t: Test, options: ktls.UpgradeOptions, expectKernel: boolean): void {
  // ChaCha20 for variety, where the records can be carried by the kernel under test (not before 5.11).
  const chachaWhereCarried = async (v: TlsVersion): Promise<CipherName> =>
    !expectKernel || carries(await capabilities(), v, 'chacha20-poly1305') ? 'chacha20-poly1305' : 'aes-256-gcm';
  t.test('sendFile delivers files of every size around page and record boundaries', async (t) => {
    const dir = tempDir(t);
    for (const size of FILE_SIZES) {
      const data = randomBytes(size);
      const file = path.join(dir, `f${size}`);
      fs.writeFileSync(file, data);
      const [a, b] = await upgradedPair('TLSv1.3', 'aes-256-gcm', options);
      t.equal(a.kernelDirections.tx, expectKernel);
      const got = readAll(b);
      t.equal(await a.sendFile(file), size, `${size}: resolves with the bytes sent`);
      a.end();
      t.equal(sha256(await got), sha256(data), `${size} B arrive intact`);
      t.equal(a.bytesWritten, size);
    }
  });

  t.test('sendFile keeps its place among write()s, with offsets, fds and FileHandles', async (t) => {
    const dir = tempDir(t);
    const data = randomBytes(300_000);
    const file = path.join(dir, 'mixed');
    fs.writeFileSync(file, data);
    const [a, b] = await upgradedPair('TLSv1.2', 'aes-128-gcm', options);
    const got = readAll(b);
    const fd = fs.openSync(file, 'r');
    const fh = await fs.promises.open(file, 'r');
    a.write('head;');
    const sends = [
      a.sendFile(file, { offset: 4096, length: 16385 }),
      Promise.resolve(a.write('mid;')),
      a.sendFile(fd, { offset: 1 }),
      a.sendFile(fh, { length: 1 }),
    ];
    a.end('tail');
    const results = await Promise.all(sends);
    t.same([results[0], results[2], results[3]], [16385, data.length - 1, 1]);
    const expected = Buffer.concat([
      Buffer.from('head;'),
      data.subarray(4096, 4096 + 16385),
      Buffer.from('mid;'),
      data.subarray(1),
      data.subarray(0, 1),
      Buffer.from('tail'),
    ]);
    t.equal(sha256(await got), sha256(expected), 'order and bytes preserved');
    t.equal(fs.fstatSync(fd).size, data.length, 'a caller fd stays open');
    fs.closeSync(fd);
    await fh.close();
  });

  t.test('sendFile behind writes the socket could not take yet, or under cork(), still goes after them', async (t) => {
    const dir = tempDir(t);
    const body = randomBytes(70_000);
    const file = path.join(dir, 'body');
    fs.writeFileSync(file, body);
    const [a, b] = await upgradedPair('TLSv1.3', 'aes-256-gcm', options);
    b.pause(); // nothing is read: the first big write fills the socket and waits in the stream
    const big = randomBytes(8 * 1024 * 1024);
    a.write(big);
    t.ok(a.writableLength > 0, 'the big write is still in the stream');
    const first = a.sendFile(file);
    a.write('|');
    a.cork();
    a.write('c;');
    const second = a.sendFile(file, { length: 10 });
    a.uncork();
    a.end('tail');
    const got = readAll(b);
    b.resume();
    t.same(await Promise.all([first, second]), [body.length, 10]);
    t.equal(sha256(await got), sha256(Buffer.concat([big, body, Buffer.from('|c;'), body.subarray(0, 10), Buffer.from('tail')])), 'every byte in write order');
  });

  t.test('a file that cannot be sent rejects before any byte and leaves the connection usable', async (t) => {
    const dir = tempDir(t);
    fs.writeFileSync(path.join(dir, 'small'), 'abc');
    const [a, b] = await upgradedPair('TLSv1.3', await chachaWhereCarried('TLSv1.3'), options);
    const got = readAll(b);
    await t.rejects(a.sendFile(path.join(dir, 'missing')), { code: 'ENOENT', syscall: 'open', path: path.join(dir, 'missing'), bytesSent: 0 });
    await t.rejects(a.sendFile(path.join(dir, 'small'), { offset: 4 }), { code: 'ERR_OUT_OF_RANGE', bytesSent: 0 });
    await t.rejects(a.sendFile(dir), { code: 'ERR_KTLS_NOT_A_FILE' });
    t.throws(() => a.sendFile(path.join(dir, 'small'), { length: -1 }), { code: 'ERR_OUT_OF_RANGE' });
    a.end('still here');
    t.equal((await got).toString(), 'still here');
  });

  t.test('destroying the socket mid-sendFile rejects with the bytes sent so far', async (t) => {
    const dir = tempDir(t);
    const file = path.join(dir, 'big');
    fs.writeFileSync(file, Buffer.alloc(0));
    fs.truncateSync(file, 64 * 1024 * 1024);
    const [a, b] = await upgradedPair('TLSv1.3', 'aes-128-gcm', options);
    b.pause(); // the peer stops reading: the send blocks on a full socket buffer
    const sending = a.sendFile(file);
    await new Promise((r) => setTimeout(r, 200));
    a.destroy();
    const err = (await sending.then(
      () => null,
      (e: unknown) => e,
    )) as (Error & { code?: string; bytesSent?: number }) | null;
    t.equal(err?.code, 'ERR_STREAM_DESTROYED');
    t.ok(typeof err?.bytesSent === 'number' && err.bytesSent > 0 && err.bytesSent < 64 * 1024 * 1024, `bytesSent ${err?.bytesSent} is partial`);
    b.destroy();
  });

  t.test('spliceFrom moves a child process output through a pipe into the socket', async (t) => {
    const dir = tempDir(t);
    const data = randomBytes(700_001);
    const file = path.join(dir, 'src');
    fs.writeFileSync(file, data);
    const [a, b] = await upgradedPair('TLSv1.3', 'aes-256-gcm', options);
    const got = readAll(b);
    const [r, w] = ktls.createPipe();
    const child = spawn('cat', [file], { stdio: ['ignore', w, 'inherit'] });
    fs.closeSync(w);
    a.write('<');
    const spliced = a.spliceFrom(r);
    a.write('>');
    const limited = a.spliceFrom(r, { length: 0 });
    a.end();
    t.equal(await spliced, data.length);
    t.equal(await limited, 0);
    await new Promise((resolve) => child.once('exit', resolve));
    fs.closeSync(r);
    t.equal(sha256(await got), sha256(Buffer.concat([Buffer.from('<'), data, Buffer.from('>')])));
  });

  t.test('spliceFrom honours length and leaves the rest in the pipe', async (t) => {
    const [a, b] = await upgradedPair('TLSv1.2', await chachaWhereCarried('TLSv1.2'), options);
    const got = readAll(b);
    const [r, w] = ktls.createPipe();
    fs.writeSync(w, Buffer.from('0123456789'));
    t.equal(await a.spliceFrom(r, { length: 4 }), 4);
    t.equal(await a.spliceFrom(r, { length: 6 }), 6);
    fs.closeSync(w);
    t.equal(await a.spliceFrom(r), 0, 'EOF');
    fs.closeSync(r);
    a.end();
    t.equal((await got).toString(), '0123456789');
  });

  t.test('spliceTo moves decrypted data into a pipe and a file, buffered bytes first', async (t) => {
    const dir = tempDir(t);
    const data = randomBytes(500_000);
    const [a, b] = await upgradedPair('TLSv1.3', 'aes-128-gcm', options);
    a.write(data);
    // Part of the stream is read the ordinary way first.
    const first = await new Promise<Buffer>((resolve) =>
      b.once('data', (c: Buffer) => {
        b.pause();
        resolve(c);
      }),
    );
    const [r, w] = ktls.createPipe();
    const piped = drainFd(r);
    const n1 = await b.spliceTo(w, { length: 100_000 });
    fs.closeSync(w);
    t.equal(n1, 100_000);
    const file = path.join(dir, 'out');
    const fd = fs.openSync(file, 'w');
    a.end();
    const n2 = await b.spliceTo(fd);
    fs.closeSync(fd);
    const all = Buffer.concat([first, await piped, fs.readFileSync(file)]);
    t.equal(first.length + n1 + n2, data.length, 'every byte once');
    t.equal(sha256(all), sha256(data));
    t.equal(b.bytesRead, data.length);
  });

  t.test('spliceTo into a file opened for appending (splice(2) answers EINVAL there): the bytes are copied after what the file held', async (t) => {
    const dir = tempDir(t);
    const file = path.join(dir, 'log');
    fs.writeFileSync(file, 'head;');
    const [a, b] = await upgradedPair('TLSv1.2', 'aes-128-gcm', { ...options, allowHalfOpen: true });
    const fd = fs.openSync(file, 'a');
    const data = randomBytes(300_000);
    a.end(data);
    t.equal(await b.spliceTo(fd), data.length, 'every byte once');
    fs.closeSync(fd);
    t.equal(sha256(fs.readFileSync(file)), sha256(Buffer.concat([Buffer.from('head;'), data])), 'appended after the existing bytes');
    b.destroy();
  });

  t.test('spliceTo handles control records on the way and stops at close_notify', async (t) => {
    const [a, b] = await upgradedPair('TLSv1.3', 'aes-256-gcm', options);
    t.equal(a.kernelDirections.tx, expectKernel); // the raw handshake record below needs kernel TX
    const handshakes: Buffer[] = [];
    b.on('handshake', (m: Buffer) => handshakes.push(m));
    const [r, w] = ktls.createPipe();
    const piped = drainFd(r);
    const spliced = b.spliceTo(w);
    await new Promise<void>((resolve) => a.write('before;', () => resolve()));
    if (a.kernelDirections.tx) t.equal(sendRawRecord(a, 22, Buffer.from([4, 0, 0, 0])), 4, 'a handshake record is sent');
    a.write(Buffer.alloc(0));
    a.end('after');
    t.equal(await spliced, 'before;after'.length);
    fs.closeSync(w);
    t.equal((await piped).toString(), 'before;after');
    if (a.kernelDirections.tx) t.same(handshakes, [Buffer.from([4, 0, 0, 0])], 'the handshake record became an event');
    // close_notify with nothing left to read ends the stream at once, as on net (it may already have).
    const ended = b.readableEnded ? Promise.resolve() : new Promise((resolve) => b.once('end', resolve));
    b.resume();
    await ended;
    t.ok(b.readableEnded, 'close_notify ended the readable side');
  });

  t.test('a second spliceTo while one runs is ERR_KTLS_BUSY; the first goes on', async (t) => {
    const [a, b] = await upgradedPair('TLSv1.3', 'aes-128-gcm', options);
    const [r, w] = ktls.createPipe();
    const piped = drainFd(r);
    const first = b.spliceTo(w);
    t.throws(() => b.spliceTo(w), { code: 'ERR_KTLS_BUSY' });
    a.end('only once');
    t.equal(await first, 9);
    fs.closeSync(w);
    t.equal((await piped).toString(), 'only once');
  });

  t.test('spliceEcho returns what the peer sends', async (t) => {
    const [a, b] = await upgradedPair('TLSv1.2', 'aes-256-gcm', options);
    const data = randomBytes(333_333);
    const got = readAll(a);
    const echoed = ktls.spliceEcho(b);
    a.end(data);
    t.equal(await echoed, data.length);
    t.equal(sha256(await got), sha256(data));
  });

  t.test('cork() holds writes and a sendFile as one TCP_CORK burst', async (t) => {
    const dir = tempDir(t);
    const file = path.join(dir, 'body');
    fs.writeFileSync(file, randomBytes(1000));
    const k = loadBinding().binding!.constants;
    const [a, b] = await upgradedPair('TLSv1.3', 'aes-128-gcm', options);
    a.setNoDelay(true);
    const got = readAll(b);
    const corkOf = (): number => loadBinding().binding!.getsockoptInt(a.fd, k.SOL_TCP, k.TCP_CORK);
    const segs = async (burst: () => Promise<unknown>): Promise<number> => {
      const before = a.getTcpInfo().dataSegsOut;
      await burst();
      await new Promise((r) => setTimeout(r, 50));
      return a.getTcpInfo().dataSegsOut - before;
    };
    const plain = await segs(async () => {
      a.write('HTTP/1.1 200 OK\r\n\r\n');
      await a.sendFile(file);
    });
    let corkedDuring = -1;
    const corked = await segs(async () => {
      a.cork();
      corkedDuring = corkOf();
      a.write('HTTP/1.1 200 OK\r\n\r\n');
      const sent = a.sendFile(file);
      a.uncork();
      await sent;
    });
    t.equal(corkedDuring, 1, 'TCP_CORK is set while corked');
    t.equal(corkOf(), 0, 'TCP_CORK is cleared once the burst has gone');
    t.equal(plain, 2, 'uncorked: headers and body leave as separate segments');
    t.equal(corked, 1, 'corked: one segment');
    a.end();
    t.equal((await got).length, 2 * (19 + 1000));
  });
}
