/**
 * Waiting on a foreign fd (a file being read, a pipe, a splice source or
 * target) with its own poll handle, on a dup so the fd's owner keeps its own.
 * @packageDocumentation
 */
import type { Binding, NativeHandle } from '../native/binding.js';
import { KtlsSystemError } from '../native/errors.js';

/** Watches a foreign fd for readability or writability with its own poll handle (on a dup). */
export class FdWatcher {
  #handle: NativeHandle | null = null;
  #binding: Binding;
  #fd: number;
  #callback: (() => void) | null = null;

  constructor(binding: Binding, fd: number) {
    this.#binding = binding;
    this.#fd = fd;
  }

  /** Calls `cb` once, the next time `events` (POLL_READABLE/POLL_WRITABLE) is ready; a later call replaces an earlier wait. */
  whenReady(events: number, cb: () => void): void {
    this.#callback = cb;
    if (this.#handle === null) {
      const dup = this.#binding.adopt(this.#fd, 0); // leave the fd's own blocking mode alone
      if (dup < 0) throw new KtlsSystemError(dup, 'fcntl(F_DUPFD_CLOEXEC)');
      this.#handle = new this.#binding.Handle(
        dup,
        () => {
          this.#handle?.poll(0);
          const callback = this.#callback;
          this.#callback = null;
          callback?.();
        },
        new Int32Array(1),
      );
    }
    const rc = this.#handle.poll(events);
    if (rc < 0) throw new KtlsSystemError(rc, 'epoll_ctl');
  }

  /** Stops watching and closes the dup. */
  close(): void {
    this.#callback = null;
    this.#handle?.close();
    this.#handle = null;
  }
}
