/**
 * Splice-read: decrypted application data leaves the kTLS socket for a pipe
 * with `spliceTo` (splice(2) under kernel RX) — whole, in parts, after a
 * partial read — and control and empty records met on the way are handled.
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { constants } from '../../native/constants.js';
import type { KtlsSocket } from '../../socket/socket.js';
import { createPipe } from '../../tools/pipe.js';
import type { Check, CheckContext, CheckGroup } from '../types.js';
import { allowedHandshake, errorOf, kernelPair, readAll, sleep, wirePair } from '../util.js';

/** A pipe whose read end is collected by a `net.Socket`; `finish()` closes the write end and resolves with everything. */
function sink(ctx: CheckContext): { writeFd: number; finish(): Promise<Buffer> } {
  const [r, w] = createPipe();
  const reader = new net.Socket({ fd: r, readable: true, writable: false });
  const all = readAll(reader);
  all.catch(() => undefined);
  let open = true;
  const close = (): void => {
    if (open) fs.closeSync(w);
    open = false;
  };
  ctx.defer(() => (close(), reader.destroy()));
  return {
    writeFd: w,
    finish: () => {
      close();
      return all;
    },
  };
}

/** Waits until `sock` has buffered at least `n` bytes without consuming them. */
async function buffered(sock: KtlsSocket, n: number): Promise<void> {
  const deadline = Date.now() + 5000;
  sock.pause();
  while (sock.readableLength < n && Date.now() < deadline) {
    sock.read(0);
    await sleep(5);
  }
}

const checks: Check[] = [
  {
    id: 'splice-to-whole',
    title: 'spliceTo a pipe: 2 MiB until close_notify, every byte',
    timeoutMs: 60_000,
    async run(ctx) {
      const { a, b } = await kernelPair(ctx, { allowHalfOpen: true });
      const data = randomBytes(2 * 1024 * 1024);
      const out = sink(ctx);
      a.end(data);
      const n = await b.spliceTo(out.writeFd);
      ctx.equal(n, data.length, 'spliceTo resolves with the bytes moved at close_notify');
      ctx.bytes(await out.finish(), data, 'pipe contents');
      ctx.equal(b.bytesRead, data.length, 'bytesRead counts spliced bytes');
    },
  },
  {
    id: 'splice-to-parts',
    title: 'spliceTo with lengths 1, 16384, 16385, then the rest, into one pipe',
    timeoutMs: 60_000,
    async run(ctx) {
      const { a, b } = await kernelPair(ctx, { allowHalfOpen: true });
      const data = randomBytes(300_000);
      const out = sink(ctx);
      a.end(data);
      let total = 0;
      for (const len of [1, 16384, 16385]) {
        ctx.equal(await b.spliceTo(out.writeFd, { length: len }), len, `spliceTo length ${len}`);
        total += len;
      }
      ctx.equal(await b.spliceTo(out.writeFd), data.length - total, 'spliceTo the rest');
      ctx.bytes(await out.finish(), data, 'pipe contents');
    },
  },
  {
    id: 'splice-after-read',
    title: 'spliceTo after a partial read: data the stream already holds goes first, nothing twice',
    async run(ctx) {
      const { a, b } = await kernelPair(ctx, { allowHalfOpen: true });
      const data = randomBytes(100_000);
      a.write(data.subarray(0, 5000));
      await buffered(b, 5000);
      const head = b.read(7) as Buffer | null;
      ctx.ok(head !== null, 'read(7) returned data');
      ctx.bytes(head!, data.subarray(0, 7), 'the partial read');
      ctx.observe('heldByStream', b.readableLength);
      const out = sink(ctx);
      a.end(data.subarray(5000));
      ctx.equal(await b.spliceTo(out.writeFd), data.length - 7, 'spliceTo moves the rest');
      ctx.bytes(await out.finish(), data.subarray(7), 'pipe contents continue where the read stopped');
    },
  },
  {
    id: 'splice-control-record',
    title: 'spliceTo meets a handshake record (event, splicing goes on), then a fatal alert (rejects; earlier data in the pipe)',
    async run(ctx) {
      const k = constants();
      const { sock, raw, sealer } = await wirePair(ctx);
      const msg = allowedHandshake(ctx.version);
      const seen = new Promise<Buffer>((resolve) => sock.once('handshake', resolve));
      const out = sink(ctx);
      const d1 = randomBytes(20_000);
      const d2 = randomBytes(3000);
      const err = errorOf(sock);
      raw.write(
        Buffer.concat([...sealer.seal(k.RECORD_APPLICATION_DATA, d1), ...sealer.seal(k.RECORD_HANDSHAKE, msg), ...sealer.seal(k.RECORD_APPLICATION_DATA, d2)]),
      );
      ctx.equal(await sock.spliceTo(out.writeFd, { length: d1.length + d2.length }), d1.length + d2.length, 'spliceTo across the handshake record');
      ctx.bytes(await seen, msg, 'handshake event bytes');
      const out2 = sink(ctx);
      raw.write(Buffer.concat([...sealer.seal(k.RECORD_APPLICATION_DATA, Buffer.from('last')), ...sealer.seal(k.RECORD_ALERT, Buffer.from([2, 40]))]));
      const failed = await sock.spliceTo(out2.writeFd).then(
        () => null,
        (e: Error & { code?: string; bytesSent?: number }) => e,
      );
      ctx.ok(failed !== null, 'spliceTo rejects at a fatal alert');
      ctx.equal(failed?.code, 'ERR_KTLS_ALERT', 'spliceTo rejects with the alert that ended the socket');
      ctx.observe('rejectCode', failed!.code ?? failed!.message);
      ctx.observe('bytesSentBeforeAlert', failed!.bytesSent ?? null);
      const e = await err;
      ctx.equal(e.code, 'ERR_KTLS_ALERT', 'the socket is destroyed with the alert');
      ctx.equal(e.alert, 'handshake_failure', 'alert name');
      ctx.bytes(await out.finish(), Buffer.concat([d1, d2]), 'first pipe contents');
      ctx.equal((await out2.finish()).toString(), 'last', 'data before the alert reached the pipe');
    },
  },
  {
    id: 'splice-empty-records',
    title: 'spliceTo skips empty application-data records and ends at close_notify',
    async run(ctx) {
      const k = constants();
      const { sock, raw, sealer } = await wirePair(ctx, { allowHalfOpen: true });
      const out = sink(ctx);
      const d1 = randomBytes(1000);
      const d2 = randomBytes(17_000);
      const empty = (): Buffer[] => sealer.seal(k.RECORD_APPLICATION_DATA, Buffer.alloc(0));
      raw.write(
        Buffer.concat([
          ...empty(),
          ...sealer.seal(k.RECORD_APPLICATION_DATA, d1),
          ...empty(),
          ...empty(),
          ...sealer.seal(k.RECORD_APPLICATION_DATA, d2),
          ...empty(),
          ...sealer.seal(k.RECORD_ALERT, Buffer.from([1, 0])),
        ]),
      );
      ctx.equal(await sock.spliceTo(out.writeFd), d1.length + d2.length, 'spliceTo result');
      ctx.bytes(await out.finish(), Buffer.concat([d1, d2]), 'pipe contents');
      ctx.equal(sock.getSequenceNumbers().rx, 8n, 'RX seq counts 4 empty records, 3 data records and the alert');
    },
  },
];

/** The splice-read group. */
export const spliceRead: CheckGroup = {
  name: 'splice-read',
  description: 'spliceTo a pipe: whole, in parts, after a partial read; control records and empty records on the way',
  checks,
};
