/**
 * `socket.spliceFrom()` as a write-queue entry: bytes from a readable fd (a
 * pipe directly, anything else through an internal pipe) into the socket with
 * splice(2) under kernel TX; read + seal with the userspace record layer.
 * @packageDocumentation
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { POLL_READABLE } from '../../native/binding.js';
import { constants } from '../../native/constants.js';
import { KtlsSystemError } from '../../native/errors.js';
import type { RecordSealer } from '../../record/layer.js';
import { FdWatcher } from '../fd-watcher.js';
import { READ_CHUNK, STEP, sendSealed, type StepResult, type TxContext, type WriteOp } from './op.js';

const E = os.constants.errno;

/** `socket.spliceFrom()`: bytes from a readable fd into the socket, through a pipe when the fd is not one. */
export class SpliceFromOp implements WriteOp {
  sent = 0;
  readonly counter = 'spliceFrom';
  #src: number;
  #remaining: number;
  #pipe: [number, number] | null = null;
  #inPipe = 0;
  #eof = false;
  #watcher: FdWatcher | null = null;
  #direct: boolean | undefined;
  /** A socket or device in blocking mode: splice(2) from it waits for data, so poll first. */
  #blocking = false;
  /** The last read from the source filled its step: more is probably ready (SPLICE_F_MORE). */
  #moreReady = false;
  #sealed: Buffer[] = [];

  constructor(src: number, length: number | undefined) {
    this.#src = src;
    this.#remaining = length ?? Number.POSITIVE_INFINITY;
  }

  step(ctx: TxContext): StepResult {
    const b = ctx.binding;
    if (this.#direct === undefined) {
      const kind = b.fdKind(this.#src);
      if (kind < 0) throw new KtlsSystemError(kind, 'fstat');
      if (kind === 2 || kind === 4) {
        const fl = b.fdFlags(this.#src);
        if (fl < 0) throw new KtlsSystemError(fl, 'fcntl');
        this.#blocking = (fl & b.constants.O_NONBLOCK) === 0;
      }
      this.#direct = kind === 1 || ctx.sealer !== null; // 1: a pipe
      if (!this.#direct) {
        const p = b.pipe(1, 0);
        if (typeof p === 'number') throw new KtlsSystemError(p, 'pipe2');
        this.#pipe = p;
      }
    }
    return ctx.sealer ? this.#stepUserspace(ctx, ctx.sealer) : this.#stepKernel(ctx);
  }

  #stepKernel(ctx: TxContext): StepResult {
    const b = ctx.binding;
    const k = constants();
    const sock = ctx.handle.fd;
    const flags = k.SPLICE_F_MOVE | k.SPLICE_F_NONBLOCK;
    for (;;) {
      if (this.#pipe && this.#inPipe > 0) {
        // MORE only while the source had more ready: on the last bytes, or before the source goes
        // quiet, it would leave kTLS holding the record open (Linux 7.x sends nothing until more comes).
        const n = b.splice(this.#pipe[0], sock, this.#inPipe, flags | (this.#moreReady ? k.SPLICE_F_MORE : 0));
        if (n === -E.EAGAIN || n === -E.EINTR) return 'blocked';
        if (n < 0) throw new KtlsSystemError(n, 'splice');
        this.#inPipe -= n;
        this.sent += n;
        ctx.accepted(n);
        continue;
      }
      if (this.#eof || this.#remaining === 0) return 'done';
      if (this.#blocking) {
        const ready = b.ready(this.#src, POLL_READABLE);
        if (ready < 0) throw new KtlsSystemError(ready, 'poll');
        if ((ready & 5) === 0) return this.#waitSource(ctx);
      }
      const want = Math.min(this.#remaining, STEP);
      const n = this.#pipe ? b.splice(this.#src, this.#pipe[1], want, flags) : b.splice(this.#src, sock, want, flags);
      if (n === -E.EAGAIN || n === -E.EINTR) {
        const ready = b.ready(this.#src, POLL_READABLE);
        if (ready < 0) throw new KtlsSystemError(ready, 'poll');
        if (this.#pipe || (ready & 5) === 0) return this.#waitSource(ctx);
        return 'blocked'; // the source has data: the socket is full
      }
      if (n < 0) throw new KtlsSystemError(n, 'splice');
      if (n === 0) {
        this.#eof = true;
        continue;
      }
      this.#remaining -= n;
      this.#moreReady = n === want && this.#remaining > 0;
      if (this.#pipe) this.#inPipe += n;
      else {
        this.sent += n;
        ctx.accepted(n);
      }
    }
  }

  #stepUserspace(ctx: TxContext, sealer: RecordSealer): StepResult {
    for (;;) {
      if (this.#sealed.length > 0 && !sendSealed(ctx, this.#sealed, 'sendmsg')) return 'blocked';
      if (this.#eof || this.#remaining === 0) return 'done';
      // The fd may be blocking: read only what poll says is there.
      const ready = ctx.binding.ready(this.#src, POLL_READABLE);
      if (ready < 0) throw new KtlsSystemError(ready, 'poll');
      if ((ready & 5) === 0) return this.#waitSource(ctx);
      const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, this.#remaining));
      const n = ctx.binding.readFd(this.#src, buf, 0, buf.length);
      if (n === -E.EAGAIN || n === -E.EINTR) return this.#waitSource(ctx);
      if (n < 0) throw new KtlsSystemError(n, 'read');
      if (n === 0) {
        this.#eof = true;
        continue;
      }
      this.#sealed = sealer.seal(constants().RECORD_APPLICATION_DATA, buf.subarray(0, n), ctx.maxRecordSize);
      this.#remaining -= n;
      this.sent += n;
    }
  }

  #waitSource(ctx: TxContext): StepResult {
    this.#watcher ??= new FdWatcher(ctx.binding, this.#src);
    this.#watcher.whenReady(POLL_READABLE, () => ctx.wake());
    return 'pending';
  }

  release(): void {
    this.#watcher?.close();
    if (this.#pipe) for (const fd of this.#pipe) fs.close(fd, () => undefined);
    this.#pipe = null;
  }
}
