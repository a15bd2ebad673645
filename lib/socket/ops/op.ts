/**
 * What every write-queue op shares: the context a socket gives it, the step
 * protocol, and the one sendmsg loop for buffers and sealed records.
 * @packageDocumentation
 */
import * as os from 'node:os';
import type { Binding, NativeHandle } from '../../native/binding.js';
import { constants } from '../../native/constants.js';
import { KtlsSystemError } from '../../native/errors.js';
import type { RecordSealer } from '../../record/layer.js';

const E = os.constants.errno;
/** Bytes one sendfile/splice call may move; bounded so one call never monopolizes the loop. */
export const STEP = 1 << 20;
/** Userspace fallback reads: a whole number of full records. */
export const READ_CHUNK = 16 * 16384;

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
  /** The process byte counter its bytes count in (`ktls.stats()`). */
  readonly counter?: 'sendFile' | 'spliceFrom';
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
    const head = bufs[0];
    if (head.length <= n) {
      n -= head.length;
      bufs.shift();
    } else {
      bufs[0] = head.subarray(n);
      n = 0;
    }
  }
  while (bufs.length > 0 && bufs[0].length === 0) bufs.shift();
}

/**
 * One sendmsg of the first buffers of `bufs` (no more than the kernel takes in
 * one call), removing what went: the bytes sent, or -errno (EAGAIN included).
 * `type` is a record type for kernel TX (0: application data).
 */
export function sendOnce(handle: NativeHandle, bufs: Buffer[], type = 0): number {
  const max = constants().MAX_IOV;
  const n = handle.send(bufs.length > max ? bufs.slice(0, max) : bufs, type);
  if (n >= 0) consume(bufs, n); // 0 too: empty buffers at the head are dropped
  return n;
}

/** Sends already-sealed userspace records; true once all of `bufs` has gone, false when the socket is full. */
export function sendSealed(ctx: TxContext, bufs: Buffer[], syscall: string): boolean {
  while (bufs.length > 0) {
    const n = sendOnce(ctx.handle, bufs);
    if (n === -E.EAGAIN || n === -E.EINTR) return false;
    if (n < 0) throw new KtlsSystemError(n, syscall);
  }
  return true;
}
