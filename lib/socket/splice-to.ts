/**
 * `socket.spliceTo()`: decrypted application data from a kTLS RX socket into a
 * pipe (directly) or a file/socket (through an internal pipe) with splice(2).
 * splice stops at a record that is not application data (EINVAL; EIO on some
 * kernels) and moves nothing for an empty one (0): that record is then read
 * with recvmsg and handled as an ordinary read would.
 * @packageDocumentation
 */
import * as os from 'node:os';
import type { Readable } from 'node:stream';
import { POLL_WRITABLE, type Binding } from '../native/binding.js';
import { constants } from '../native/constants.js';
import { KtlsError, KtlsSystemError } from '../native/errors.js';
import type { OpenedRecord } from '../record/layer.js';
import type { EarlyRecord, RecordPaths } from './paths.js';
import { describeDefect, kernelDefect } from '../native/defects.js';
import { FdWatcher } from './fd-watcher.js';
import type { ReadPath } from './read-path.js';
import { STEP, consume } from './ops/op.js';
import { countBytes } from './counters.js';

const E = os.constants.errno;

/** What spliceTo() needs from its socket. */
export interface RxHost {
  readonly binding: Binding;
  readonly fd: number;
  readonly destroyed: boolean;
  /** close_notify (or an accepted EOF) has ended the readable side. */
  readonly readEnded: boolean;
  /** The kernel opens records (TLS_RX installed). */
  readonly kernelRx: boolean;
  /** Kernel RX, but splice(2) from it is defective on this kernel: read with recvmsg and copy. */
  readonly spliceCopies: boolean;
  /** The next record to handle before reading the socket: early records, or one the userspace opener has complete. undefined: the socket was destroyed. */
  nextRecord(): EarlyRecord | null | undefined;
  /** One recvmsg, at most `max` bytes: a record's plaintext (kernel RX), `'pushed'` (userspace RX: raw bytes went to the opener), or 0 / -errno. */
  recvOnce(max: number): OpenedRecord | 'pushed' | number;
  /** Hands a control record (or what a read would deliver) to the socket; `followed`: a KeyUpdate the switch already followed. */
  deliver(type: number, data: Buffer, followed?: boolean): void;
  /** Puts application data back for ordinary reads. */
  unshift(data: Buffer): void;
  readError(errno: number): void;
  eof(): void;
  countRead(n: number): void;
  /** Re-evaluates what the socket polls for (reads {@link SpliceOut.waitSocket}). */
  updatePoll(): void;
}

/** The socket as spliceTo() sees it: its read path's own handling of what splice(2) cannot move. */
export function rxHostOf(read: ReadPath): RxHost {
  const host = read.host;
  const p = host.paths;
  return {
    binding: p.binding,
    kernelRx: p.rx === 'kernel',
    get spliceCopies() {
      return typeof p.spliceCopies === 'string';
    },
    get fd() {
      return p.handle.fd;
    },
    get destroyed() {
      return host.destroyed;
    },
    get readEnded() {
      return read.readEnded;
    },
    nextRecord: () => {
      const early = p.early.shift();
      if (early) return early;
      return p.rx === 'kernel' || p.rx === null ? null : read.openNext(p.rx);
    },
    recvOnce: (max) => read.recvChunk(max),
    deliver: (type, data, followed) => void read.deliver(type, data, followed),
    unshift: (data) => host.unshift(data),
    readError: (errno) => read.readError(errno),
    eof: () => read.eof(),
    countRead: (n) => {
      read.bytesRead += n;
      host.activity();
    },
    updatePoll: () => host.setPoll(),
  };
}

/** One running spliceTo(). */
export class SpliceOut {
  /** Bytes that have reached the target. */
  sent = 0;
  /** Waiting for the socket to become readable. */
  waitSocket = false;
  #host: RxHost;
  #target: number;
  #remaining: number;
  #held: Buffer[] = [];
  #pipe: [number, number] | null = null;
  /** Bytes in our pipe, or read out of it and not yet written (`#carry`), on their way to the target. */
  #inPipe = 0;
  /** The target refused splice(2): bytes go pipe → read → write. */
  #copyOut = false;
  #carry: Buffer | null = null;
  #watcher: FdWatcher;
  #done: (err: Error | null, sent: number) => void;
  #settled = false;

  /** `held`: plaintext the stream had already read; it goes first. */
  constructor(host: RxHost, target: number, remaining: number, held: Buffer[], targetIsPipe: boolean, done: (err: Error | null, sent: number) => void) {
    this.#host = host;
    this.#target = target;
    this.#remaining = remaining;
    this.#held = held;
    this.#watcher = new FdWatcher(host.binding, target);
    this.#done = done;
    if (!host.kernelRx || !targetIsPipe) this.#ensurePipe();
  }

  #ensurePipe(): void {
    if (this.#pipe) return;
    const p = this.#host.binding.pipe(1, 0);
    if (typeof p === 'number') throw new KtlsSystemError(p, 'pipe2');
    this.#pipe = p;
  }

  /** Ends it once: closes the internal pipe and the watcher, then reports. */
  settle(err: Error | null): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#watcher.close();
    if (this.#pipe) for (const fd of this.#pipe) this.#host.binding.closeFd(fd);
    this.#pipe = null;
    countBytes('spliceTo', this.sent);
    this.#done(err, this.sent);
  }

  /** Moves as much as it can without blocking, then waits on whichever side is not ready. */
  step(): void {
    try {
      this.#run();
    } catch (err) {
      this.settle(err as Error);
    }
  }

  #run(): void {
    const h = this.#host;
    const b = h.binding;
    const k = constants();
    const flags = k.SPLICE_F_MOVE | k.SPLICE_F_NONBLOCK;
    for (;;) {
      if (this.#settled || h.destroyed) return;
      if (this.#pipe && this.#inPipe > 0) {
        const n = this.#copyOut ? this.#copyToTarget() : b.splice(this.#pipe[0], this.#target, this.#inPipe, flags);
        if (n === -E.EAGAIN || n === -E.EINTR) return this.#waitTarget();
        if (n === -E.EINVAL && !this.#copyOut) {
          // A target splice(2) cannot write (O_APPEND, a filesystem without splice_write): copy instead.
          this.#copyOut = true;
          continue;
        }
        if (n < 0) throw new KtlsSystemError(n, this.#copyOut ? 'write' : 'splice');
        this.#inPipe -= n;
        this.sent += n;
        continue;
      }
      if (this.#held.length > 0) {
        // Plaintext read by recvmsg must queue behind what was spliced, and the
        // target may be a blocking fd: it goes through our own non-blocking pipe.
        this.#ensurePipe();
        const head = this.#held[0];
        const n = b.writeFd(this.#pipe![1], head, 0, head.length);
        if (n < 0 && n !== -E.EAGAIN && n !== -E.EINTR) throw new KtlsSystemError(n, 'write');
        if (n > 0) {
          this.#inPipe += n;
          consume(this.#held, n);
        }
        continue;
      }
      if (this.#remaining === 0 || h.readEnded) return this.settle(null);
      this.waitSocket = false;
      const rec = h.kernelRx ? null : h.nextRecord();
      if (rec === undefined) return; // the opener failed: the socket is destroyed, which settles us
      if (rec !== null) {
        this.#take(rec);
        continue;
      }
      const n = h.kernelRx && !h.spliceCopies ? b.splice(h.fd, this.#pipe ? this.#pipe[1] : this.#target, Math.min(this.#remaining, STEP), flags) : 0;
      if (n === -E.EAGAIN || n === -E.EINTR) {
        // Either the socket has no complete record or the target pipe is full.
        if (!this.#pipe) {
          const t = b.ready(this.#target, POLL_WRITABLE);
          if (t >= 0 && (t & POLL_WRITABLE) === 0) return this.#waitTarget();
        }
        this.waitSocket = true;
        return h.updatePoll();
      }
      if (n === -E.EINVAL || n === -E.EIO || n === 0) {
        if (!this.#readOne()) return;
        continue;
      }
      if (n < 0) return h.readError(n);
      h.countRead(n);
      this.#remaining -= n;
      if (this.#pipe) this.#inPipe += n;
      else this.sent += n;
    }
  }

  /** One read from our pipe (unless bytes are still carried) and one write to the target: bytes written, or -errno. */
  #copyToTarget(): number {
    const b = this.#host.binding;
    if (!this.#carry) {
      const buf = Buffer.allocUnsafe(Math.min(this.#inPipe, 64 * 1024));
      const r = b.readFd(this.#pipe![0], buf, 0, buf.length);
      if (r < 0) return r;
      this.#carry = buf.subarray(0, r);
    }
    const w = b.writeFd(this.#target, this.#carry, 0, this.#carry.length);
    if (w < 0) return w;
    this.#carry = w < this.#carry.length ? this.#carry.subarray(w) : null;
    return w;
  }

  /** Reads one record the ordinary way (a control record, data next to an empty record, or EOF). False: stop for now. */
  #readOne(): boolean {
    const h = this.#host;
    const early = h.nextRecord();
    if (early === undefined) return false;
    if (early !== null) {
      this.#take(early);
      return true;
    }
    const got = h.recvOnce(this.#remaining === Infinity ? 1 << 18 : Math.max(this.#remaining, 2));
    if (got === 'pushed') return true;
    if (typeof got !== 'number') {
      this.#take(got);
      return true;
    }
    if (got === -E.EAGAIN || got === -E.EINTR) {
      this.waitSocket = true;
      h.updatePoll();
      return false;
    }
    if (got < 0) {
      h.readError(got);
      return false;
    }
    h.eof();
    return !h.destroyed;
  }

  /** Application data goes to the target (what is past `length` back to the stream); anything else to the socket. */
  #take(rec: EarlyRecord): void {
    const h = this.#host;
    if (rec.type !== constants().RECORD_APPLICATION_DATA) return h.deliver(rec.type, rec.data, rec.keyUpdateFollowed);
    h.countRead(rec.data.length);
    const take = Math.min(rec.data.length, this.#remaining);
    if (take < rec.data.length) h.unshift(rec.data.subarray(take));
    if (take > 0) this.#held.push(rec.data.subarray(0, take));
    this.#remaining -= take;
  }

  #waitTarget(): void {
    this.waitSocket = false;
    this.#host.updatePoll();
    this.#watcher.whenReady(POLL_WRITABLE, () => this.step());
  }
}

/**
 * Starts `out` once it is known whether this kernel's splice(2) from kTLS can
 * be used (asked at the first spliceTo() of a kernel-RX socket: free past the
 * defect's range, one check per process inside it).
 */
export function startSplice(out: SpliceOut, p: RecordPaths): void {
  if (p.rx !== 'kernel' || p.spliceCopies !== undefined) return out.step();
  void kernelDefect('splice', p.version, p.cipher).then((d) => {
    p.spliceCopies = d ? describeDefect(d) : false;
    out.step();
  });
}

/** Up to `max` bytes the stream already holds (read before a spliceTo() began); the rest stays in the stream. */
export function takeBuffered(stream: Readable, max: number): Buffer[] {
  const held: Buffer[] = [];
  let remaining = max;
  while (stream.readableLength > 0 && remaining > 0) {
    const chunk = stream.read() as Buffer | null;
    if (chunk === null) break;
    const take = Math.min(chunk.length, remaining);
    if (take < chunk.length) stream.unshift(chunk.subarray(take));
    held.push(chunk.subarray(0, take));
    remaining -= take;
  }
  return held;
}

/**
 * What kind of fd `spliceTo()` writes into (as `fdKind`), or why it cannot: a
 * socket or device not in non-blocking mode would block the event loop in
 * write(2) or splice(2) once it fills, and poll cannot say how much it takes.
 * A pipe's side of splice(2) follows SPLICE_F_NONBLOCK whatever its mode, and
 * regular files never wait that way.
 */
export function spliceTarget(b: Binding, fd: number): number | Error {
  const kind = b.fdKind(fd);
  if (kind < 0) return new KtlsSystemError(kind, 'fstat');
  if (kind === 1 || kind === 3) return kind;
  const flags = b.fdFlags(fd);
  if (flags < 0) return new KtlsSystemError(flags, 'fcntl');
  if ((flags & b.constants.O_NONBLOCK) === 0)
    return new KtlsError(
      'ERR_KTLS_BLOCKING_FD',
      `fd ${fd} is in blocking mode: writing into it could block the event loop (set O_NONBLOCK, or splice into a pipe or file)`,
    );
  return kind;
}
