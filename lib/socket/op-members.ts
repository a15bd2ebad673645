/**
 * The KtlsSocket members that send beside `write()`: `sendFile()` and
 * `spliceFrom()` (write-queue ops, ordered with writes) and the largest record
 * sent. Arguments are checked here, before anything is queued.
 * @packageDocumentation
 */
import { constants } from '../native/constants.js';
import { invalidArgType } from '../native/errors.js';
import { checkRecordSize } from '../record/layer.js';
import type { WriteOp } from './ops/op.js';
import { SendFileOp, type FileSource } from './ops/send-file.js';
import { SpliceFromOp } from './ops/splice-from.js';
import { checkFd, checkLength, type SendFileOptions, type SpliceOptions } from './options.js';
import { KtlsTlsMembers } from './tls-members.js';

/** What a KtlsSocket sends beside its stream. */
export abstract class KtlsOpMembers extends KtlsTlsMembers {
  /** The record size set with `setMaxRecordSize()`, if one was. */
  protected recordLimit: number | undefined;

  /** Queues `op` in order with the writes before it. */
  protected abstract startOp(op: WriteOp): Promise<number>;

  /** Makes `size` the largest plaintext per record sent (throws where the kernel cannot). */
  protected abstract applyMaxRecordSize(size: number): void;

  /** {@link KtlsOpMembers.applyMaxRecordSize}, its failure returned rather than thrown. */
  protected recordSizeError(size: number): Error | null {
    try {
      this.applyMaxRecordSize(size);
      return null;
    } catch (err) {
      return err as Error;
    }
  }

  /**
   * Largest plaintext per record this socket sends (RFC 8449's record size
   * limit; OpenSSL's `split_send_fragment`). Under kernel TX it is
   * `TLS_TX_MAX_PAYLOAD_LEN`, which older kernels lack: setting it there throws
   * `ERR_KTLS_UNSUPPORTED`. The userspace record layer always honours it.
   */
  get maxRecordSize(): number {
    if (this.recordLimit !== undefined) return this.recordLimit;
    return constants().MAX_PLAINTEXT;
  }

  /** See {@link KtlsSocket.setMaxRecordSize}. */
  set maxRecordSize(size: number) {
    this.setMaxRecordSize(size);
  }

  /** Sets {@link KtlsSocket.maxRecordSize}; returns this. */
  setMaxRecordSize(size: number): this {
    checkRecordSize(size, 'maxRecordSize');
    this.applyMaxRecordSize(size);
    this.recordLimit = size;
    return this;
  }

  #zeroCopyDecided = false;

  /**
   * `TLS_TX_ZEROCOPY_RO` where, and only where, the NIC seals this socket's
   * records (decided at the first sendFile): the NIC then reads the file's
   * pages in place instead of the kernel copying them. The caveat is the
   * option's: a file modified while it is being sent goes out as modified.
   * With software kTLS it would gain nothing, so it stays off.
   */
  #zeroCopyWhereNic(): void {
    if (this.#zeroCopyDecided || this.start || !this.kernelDirections.tx) return;
    this.#zeroCopyDecided = true;
    if (this.offload.tx !== 'kernel-hw') return;
    const b = this.nativeBinding;
    // A kernel without it (before 5.19: ENOPROTOOPT) sends with a copy, as before; offload.zeroCopySendfile says which.
    b.setsockoptInt(this.fd, b.constants.SOL_TLS, b.constants.TLS_TX_ZEROCOPY_RO, 1);
  }

  /**
   * Sends (part of) a file. Under kernel TX the bytes go file → socket with
   * sendfile(2) and never enter JavaScript; with the userspace record layer they
   * are read and sealed here. Ordered with `write()` calls before and after it.
   * Where the NIC seals records (`offload.tx === 'kernel-hw'`) the first call
   * sets `TLS_TX_ZEROCOPY_RO`: bytes of a file changed mid-send go out as changed.
   * Resolves with the bytes sent; rejects (with `bytesSent`) if the file cannot
   * be read or the socket is destroyed first. A file that cannot be opened
   * rejects before any byte is sent and leaves the connection usable.
   */
  sendFile(file: FileSource, options: SendFileOptions = {}): Promise<number> {
    if (typeof file === 'number') checkFd('file', file);
    else if (typeof file !== 'string' && (typeof file !== 'object' || file === null || typeof file.fd !== 'number'))
      throw invalidArgType(`Expected a path, an fd or a FileHandle for file but received ${typeof file}`);
    checkLength('options.offset', options.offset);
    checkLength('options.length', options.length);
    this.#zeroCopyWhereNic();
    return this.startOp(new SendFileOp(file, options.offset ?? 0, options.length));
  }

  /**
   * Moves bytes from a readable fd (a pipe directly; a socket through an
   * internal pipe) into this socket with splice(2) until EOF or `length`.
   * Ordered with `write()`s like {@link KtlsSocket.sendFile}. Does not close `fd`; one in blocking
   * mode is polled before each read (the wait leaves it `O_NONBLOCK`, as libuv's poll does).
   */
  spliceFrom(fd: number, options: SpliceOptions = {}): Promise<number> {
    checkFd('fd', fd);
    checkLength('options.length', options.length);
    return this.startOp(new SpliceFromOp(fd, options.length));
  }
}
