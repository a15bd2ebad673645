/**
 * `socket.sendFile()` as a write-queue entry, so it stays ordered with
 * `write()`: sendfile(2) under kernel TX (the bytes never enter JavaScript),
 * read + seal with the userspace record layer. Each native call is one
 * syscall; the op decides when to wait and on what.
 * @packageDocumentation
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { KIND_FILE, STAT, requireBinding } from '../../native/binding.js';
import { constants } from '../../native/constants.js';
import { KtlsError, KtlsSystemError } from '../../native/errors.js';
import type { RecordSealer } from '../../record/layer.js';
import { READ_CHUNK, STEP, sendSealed, type StepResult, type TxContext, type WriteOp } from './op.js';

const E = os.constants.errno;
/** fstat fields, written and read synchronously within one call. */
const statOut = new Float64Array(STAT.LENGTH);

/** Where a sendFile's bytes come from. */
export type FileSource = string | number | fs.promises.FileHandle;

/** `socket.sendFile()` as a write-queue entry: sendfile(2) under kernel TX, read + seal otherwise. */
export class SendFileOp implements WriteOp {
  sent = 0;
  readonly counter = 'sendFile';
  #source: FileSource;
  #offset: number;
  #length: number | undefined;
  #fd = -1;
  #ownsFd = false;
  #remaining = 0;
  #error: Error | null = null;
  #sealed: Buffer[] = [];
  /** An fs.read of the file has not called back: closing the fd now would let it hit a reused fd number. */
  #busy = false;
  #released = false;
  #eof = false;

  constructor(source: FileSource, offset: number, length: number | undefined) {
    this.#source = source;
    this.#offset = offset;
    this.#length = length;
  }

  step(ctx: TxContext): StepResult {
    if (this.#fd < 0 && this.#error === null) this.#open(ctx);
    if (this.#error) throw this.#error;
    return ctx.sealer ? this.#stepUserspace(ctx, ctx.sealer) : this.#stepKernel(ctx);
  }

  /**
   * Opens (a path) and sizes the file on the event loop: open and fstat are
   * page-cache lookups on a local filesystem, cheaper than the thread-pool
   * round trips fs.open/fs.fstat cost (two per file, most of a small file's time).
   */
  #open(ctx: TxContext): void {
    const b = ctx.binding;
    const src = this.#source;
    if (typeof src === 'string') {
      const fd = b.openFile(src);
      if (fd < 0) {
        this.#error = Object.assign(new KtlsSystemError(fd, 'open', src), { path: src });
        return;
      }
      this.#fd = fd;
      this.#ownsFd = true;
    } else {
      this.#fd = typeof src === 'number' ? src : src.fd;
    }
    const rc = b.statFd(this.#fd, statOut);
    const size = statOut[STAT.SIZE];
    if (rc < 0) this.#error = new KtlsSystemError(rc, 'fstat');
    else if (statOut[STAT.KIND] !== KIND_FILE) this.#error = new KtlsError('ERR_KTLS_NOT_A_FILE', 'sendFile needs a regular file');
    else if (this.#offset > size) this.#error = new KtlsError('ERR_OUT_OF_RANGE', `offset ${this.#offset} is past the end of the file (${size} bytes)`);
    else if (this.#length !== undefined && this.#offset + this.#length > size)
      this.#error = new KtlsError('ERR_OUT_OF_RANGE', `offset ${this.#offset} + length ${this.#length} is past the end of the file (${size} bytes)`);
    else this.#remaining = this.#length ?? size - this.#offset;
  }

  #stepKernel(ctx: TxContext): StepResult {
    const sock = ctx.handle.fd;
    while (this.#remaining > 0) {
      const n = ctx.binding.sendfile(sock, this.#fd, this.#offset, Math.min(this.#remaining, STEP));
      if (n === -E.EAGAIN || n === -E.EINTR) return 'blocked';
      if (n < 0) throw new KtlsSystemError(n, 'sendfile');
      if (n === 0) throw new KtlsError('ERR_KTLS_FILE_SHRUNK', `the file ended ${this.#remaining} bytes early`);
      this.#offset += n;
      this.#remaining -= n;
      this.sent += n;
      ctx.accepted(n);
    }
    return 'done';
  }

  #stepUserspace(ctx: TxContext, sealer: RecordSealer): StepResult {
    for (;;) {
      if (this.#sealed.length > 0 && !sendSealed(ctx, this.#sealed, 'sendmsg')) return 'blocked';
      if (this.#remaining === 0) return 'done';
      if (this.#eof) throw new KtlsError('ERR_KTLS_FILE_SHRUNK', `the file ended ${this.#remaining} bytes early`);
      if (this.#busy) return 'pending';
      this.#busy = true;
      const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, this.#remaining));
      fs.read(this.#fd, buf, 0, buf.length, this.#offset, (err, n) => {
        this.#busy = false;
        if (this.#released) return this.#close();
        if (err) this.#error = err;
        else if (n === 0) this.#eof = true;
        else {
          try {
            this.#sealed = sealer.seal(constants().RECORD_APPLICATION_DATA, buf.subarray(0, n), ctx.maxRecordSize);
            this.#offset += n;
            this.#remaining -= n;
            this.sent += n;
          } catch (e) {
            this.#error = e as Error;
          }
        }
        ctx.wake();
      });
      return 'pending';
    }
  }

  release(): void {
    this.#released = true;
    if (!this.#busy) this.#close(); // otherwise the pending callback closes it
  }

  #close(): void {
    if (this.#ownsFd && this.#fd >= 0) requireBinding().closeFd(this.#fd);
    this.#fd = -1;
  }
}
