/**
 * Sendpage: file and pipe bytes go into the kTLS socket without passing
 * through JavaScript (`sendFile` → sendfile(2), `spliceFrom` → splice(2)), in
 * order with `write()`s, and become exactly the records the userspace record
 * layer expects.
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { constants } from '../../native/constants.js';
import { createPipe } from '../../tools/pipe.js';
import type { Check, CheckContext, CheckGroup } from '../types.js';
import { kernelPair, readAll, readRecords, wirePair } from '../util.js';

const MiB = 1024 * 1024;
const SIZES = [1, 4096, 16384, 16385, MiB];

/** A temp file holding `data`; removed when the check ends. */
function tempFile(ctx: CheckContext, data: Buffer): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-verify-'));
  ctx.defer(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'data.bin');
  fs.writeFileSync(file, data);
  return file;
}

/** A pipe whose write end is a `net.Socket`: `feed(data)` writes and closes it. */
function feeder(ctx: CheckContext): { readFd: number; feed(data: Buffer): void } {
  const [r, w] = createPipe();
  const writer = new net.Socket({ fd: w, readable: false, writable: true });
  ctx.defer(() => (writer.destroy(), fs.closeSync(r)));
  return { readFd: r, feed: (data) => void writer.end(data) };
}

const checks: Check[] = [
  {
    id: 'sendfile-sizes',
    title: `sendFile of whole files of ${SIZES.join(', ')} bytes, one after another`,
    timeoutMs: 60_000,
    async run(ctx) {
      const { a, b } = await kernelPair(ctx);
      const files = SIZES.map((n) => randomBytes(n));
      const got = readAll(b);
      for (const [i, data] of files.entries()) {
        const n = await a.sendFile(tempFile(ctx, data));
        ctx.equal(n, data.length, `sendFile of ${SIZES[i]} bytes resolves with the size`);
      }
      a.end();
      ctx.bytes(await got, Buffer.concat(files), 'the files, in order');
      ctx.equal(
        a.bytesWritten,
        files.reduce((s, f) => s + f.length, 0),
        'bytesWritten counts sendFile bytes',
      );
    },
  },
  {
    id: 'sendfile-offsets',
    title: 'sendFile of chunks at offsets, by path, fd and FileHandle',
    timeoutMs: 60_000,
    async run(ctx) {
      const { a, b } = await kernelPair(ctx);
      const data = randomBytes(MiB + 20_000);
      const file = tempFile(ctx, data);
      const fd = fs.openSync(file, 'r');
      ctx.defer(() => fs.closeSync(fd));
      const handle = await fs.promises.open(file, 'r');
      ctx.defer(() => void handle.close());
      const ranges: Array<[number, number, string | number | fs.promises.FileHandle]> = [
        [0, 1, file],
        [1, 4095, fd],
        [4096, 16384, handle],
        [20_000, 16385, file],
        [100, MiB, fd],
        [MiB + 19_999, 1, handle],
      ];
      const got = readAll(b);
      const expected: Buffer[] = [];
      for (const [offset, length, src] of ranges) {
        const n = await a.sendFile(src, { offset, length });
        ctx.equal(n, length, `sendFile offset ${offset} length ${length}`);
        expected.push(data.subarray(offset, offset + length));
      }
      const tail = await a.sendFile(file, { offset: data.length - 7 });
      ctx.equal(tail, 7, 'without length: to the end of the file');
      expected.push(data.subarray(data.length - 7));
      a.end();
      ctx.bytes(await got, Buffer.concat(expected), 'the ranges, in order');
    },
  },
  {
    id: 'sendfile-interleaved',
    title: 'write(), sendFile(), write() (and under cork) keep their order',
    timeoutMs: 60_000,
    async run(ctx) {
      const { a, b } = await kernelPair(ctx);
      const f1 = randomBytes(16385);
      const f2 = randomBytes(300_000);
      const p1 = tempFile(ctx, f1);
      const p2 = tempFile(ctx, f2);
      const got = readAll(b);
      a.write('head;');
      const s1 = a.sendFile(p1);
      a.write(Buffer.from('middle;'));
      const s2 = a.sendFile(p2, { offset: 1000, length: 200_000 });
      a.write('tail;');
      a.cork();
      a.write('HTTP/1.1 200 OK\r\n\r\n');
      const s3 = a.sendFile(p1, { offset: 5, length: 10 });
      a.uncork();
      ctx.equal(await s1, f1.length, 'first sendFile');
      ctx.equal(await s2, 200_000, 'second sendFile');
      ctx.equal(await s3, 10, 'corked sendFile');
      a.end('end');
      const expected = Buffer.concat([
        Buffer.from('head;'),
        f1,
        Buffer.from('middle;'),
        f2.subarray(1000, 201_000),
        Buffer.from('tail;HTTP/1.1 200 OK\r\n\r\n'),
        f1.subarray(5, 15),
        Buffer.from('end'),
      ]);
      ctx.bytes(await got, expected, 'writes and files in call order');
    },
  },
  {
    id: 'sendfile-wire',
    title: 'sendFile output opens in userspace as full records at the expected sequence numbers',
    async run(ctx) {
      const k = constants();
      const { sock, raw, opener } = await wirePair(ctx, {}, { ba: 77n });
      const data = randomBytes(3 * 16384 + 5);
      const n = await sock.sendFile(tempFile(ctx, data));
      ctx.equal(n, data.length, 'sendFile result');
      const records = await readRecords(raw, opener, data.length);
      for (const r of records) ctx.equal(r.type, k.RECORD_APPLICATION_DATA, 'record type');
      const plain = records.map((r) => r.data);
      const sizes = plain.map((p) => p.length);
      ctx.observe('recordSizes', sizes.join(','));
      ctx.bytes(Buffer.concat(plain), data, 'plaintext of the records');
      ctx.ok(
        sizes.every((s) => s > 0 && s <= 16384),
        `records hold 1..16384 bytes (${sizes.join(',')})`,
      );
      ctx.equal(sock.getSequenceNumbers().tx, opener.seq, 'kernel TX seq matches the records opened');
      ctx.equal(opener.seq, 77n + BigInt(sizes.length), 'records numbered from the installed seq');
    },
  },
  {
    id: 'splice-from-pipe',
    title: 'spliceFrom a pipe: one whole pipe to EOF, then several with length, between writes',
    timeoutMs: 60_000,
    async run(ctx) {
      const { a, b } = await kernelPair(ctx);
      const got = readAll(b);
      const one = randomBytes(300_000);
      const p1 = feeder(ctx);
      p1.feed(one);
      ctx.equal(await a.spliceFrom(p1.readFd), one.length, 'spliceFrom to EOF');
      a.write('|');
      const many = randomBytes(70_000);
      const p2 = feeder(ctx);
      p2.feed(many);
      const parts = [1, 16384, 16385, 70_000 - 1 - 16384 - 16385];
      for (const len of parts) ctx.equal(await a.spliceFrom(p2.readFd, { length: len }), len, `spliceFrom length ${len}`);
      ctx.equal(await a.spliceFrom(p2.readFd), 0, 'spliceFrom at EOF moves nothing');
      a.end('|');
      ctx.bytes(await got, Buffer.concat([one, Buffer.from('|'), many, Buffer.from('|')]), 'pipe bytes and writes in order');
    },
  },
  {
    id: 'splice-from-wire',
    title: 'spliceFrom output opens in userspace, every byte in order',
    async run(ctx) {
      const { sock, raw, opener } = await wirePair(ctx);
      const data = randomBytes(50_000);
      const p = feeder(ctx);
      p.feed(data);
      ctx.equal(await sock.spliceFrom(p.readFd), data.length, 'spliceFrom result');
      const plain = (await readRecords(raw, opener, data.length)).map((r) => r.data);
      ctx.bytes(Buffer.concat(plain), data, 'plaintext of the records');
      ctx.equal(sock.getSequenceNumbers().tx, opener.seq, 'kernel TX seq matches the records opened');
    },
  },
];

/** The sendpage group. */
export const sendpage: CheckGroup = {
  name: 'sendpage',
  description: 'sendFile of whole files and chunks at offsets, interleaved with writes; spliceFrom a pipe; wire bytes against the userspace record layer',
  checks,
};
