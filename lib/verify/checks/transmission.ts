/**
 * Transmission: application data crosses a kTLS pair intact in every shape —
 * record-sized edges, multi-MiB, many small writes, writev, small reads,
 * record boundaries, non-blocking sends, cork — and the kernel's wire bytes are
 * what the userspace record layer makes, at the expected sequence numbers.
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { constants } from '../../native/constants.js';
import { RecordSealer } from '../../record/layer.js';
import type { Check, CheckGroup } from '../types.js';
import { E, kernelPair, openAll, rawKtls, rc, readAll, readBytes, readRecords, sleep, wirePair } from '../util.js';

/** Sends `size` bytes each way at once over a kernel pair and compares every byte. */
function eachWay(id: string, size: number, title: string): Check {
  return {
    id,
    title,
    timeoutMs: 120_000,
    async run(ctx) {
      const { a, b } = await kernelPair(ctx);
      const ab = randomBytes(size);
      const ba = randomBytes(size);
      const reads = Promise.all([readAll(b), readAll(a)]);
      a.end(ab);
      b.end(ba);
      const [gotB, gotA] = await reads;
      ctx.bytes(gotB, ab, `${size} B a→b`);
      ctx.bytes(gotA, ba, `${size} B b→a`);
      ctx.equal(a.bytesWritten, size, 'bytesWritten');
      ctx.equal(b.bytesRead, size, 'bytesRead');
    },
  };
}

const checks: Check[] = [
  eachWay('record-1b', 1, '1-byte records each way'),
  eachWay('record-16k', 16384, '16 KiB (one full record) each way'),
  eachWay('record-16k+1', 16385, '16 KiB + 1 (a full record and a 1-byte one) each way'),
  eachWay('multi-mib', 4 * 1024 * 1024, '4 MiB each way at once'),
  {
    id: 'small-writes',
    title: '1000 small writes arrive whole and in order',
    async run(ctx) {
      const { a, b } = await kernelPair(ctx);
      const parts = Array.from({ length: 1000 }, (_, i) => Buffer.from(`message ${i};`));
      const got = readAll(b);
      for (const p of parts) a.write(p);
      a.end();
      ctx.bytes(await got, Buffer.concat(parts), 'concatenation of the writes');
      await readAll(a);
    },
  },
  {
    id: 'writev',
    title: 'writev: corked stream writes and a multi-iovec sendmsg become records holding exactly those bytes',
    async run(ctx) {
      const { a, b } = await kernelPair(ctx);
      const parts = Array.from({ length: 64 }, (_, i) => randomBytes(1 + ((i * 997) % 3000)));
      const got = readAll(b);
      a.cork();
      for (const p of parts) a.write(p);
      process.nextTick(() => a.uncork());
      a.end();
      ctx.bytes(await got, Buffer.concat(parts), 'stream writev');
      // The same through one raw sendmsg with three iovecs: one record on the wire.
      const { end, peer, opener } = await rawKtls(ctx);
      const iov = [Buffer.from('alpha-'), randomBytes(5000), Buffer.from('-omega')];
      const n = end.send(iov);
      ctx.equal(n, 5012, 'sendmsg with 3 iovecs sent every byte');
      const overhead = ctx.version === 'TLSv1.3' ? 22 : ctx.cipher === 'chacha20-poly1305' ? 21 : 29;
      opener.push(await readBytes(peer, 5012 + overhead));
      const recs = openAll(opener);
      ctx.observe('writevRecords', recs.length);
      ctx.equal(recs.length, 1, 'one record for one sendmsg below 16 KiB');
      ctx.bytes(recs[0].data, Buffer.concat(iov), 'record holds the iovecs in order');
    },
  },
  {
    id: 'small-reads',
    title: 'reads of 7 bytes at a time return every byte of 3 records, in order',
    async run(ctx) {
      const { end, peer, sealer } = await rawKtls(ctx);
      const k = constants();
      const msg = randomBytes(40_000);
      peer.write(Buffer.concat(sealer.seal(k.RECORD_APPLICATION_DATA, msg)));
      const got: Buffer[] = [];
      let total = 0;
      let calls = 0;
      while (total < msg.length) {
        const r = await end.recv(7);
        ctx.ok(r.n > 0, `recv(7) returned ${r.result} after ${total} bytes`);
        ctx.ok(r.n <= 7, `recv(7) returned ${r.n} bytes`);
        ctx.equal(r.type, k.RECORD_APPLICATION_DATA, 'record type cmsg');
        got.push(r.data);
        total += r.n;
        calls++;
      }
      ctx.observe('recvCalls', calls);
      ctx.bytes(Buffer.concat(got), msg, '40000 bytes read 7 at a time');
    },
  },
  {
    id: 'record-boundary',
    title: 'a 15-byte record reads as 10 then 5; a read stops at a data/alert record boundary',
    async run(ctx) {
      const { end, peer, sealer } = await rawKtls(ctx);
      const k = constants();
      const rec = Buffer.from('fifteen bytes!!');
      peer.write(Buffer.concat(sealer.seal(k.RECORD_APPLICATION_DATA, rec)));
      const first = await end.recv(10);
      ctx.equal(first.n, 10, 'first read of 10');
      const second = await end.recv(100);
      ctx.observe('secondRead', second.n);
      ctx.equal(second.n, 5, 'second read returns the record’s last 5 bytes');
      ctx.bytes(Buffer.concat([first.data, second.data]), rec, 'the record');
      // Data then a warning alert: one big read returns only the data, the next the alert.
      peer.write(Buffer.concat([...sealer.seal(k.RECORD_APPLICATION_DATA, Buffer.from('data')), ...sealer.seal(k.RECORD_ALERT, Buffer.from([1, 90]))]));
      await sleep(20);
      const data = await end.recv(100);
      ctx.equal(data.type, k.RECORD_APPLICATION_DATA, 'data record type');
      ctx.equal(data.data.toString(), 'data', 'read stops before the alert');
      const alert = await end.recv(100);
      ctx.equal(alert.type, k.RECORD_ALERT, 'alert record type');
      ctx.bytes(alert.data, Buffer.from([1, 90]), 'alert body');
    },
  },
  {
    id: 'nonblocking',
    title: 'under a 4 KiB send buffer sendmsg never blocks (EAGAIN, partial sends) and every accepted byte arrives',
    timeoutMs: 60_000,
    async run(ctx) {
      const { end, peer, opener } = await rawKtls(ctx);
      ctx.equal(rc(end.b.setsockoptInt(end.fd, end.b.constants.SOL_SOCKET, end.b.constants.SO_SNDBUF, 4096)), 'ok', 'setsockopt(SO_SNDBUF)');
      peer.pause();
      const data = randomBytes(2 * 1024 * 1024);
      let off = 0;
      let eagain = 0;
      let partial = 0;
      const t0 = Date.now();
      // The peer is not reading: sends must fill up and then refuse, never block.
      while (eagain === 0 && off < data.length) {
        const want = Math.min(64 * 1024, data.length - off);
        const n = end.send([data.subarray(off, off + want)]);
        if (n === -E.EAGAIN) eagain++;
        else {
          ctx.ok(n > 0, `sendmsg returned ${rc(n)}`);
          if (n < want) partial++;
          off += n;
        }
      }
      ctx.observe('acceptedBeforeEagain', off);
      ctx.observe('partialSends', partial);
      ctx.ok(eagain > 0, 'sendmsg returned EAGAIN once the buffers were full');
      ctx.ok(Date.now() - t0 < 5000, 'the sends did not block');
      // Now drain: the peer reads while we send the rest on writability.
      const wire: Buffer[] = [];
      peer.on('data', (c: Buffer) => wire.push(c));
      peer.resume();
      const rest = await end.sendAll(data.subarray(off));
      ctx.equal(rest, data.length - off, 'the rest was sent after waiting for writability');
      const deadline = Date.now() + 20_000;
      const plain: Buffer[] = [];
      let got = 0;
      while (got < data.length && Date.now() < deadline) {
        await sleep(10);
        opener.push(Buffer.concat(wire.splice(0)));
        for (const r of openAll(opener)) {
          plain.push(r.data);
          got += r.data.length;
        }
      }
      ctx.bytes(Buffer.concat(plain), data, '2 MiB through a tiny send buffer, decrypted in userspace');
    },
  },
  {
    id: 'cork',
    title: 'cork() holds writes back until uncork()',
    async run(ctx) {
      const { a, b } = await kernelPair(ctx);
      const seen: Buffer[] = [];
      b.on('data', (c: Buffer) => seen.push(c));
      a.cork();
      a.write('held ');
      a.write('back');
      await sleep(100);
      ctx.equal(Buffer.concat(seen).length, 0, 'nothing arrives while corked');
      a.uncork();
      const deadline = Date.now() + 5000;
      while (Buffer.concat(seen).length < 9 && Date.now() < deadline) await sleep(5);
      ctx.equal(Buffer.concat(seen).toString(), 'held back', 'everything arrives after uncork');
    },
  },
  {
    id: 'max-record-size',
    title: 'maxRecordSize 4096: the kernel seals records of at most 4096 bytes, and they open in userspace',
    needs: 'TLS_TX_MAX_PAYLOAD_LEN (the kernel record size limit)',
    async run(ctx) {
      const k = constants();
      const { sock, raw, opener } = await wirePair(ctx);
      try {
        sock.maxRecordSize = 4096;
      } catch (err) {
        const e = err as Error & { code?: string; errno?: number };
        ctx.observe('setMaxRecordSize', e.code ?? e.message);
        if (e.code === 'ERR_KTLS_UNSUPPORTED')
          ctx.unsupported(`setsockopt(TLS_TX_MAX_PAYLOAD_LEN) failed (${e.errno !== undefined ? rc(e.errno) : e.code}): ${e.message}`);
        throw err;
      }
      ctx.equal(sock.maxRecordSize, 4096, 'maxRecordSize reads back');
      const payload = randomBytes(10_000);
      sock.write(payload);
      const records = await readRecords(raw, opener, payload.length);
      for (const r of records) ctx.equal(r.type, k.RECORD_APPLICATION_DATA, 'record type');
      const plain = records.map((r) => r.data);
      const sizes = plain.map((p) => p.length);
      ctx.observe('recordSizes', sizes.join(','));
      ctx.ok(
        sizes.every((n) => n <= 4096),
        `records of at most 4096 bytes (${sizes.join(',')})`,
      );
      ctx.bytes(Buffer.concat(plain), payload, 'plaintext');
    },
  },
  {
    id: 'wire-decrypt',
    title: 'kernel records decrypt in userspace at the expected sequence numbers, and the sealer reproduces them byte for byte',
    async run(ctx) {
      const k = constants();
      const start = (1n << 48n) + 5n;
      const { sock, raw, sealer, opener, keys } = await wirePair(ctx, { allowHalfOpen: true }, { ab: start, ba: start + 7n });
      ctx.equal(sock.getSequenceNumbers().tx, start + 7n, 'kernel TX starts at the given seq');
      ctx.equal(sock.getSequenceNumbers().rx, start, 'kernel RX starts at the given seq');
      const payload = randomBytes(40_000);
      sock.write(payload);
      const expected = Buffer.concat(new RecordSealer(ctx.version, ctx.cipher, keys.ba).seal(k.RECORD_APPLICATION_DATA, payload));
      const wire = await readBytes(raw, expected.length);
      ctx.bytes(wire, expected, 'kernel ciphertext equals the userspace sealer’s');
      opener.push(wire);
      const recs = openAll(opener);
      ctx.equal(recs.length, 3, '40000 bytes are 3 records');
      ctx.ok(
        recs.every((r) => r.type === k.RECORD_APPLICATION_DATA),
        'application data records',
      );
      ctx.bytes(Buffer.concat(recs.map((r) => r.data)), payload, 'plaintext');
      ctx.equal(sock.getSequenceNumbers().tx, opener.seq, 'kernel TX seq advanced by the records sent');
      // userspace → kernel
      const msg = randomBytes(20_000);
      raw.write(Buffer.concat(sealer.seal(k.RECORD_APPLICATION_DATA, msg)));
      raw.end(Buffer.concat(sealer.seal(k.RECORD_ALERT, Buffer.from([1, 0]))));
      ctx.bytes(await readAll(sock), msg, 'userspace records open in the kernel');
      ctx.equal(sock.getSequenceNumbers().rx, start + 3n, 'kernel RX seq counts 2 data records and the alert');
    },
  },
];

/** The transmission group. */
export const transmission: CheckGroup = {
  name: 'transmission',
  description:
    'records of every size each way, small writes and reads, writev, record boundaries, non-blocking sends, cork, wire bytes against the userspace record layer',
  checks,
};
