/**
 * A KtlsSocket's write queue: buffers and control records for sendmsg, and
 * ops (sendFile, spliceFrom, KeyUpdate) that run in their turn. Userspace
 * records are sealed only when they reach the head, so sequence numbers follow
 * wire order. The queue does one non-blocking pass per call; the socket polls
 * for writability when it stops on a full socket buffer.
 * @packageDocumentation
 */
import * as os from 'node:os';
import type { Writable } from 'node:stream';
import type { Binding, NativeHandle } from '../native/binding.js';
import { constants } from '../native/constants.js';
import { KtlsError, KtlsSystemError, alertName } from '../native/errors.js';
import type { RecordSealer } from '../record/layer.js';
import { countAlert, countBytes } from './counters.js';
import { sendOnce, type TxContext, type WriteOp } from './ops/op.js';

const E = os.constants.errno;

type Callback = (err?: Error | null) => void;

interface Entry {
  bufs: Buffer[];
  type: number; // 0: application data
  cb: Callback;
  started?: boolean;
  op?: WriteOp;
  counted?: number;
  seal?: boolean; // userspace: plaintext still to be sealed
}

/** What the queue needs from its socket. */
export interface TxHost {
  readonly binding: Binding;
  readonly handle: NativeHandle;
  /** Kernel TX, the userspace sealer, plain bytes (a record layer beyond the fd), or no TX keys. */
  readonly tx: 'kernel' | 'plain' | RecordSealer | null;
  readonly destroyed: boolean;
  readonly maxRecordSize: number | undefined;
  destroy(err: Error): void;
  /** Bytes moved: restarts the idle timer. */
  activity(): void;
  /** A pass ended: re-evaluate polling (and TCP_CORK once empty). */
  passDone(): void;
  /** New kernel TX keys are about to go in. */
  txRekeying(): void;
}

/** A zero-length chunk stands in for an op in the Writable's own buffer, so ops keep their place among writes. */
const markers = new WeakMap<Buffer, WriteOp>();

const noop = (): void => undefined;

const noTxKeys = (): KtlsError => new KtlsError('ERR_KTLS_NO_TX_KEYS', 'this socket was upgraded without tx keys and cannot send');

/** What the queue's ops see of it (prototype members: nothing per socket but the object). */
class QueueContext implements TxContext {
  readonly #queue: WriteQueue;
  readonly #host: TxHost;

  constructor(queue: WriteQueue, host: TxHost) {
    this.#queue = queue;
    this.#host = host;
  }

  get sealer(): RecordSealer | null {
    const tx = this.#host.tx;
    return typeof tx === 'object' ? tx : null;
  }

  get binding(): Binding {
    return this.#host.binding;
  }

  get handle(): NativeHandle {
    return this.#host.handle;
  }

  get maxRecordSize(): number | undefined {
    return this.#host.maxRecordSize;
  }

  accepted(n: number): void {
    this.#queue.kernelPlainSent += n;
  }

  txRekeying(): void {
    this.#host.txRekeying();
  }

  wake(): void {
    if (!this.#host.destroyed) this.#queue.run();
  }
}

/** The socket's write queue. */
export class WriteQueue {
  /** Application bytes accepted for sending. */
  bytesWritten = 0;
  /** Plaintext bytes kernel TX has accepted (for the flush-before-FIN accounting). */
  kernelPlainSent = 0;
  /** The head op waits on something it watches itself (file read, source fd), not on the socket. */
  opWaiting = false;
  #host: TxHost;
  #entries: Entry[] = [];
  #results = new Map<WriteOp, { resolve: (n: number) => void; reject: (e: Error) => void }>();
  #ctx: TxContext;

  constructor(host: TxHost) {
    this.#host = host;
    this.#ctx = new QueueContext(this, host);
  }

  get length(): number {
    return this.#entries.length;
  }

  /** A userspace record is half sent at the head: nothing else may go on the wire now. */
  get midRecord(): boolean {
    return typeof this.#host.tx === 'object' && this.#entries[0]?.started === true;
  }

  /** Op markers written to the stream that have not reached the queue yet. */
  #markersInStream = 0;

  /**
   * Queues `op` in its place among the writes of `stream` and returns the
   * promise of its result. Where the stream holds nothing ahead of it (no
   * buffered chunk, no marker on its way, not corked) the op goes straight
   * into the queue, without the Writable's round trip, which costs a small
   * file more than its sendfile(2) does; otherwise (and always with
   * `viaStream`: a socket before its connection) a zero-length marker chunk
   * carries it through the stream.
   */
  start(op: WriteOp, stream: Writable, viaStream = false): Promise<number> {
    const result = new Promise<number>((resolve, reject) => this.#results.set(op, { resolve, reject }));
    if (!viaStream && stream.writableLength === 0 && !stream.writableCorked && this.#markersInStream === 0) {
      this.#enqueueOp(op, noop);
      return result;
    }
    const marker = Buffer.alloc(0);
    markers.set(marker, op);
    this.#markersInStream++;
    stream.write(marker);
    return result;
  }

  /** Queues chunks from `_write`/`_writev`, splitting at op markers; `cb` runs once all are done. */
  enqueueChunks(chunks: Buffer[], cb: Callback): void {
    let parts = 0;
    let failed = false;
    let all = false;
    const partDone = (err?: Error | null): void => {
      if (failed) return;
      if (err) {
        failed = true;
        return cb(err);
      }
      if (--parts === 0 && all) cb(null);
    };
    let run: Buffer[] = [];
    const flush = (): void => {
      if (run.length === 0) return;
      parts++;
      this.enqueue(run, 0, partDone);
      run = [];
    };
    for (const chunk of chunks) {
      const op = chunk.length === 0 ? markers.get(chunk) : undefined;
      if (op) this.#markersInStream--;
      if (!op) {
        run.push(chunk);
        continue;
      }
      flush();
      parts++;
      this.#enqueueOp(op, partDone);
    }
    flush();
    all = true;
    if (parts === 0) cb(null);
  }

  /** Queues buffers as one write of record `type` (0: application data). */
  enqueue(bufs: Buffer[], type: number, callback: Callback): void {
    const tx = this.#host.tx;
    if (tx === null) return callback(noTxKeys());
    const plain = bufs.reduce((n, b) => n + b.length, 0);
    this.bytesWritten += type === 0 ? plain : 0;
    let cb = callback;
    if (type === 0) countBytes('write', plain);
    else if (type === constants().RECORD_ALERT) {
      const name = alertName(bufs[0]?.[1] ?? 0);
      cb = (err) => {
        if (!err) countAlert('sent', name);
        callback(err);
      };
    }
    // An empty write is no record at all (the kernel sends nothing for it either).
    this.#entries.push({ bufs, type, cb, seal: typeof tx === 'object' && (type !== 0 || plain > 0) });
    if (this.#entries.length === 1) this.run();
  }

  #enqueueOp(op: WriteOp, cb: Callback): void {
    if (this.#host.tx === null) {
      this.#settle(op, noTxKeys());
      return cb(null);
    }
    this.#entries.push({ bufs: [], type: 0, op, cb });
    if (this.#entries.length === 1) this.run();
  }

  /** One non-blocking pass over the queue. */
  run(): void {
    const host = this.#host;
    this.opWaiting = false;
    while (this.#entries.length > 0 && !host.destroyed) {
      const entry = this.#entries[0];
      if (entry.op) {
        if (this.#runOp(entry as Entry & { op: WriteOp })) continue;
        break;
      }
      const tx = host.tx;
      if (entry.seal && typeof tx === 'object' && tx !== null && !this.#sealHead(entry, tx)) continue;
      const n = sendOnce(host.handle, entry.bufs, entry.type);
      if (n === -E.EAGAIN || n === -E.EINTR) break;
      if (n < 0) {
        this.#entries.shift();
        entry.cb(new KtlsSystemError(n, 'write')); // named as net.Socket names it
        continue;
      }
      if (tx === 'kernel') this.kernelPlainSent += n;
      if (n > 0) host.activity();
      entry.started = true;
      if (entry.bufs.length === 0) {
        this.#entries.shift();
        entry.cb(null);
      }
    }
    host.passDone();
  }

  /** Fails everything still queued (the socket is being destroyed). */
  abandon(err: Error | null): void {
    for (const entry of this.#entries.splice(0)) {
      const e = err ?? new KtlsError('ERR_STREAM_DESTROYED', 'socket destroyed before the write completed');
      if (entry.op) this.#settle(entry.op, new KtlsError('ERR_STREAM_DESTROYED', 'socket destroyed before the transfer completed', { cause: e }));
      entry.cb(e);
    }
  }

  /** Seals a userspace entry's plaintext in place; false (entry failed and removed) on error. */
  #sealHead(entry: Entry, sealer: RecordSealer): boolean {
    const k = constants();
    try {
      entry.bufs = sealer.seal(
        entry.type === 0 ? k.RECORD_APPLICATION_DATA : entry.type,
        entry.bufs.length === 1 ? entry.bufs[0] : Buffer.concat(entry.bufs),
        this.#host.maxRecordSize,
      );
    } catch (err) {
      this.#entries.shift();
      entry.cb(err as Error); // e.g. ERR_KTLS_SEQ_EXHAUSTED
      return false;
    }
    entry.type = 0;
    entry.seal = false;
    return true;
  }

  /** Resolves or rejects an op's promise once; failures carry `bytesSent`. */
  #settle(op: WriteOp, err: Error | null): void {
    const r = this.#results.get(op);
    this.#results.delete(op);
    op.release();
    if (!r) return;
    if (err) r.reject(Object.assign(err, { bytesSent: op.sent }));
    else r.resolve(op.sent);
  }

  /** Adds what an op has sent since last counted (userspace ops make progress in I/O callbacks). */
  #count(entry: Entry & { op: WriteOp }): void {
    if (entry.op.sent !== entry.counted) this.#host.activity();
    this.bytesWritten += entry.op.sent - (entry.counted ?? 0);
    if (entry.op.counter) countBytes(entry.op.counter, entry.op.sent - (entry.counted ?? 0));
    entry.counted = entry.op.sent;
  }

  /** Runs the op at the head; false when the pass must stop. */
  #runOp(entry: Entry & { op: WriteOp }): boolean {
    const op = entry.op;
    entry.started = true; // a userspace op may be mid-record from here on
    let state: 'done' | 'blocked' | 'pending';
    try {
      state = op.step(this.#ctx);
    } catch (err) {
      this.#entries.shift();
      this.#count(entry);
      this.#settle(op, err as Error);
      // Bytes already on the wire make the stream unusable; otherwise the connection goes on.
      if (op.sent > 0 || op.committed) this.#host.destroy(err as Error);
      else entry.cb(null);
      return !this.#host.destroyed;
    }
    this.#count(entry);
    if (state !== 'done') {
      this.opWaiting = state === 'pending';
      return false;
    }
    this.#entries.shift();
    this.#settle(op, null);
    entry.cb(null);
    return true;
  }
}
