/**
 * Zero-copy sends: sendfile(2) and splice(2) loops that run inside a
 * KtlsSocket's write queue (so they stay ordered with `write()`), and their
 * userspace-fallback equivalents (read, seal, send). Each native call is one
 * syscall; the loops here decide when to wait and on what.
 * @packageDocumentation
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { POLL_READABLE, type Binding, type NativeHandle } from './binding.js';
import { constants } from './constants.js';
import { KtlsError, KtlsSystemError } from './errors.js';
import type { RecordSealer } from './record.js';

const E = os.constants.errno;
/** Bytes one sendfile/splice call may move; bounded so one call never monopolizes the loop. */
const STEP = 1 << 20;
/** Userspace fallback reads: a whole number of full records. */
const READ_CHUNK = 16 * 16384;

/** What a write-queue entry needs from its socket. */
export interface TxContext {
  readonly binding: Binding;
  readonly handle: NativeHandle;
  /** The userspace sealer, or null when the kernel seals (TLS_TX installed). */
  readonly sealer: RecordSealer | null;
  /** Largest plaintext per record the userspace sealer should produce. */
  readonly maxRecordSize: number | undefined;
  /** Reports plaintext bytes the kernel accepted (for the flush-before-FIN accounting). */
  accepted(n: number): void;
  /** New TX keys are about to go in (the sequence number restarts): count the records sealed under the old ones. */
  txRekeying(): void;
  /** Re-runs the socket's write loop: an op that was waiting on something else can go on. */
  wake(): void;
}

/** `done`: finished; `blocked`: the socket is not writable; `pending`: waiting on something the op itself watches. */
export type StepResult = 'done' | 'blocked' | 'pending';

/** A write-queue entry that is not a plain buffer write. */
export interface WriteOp {
  /** Application bytes this op has handed to the socket so far. */
  readonly sent: number;
  /** Something of it reached the wire even with `sent` 0 (a control record): a failure now ends the connection. */
  readonly committed?: boolean;
  /** Makes as much progress as possible without blocking; throws a KtlsError on failure. */
  step(ctx: TxContext): StepResult;
  /** Releases files, pipes and watchers; called once, whatever the outcome. */
  release(): void;
}

/** Removes `n` sent bytes from the front of `bufs` (in place). */
export function consume(bufs: Buffer[], n: number): void {
  while (n > 0 && bufs.length > 0) {
    const head = bufs[0]!;
    if (head.length <= n) {
      n -= head.length;
      bufs.shift();
    } else {
      bufs[0] = head.subarray(n);
      n = 0;
    }
  }
  while (bufs.length > 0 && bufs[0]!.length === 0) bufs.shift();
}

/** Sends already-sealed userspace records; true once all of `bufs` has gone. */
function sendSealed(ctx: TxContext, bufs: Buffer[], syscall: string): boolean {
  while (bufs.length > 0) {
    const n = ctx.handle.send(bufs.length > 1024 ? bufs.slice(0, 1024) : bufs, 0);
    if (n === -E.EAGAIN || n === -E.EINTR) return false;
    if (n < 0) throw new KtlsSystemError(n, syscall);
    consume(bufs, n);
  }
  return true;
}

/** Watches a foreign fd for readability or writability with its own poll handle (on a dup). */
export class FdWatcher {
  #handle: NativeHandle | null = null;
  #binding: Binding;
  #fd: number;

  constructor(binding: Binding, fd: number) {
    this.#binding = binding;
    this.#fd = fd;
  }

  /** Calls `cb` once when `events` (POLL_READABLE/POLL_WRITABLE) is ready. */
  once(events: number, cb: () => void): void {
    if (this.#handle === null) {
      const dup = this.#binding.adopt(this.#fd, 0); // leave the fd's own blocking mode alone
      if (dup < 0) throw new KtlsSystemError(dup, 'fcntl(F_DUPFD_CLOEXEC)');
      this.#handle = new this.#binding.Handle(
        dup,
        () => {
          this.#handle?.poll(0);
          cb();
        },
        new Int32Array(1),
      );
    }
    const rc = this.#handle.poll(events);
    if (rc < 0) throw new KtlsSystemError(rc, 'epoll_ctl');
  }

  close(): void {
    this.#handle?.close();
    this.#handle = null;
  }
}

/** Where a sendFile's bytes come from. */
export type FileSource = string | number | fs.promises.FileHandle;

/** `socket.sendFile()` as a write-queue entry: sendfile(2) under kernel TX, read + seal otherwise. */
export class SendFileOp implements WriteOp {
  sent = 0;
  #source: FileSource;
  #offset: number;
  #length: number | undefined;
  #fd = -1;
  #ownsFd = false;
  #opening = false;
  #ready = false; // opened and sized
  #remaining = 0;
  #error: Error | null = null;
  #sealed: Buffer[] = [];
  /** An fs call (open, fstat, read) on the file has not called back: closing the fd now would let it hit a reused fd number. */
  #busy = false;
  #released = false;
  #eof = false;

  constructor(source: FileSource, offset: number, length: number | undefined) {
    this.#source = source;
    this.#offset = offset;
    this.#length = length;
  }

  step(ctx: TxContext): StepResult {
    if (this.#error) throw this.#error;
    if (!this.#ready) {
      if (!this.#opening) this.#open(ctx);
      return 'pending';
    }
    return ctx.sealer ? this.#stepUserspace(ctx, ctx.sealer) : this.#stepKernel(ctx);
  }

  #open(ctx: TxContext): void {
    this.#opening = true;
    const src = this.#source;
    const opened = (err: Error | null, fd: number, own: boolean): void => {
      this.#busy = false;
      if (!err) {
        this.#fd = fd;
        this.#ownsFd = own;
      }
      if (this.#released) return this.#close();
      if (err) {
        this.#error = err;
        return ctx.wake();
      }
      this.#busy = true;
      fs.fstat(fd, (e, st) => {
        this.#busy = false;
        if (this.#released) return this.#close();
        if (e) this.#error = e;
        else if (!st.isFile()) this.#error = new KtlsError('ERR_KTLS_NOT_A_FILE', 'sendFile needs a regular file');
        else if (this.#offset > st.size) this.#error = new KtlsError('ERR_OUT_OF_RANGE', `offset ${this.#offset} is past the end of the file (${st.size} bytes)`);
        else if (this.#length !== undefined && this.#offset + this.#length > st.size)
          this.#error = new KtlsError('ERR_OUT_OF_RANGE', `offset ${this.#offset} + length ${this.#length} is past the end of the file (${st.size} bytes)`);
        else this.#remaining = this.#length ?? st.size - this.#offset;
        this.#ready = true;
        ctx.wake();
      });
    };
    if (typeof src === 'string') {
      this.#busy = true;
      fs.open(src, 'r', (err, fd) => opened(err, fd, true));
    } else if (typeof src === 'number') opened(null, src, false);
    else opened(null, src.fd, false);
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
    if (this.#ownsFd && this.#fd >= 0) fs.close(this.#fd, () => undefined);
    this.#fd = -1;
  }
}

/** `socket.spliceFrom()`: bytes from a readable fd into the socket, through a pipe when the fd is not one. */
export class SpliceFromOp implements WriteOp {
  sent = 0;
  #src: number;
  #remaining: number;
  #pipe: [number, number] | null = null;
  #inPipe = 0;
  #eof = false;
  #watcher: FdWatcher | null = null;
  #direct: boolean | undefined;
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
        const n = b.splice(this.#pipe[0], sock, this.#inPipe, flags | (this.#eof ? 0 : k.SPLICE_F_MORE));
        if (n === -E.EAGAIN || n === -E.EINTR) return 'blocked';
        if (n < 0) throw new KtlsSystemError(n, 'splice');
        this.#inPipe -= n;
        this.sent += n;
        ctx.accepted(n);
        continue;
      }
      if (this.#eof || this.#remaining === 0) return 'done';
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
    this.#watcher.once(POLL_READABLE, () => ctx.wake());
    return 'pending';
  }

  release(): void {
    this.#watcher?.close();
    if (this.#pipe) for (const fd of this.#pipe) fs.close(fd, () => undefined);
    this.#pipe = null;
  }
}
