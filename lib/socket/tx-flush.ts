/**
 * When kernel TX has really sent what it sealed: the point `end()` waits for
 * before the FIN, found from TCP's counters and the record count (sequence
 * numbers restart at every rekey), never by reading keys.
 * @packageDocumentation
 */
import { constants } from '../native/constants.js';
import { KtlsSystemError } from '../native/errors.js';
import { recordOverhead, type RecordPaths } from './paths.js';

/** What the flush accounting needs from its socket. */
export interface FlushHost {
  readonly paths: RecordPaths;
  readonly destroyed: boolean;
  /** The write queue: how many plaintext bytes kernel TX has accepted. */
  readonly queue: { readonly kernelPlainSent: number };
  /** Reads (and clears) the socket's pending error: a positive errno, or 0. */
  takeSocketError(): number;
}

/** One socket's kernel TX flush accounting. */
export class TxFlush {
  #host: FlushHost;
  /** Kernel TX records sealed under earlier keys (null: unknown, after a failed read). */
  #records: number | null = 0;
  /** The TX sequence number the current kernel keys started at. */
  #epochSeq: bigint;

  constructor(host: FlushHost) {
    this.#host = host;
    this.#epochSeq = host.paths.txStart?.seq ?? 0n;
  }

  /**
   * Calls `done` once every record kernel TX has sealed has entered TCP. A
   * non-blocking sendmsg can return while kTLS still holds sealed records in its
   * own list, and shutdown()/close() would put the FIN ahead of them (or drop
   * them). TCP must have taken every plaintext byte kTLS accepted plus each
   * record's overhead; the record count is read once here, when nothing more
   * will be sealed (records under earlier keys were counted at each rekey),
   * and only TCP's counters are polled after that. A reset while waiting is
   * the error `end()` reports.
   */
  whenFlushed(done: (err: Error | null) => void): void {
    const h = this.#host;
    const p = h.paths;
    const start = p.txStart;
    if (p.tx !== 'kernel' || !start || h.destroyed || this.#records === null) return done(null);
    const seq = p.binding.getSeq(p.handle.fd, constants().TLS_TX);
    if (typeof seq !== 'bigint') return done(null); // cannot tell on this kernel: best effort
    const records = this.#records + Number(seq - this.#epochSeq);
    const expected = start.entered + h.queue.kernelPlainSent + records * recordOverhead(p.version, p.cipher);
    const poll = (delay: number, waited: number): void => {
      if (h.destroyed) return done(null);
      // poll() reports a pending error without consuming it; SO_ERROR then names it.
      const ready = p.binding.ready(p.handle.fd, 0);
      if (ready > 0 && (ready & 4) !== 0) {
        const so = h.takeSocketError();
        return done(so !== 0 ? new KtlsSystemError(-so, 'write') : null);
      }
      const entered = p.binding.tcpEntered(p.handle.fd);
      // A peer that reads nothing for 30 s does not keep the connection open forever.
      if (entered < 0 || entered >= expected || waited > 30_000) return done(null);
      setTimeout(() => poll(Math.min(delay * 2, 50), waited + delay), delay);
    };
    poll(1, 0);
  }

  /** New kernel TX keys are about to go in: the records under the current ones are counted now (their sequence restarts at 0). */
  rekeying(): void {
    const p = this.#host.paths;
    if (this.#records === null) return;
    const seq = p.binding.getSeq(p.handle.fd, constants().TLS_TX);
    if (typeof seq !== 'bigint') {
      this.#records = null; // the flush point can no longer be known: end() falls back to best effort
      return;
    }
    this.#records += Number(seq - this.#epochSeq);
    this.#epochSeq = 0n;
  }
}
