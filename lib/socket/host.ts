/**
 * What a socket's parts (read path, write queue, TX flush accounting) call
 * back into: one small object per socket whose members live on the prototype.
 * Three object literals of getters and arrow functions cost an idle
 * connection about 3 KiB of heap (every closure, its context and the
 * literals' dictionaries, per socket); this costs one object of two fields.
 * @packageDocumentation
 */
import type { Duplex } from 'node:stream';
import type { Binding, NativeHandle } from '../native/binding.js';
import type { KeySchedule } from '../record/key-schedule.js';
import type { RecordSealer } from '../record/layer.js';
import type { WriteOp } from './ops/op.js';
import type { RecordPaths } from './paths.js';
import type { ReadHost } from './read-path.js';
import type { FlushHost } from './tx-flush.js';
import type { TxHost, WriteQueue } from './write-queue.js';

/**
 * The socket's private state and methods, reached through one object shared by
 * every socket of a class (made in the class's static block, where its private
 * names are in scope).
 * @internal
 */
export interface SocketInner<S> {
  paths(s: S): RecordPaths;
  queue(s: S): WriteQueue;
  schedule(s: S): KeySchedule | null;
  maxRecordSize(s: S): number | undefined;
  activity(s: S): void;
  setPoll(s: S): void;
  startOp(s: S, op: WriteOp): Promise<number>;
  writesFlushed(s: S): void;
  txRekeying(s: S): void;
  takeSocketError(s: S): number;
}

/** One socket's {@link ReadHost}, {@link TxHost} and {@link FlushHost}. @internal */
export class SocketHost<S extends Duplex> implements ReadHost, TxHost, FlushHost {
  readonly #s: S;
  readonly #inner: SocketInner<S>;

  constructor(socket: S, inner: SocketInner<S>) {
    this.#s = socket;
    this.#inner = inner;
  }

  get paths(): RecordPaths {
    return this.#inner.paths(this.#s);
  }

  get binding(): Binding {
    return this.paths.binding;
  }

  get handle(): NativeHandle {
    return this.paths.handle;
  }

  get tx(): 'kernel' | 'plain' | RecordSealer | null {
    return this.paths.tx;
  }

  get queue(): WriteQueue {
    return this.#inner.queue(this.#s);
  }

  get schedule(): KeySchedule | null {
    return this.#inner.schedule(this.#s);
  }

  get maxRecordSize(): number | undefined {
    return this.#inner.maxRecordSize(this.#s);
  }

  get destroyed(): boolean {
    return this.#s.destroyed;
  }

  get writableEnded(): boolean {
    return this.#s.writableEnded;
  }

  get readableLength(): number {
    return this.#s.readableLength;
  }

  push(chunk: Buffer | null): boolean {
    const more = this.#s.push(chunk);
    // As node:net does at EOF: read(0) lets 'end' fire on a stream nobody is reading.
    if (chunk === null) this.#s.read(0);
    return more;
  }

  unshift(chunk: Buffer): void {
    this.#s.unshift(chunk);
  }

  destroy(err: Error): void {
    this.#s.destroy(err);
  }

  emit(event: string, ...args: unknown[]): boolean {
    return this.#s.emit(event, ...args);
  }

  activity(): void {
    this.#inner.activity(this.#s);
  }

  setPoll(): void {
    this.#inner.setPoll(this.#s);
  }

  startOp(op: WriteOp): Promise<number> {
    return this.#inner.startOp(this.#s, op);
  }

  passDone(): void {
    this.#inner.writesFlushed(this.#s);
    this.#inner.setPoll(this.#s);
  }

  txRekeying(): void {
    this.#inner.txRekeying(this.#s);
  }

  takeSocketError(): number {
    return this.#inner.takeSocketError(this.#s);
  }
}
