/**
 * {@link createPipe}: a pipe pair for `spliceFrom()`/`spliceTo()` and child processes.
 * @packageDocumentation
 */
import * as util from 'node:util';
import { requireBinding } from '../native/binding.js';
import { KtlsSystemError } from '../native/errors.js';

/**
 * A pipe for `KtlsSocket#spliceFrom` / `KtlsSocket#spliceTo`, e.g.
 * to give a child process as its stdout. Both ends are close-on-exec and
 * blocking (the splice loops never block on them); close them with
 * `fs.closeSync`.
 */
export function createPipe(): [readFd: number, writeFd: number] {
  const p = requireBinding().pipe(0, 0);
  if (typeof p === 'number') throw new KtlsSystemError(p, 'pipe2');
  return p;
}

/**
 * @deprecated Renamed {@link createPipe}: `ktls.pipe()` read as stream `pipe()`.
 * This alias warns once (`KTLS_DEP_PIPE`) and goes in the next minor version.
 */
export const pipe: typeof createPipe = util.deprecate(createPipe, 'ktls.pipe() is renamed ktls.createPipe()', 'KTLS_DEP_PIPE');
