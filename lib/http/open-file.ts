/**
 * Opening a file to serve, safely against what a local user can put under a
 * served root: `O_NONBLOCK` so a FIFO or device can never block the event
 * loop in `open()`, then `fstat` (only a regular file is served), and where
 * the opened file really lives, for the `symlinks` policy.
 * @packageDocumentation
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as util from 'node:util';
import { KIND_FILE, STAT, loadBinding } from '../native/binding.js';
import { KtlsSystemError } from '../native/errors.js';

/** A file opened for serving: its fd (ours to close), size, type and modification time. @internal */
export interface OpenedFile {
  fd: number;
  size: number;
  isFile: boolean;
  mtimeSeconds: number;
  mtimeNanos: number;
  /** Opened by the addon (so sendfile(2) on a plain socket can use it). */
  native: boolean;
  close(): void;
}

const statOut = new Float64Array(STAT.LENGTH);
const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK;

/**
 * Opens and sizes `file`. With the addon, on the event loop (open and fstat are
 * page-cache lookups on a local filesystem, cheaper than two thread-pool round
 * trips per request, and `O_NONBLOCK` keeps a FIFO from waiting for a writer);
 * without it (not Linux) through fs. Errors carry the errno's name as `code`, as fs's do.
 */
export async function openFile(file: string): Promise<OpenedFile> {
  const b = loadBinding().binding;
  if (b) {
    const fd = b.openFile(file);
    if (fd < 0) throw Object.assign(new KtlsSystemError(fd, 'open', file), { path: file });
    const rc = b.statFd(fd, statOut);
    if (rc < 0) {
      b.closeFd(fd);
      throw new KtlsSystemError(rc, 'fstat', file);
    }
    return {
      fd,
      size: statOut[STAT.SIZE],
      isFile: statOut[STAT.KIND] === KIND_FILE,
      mtimeSeconds: statOut[STAT.MTIME_S],
      mtimeNanos: statOut[STAT.MTIME_NS],
      native: true,
      close: () => void b.closeFd(fd),
    };
  }
  const fd = await util.promisify(fs.open)(file, OPEN_FLAGS);
  try {
    const st = await util.promisify(fs.fstat)(fd, { bigint: true });
    return {
      fd,
      size: Number(st.size),
      isFile: st.isFile(),
      mtimeSeconds: Number(st.mtimeNs / 1_000_000_000n),
      mtimeNanos: Number(st.mtimeNs % 1_000_000_000n),
      native: false,
      close: () => void fs.close(fd, () => undefined),
    };
  } catch (err) {
    fs.close(fd, () => undefined);
    throw err;
  }
}

/** Real paths of served roots (a root is a handful of directories per process; bounded anyway). */
const realRoots = new Map<string, Promise<string>>();

function realRoot(root: string): Promise<string> {
  let r = realRoots.get(root);
  if (!r) {
    if (realRoots.size >= 256) realRoots.clear();
    r = fs.promises.realpath(path.resolve(root));
    r.catch(() => realRoots.delete(root));
    realRoots.set(root, r);
  }
  return r;
}

/**
 * Whether the file open as `fd` (asked for as `full`) lies under `root`: the
 * path the kernel reports for the open fd (`/proc/self/fd`), so a link swapped
 * after the check changes nothing; where there is no procfs, the resolved path.
 */
export async function insideRoot(root: string, fd: number, full: string): Promise<boolean> {
  let base: string;
  try {
    base = await realRoot(root);
  } catch {
    return false;
  }
  let actual: string;
  try {
    actual = await fs.promises.readlink(`/proc/self/fd/${fd}`);
  } catch {
    try {
      actual = await fs.promises.realpath(full);
    } catch {
      return false;
    }
  }
  return actual === base || actual.startsWith(base.endsWith(path.sep) ? base : base + path.sep);
}
