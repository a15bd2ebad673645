// Syscalls per request: `strace -c -f` attached to a worker while it serves a
// short run, its counts divided by the requests the client completed. Where
// strace is missing or cannot attach, the reason is reported instead.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { progress } from './common.js';
import type { Contender, Ctx } from './sampling.js';

/** Syscalls per request, by class, and the reason when they could not be counted. */
export interface SyscallCounts {
  perRequest: Record<string, number>;
  /** The calls in the 'other' class, per request, most first. */
  other?: Array<[string, number]>;
  /** Every call counted (futex too), by name, per request. */
  byName?: Record<string, number>;
  total: number;
  requests: number;
  unavailable?: string;
}

const CLASSES: Record<string, string[]> = {
  read: ['read', 'readv', 'recvfrom', 'recvmsg', 'pread64'],
  write: ['write', 'writev', 'sendto', 'sendmsg', 'sendfile', 'splice', 'pwrite64'],
  poll: ['epoll_wait', 'epoll_pwait', 'epoll_pwait2', 'epoll_ctl', 'poll', 'ppoll'],
  file: ['openat', 'open', 'close', 'fstat', 'newfstatat', 'statx', 'stat', 'lseek'],
};

/** Whether strace can run here at all. */
export function straceAvailable(): string | null {
  const r = spawnSync('strace', ['-V'], { encoding: 'utf8' });
  return r.error ? `strace is not installed (${r.error.message})` : r.status === 0 ? null : `strace -V exited ${r.status}`;
}

/** Runs `during()` (which resolves with the requests it completed) with strace attached to `pid`; counts the syscalls of all its threads. */
export async function countSyscalls(pid: number, during: () => Promise<number>): Promise<SyscallCounts> {
  const why = straceAvailable();
  if (why) return { perRequest: {}, total: 0, requests: 0, unavailable: why };
  const out = path.join(os.tmpdir(), `ktls-strace-${process.pid}-${pid}.txt`);
  const tracer = spawn('strace', ['-c', '-f', '-q', '-o', out, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  tracer.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  await new Promise((resolve) => setTimeout(resolve, 300)); // attached to every thread
  const requests = await during();
  tracer.kill('SIGINT');
  await new Promise((resolve) => tracer.once('close', resolve));
  let text: string;
  try {
    text = fs.readFileSync(out, 'utf8');
  } catch {
    return { perRequest: {}, total: 0, requests, unavailable: `strace wrote no summary: ${stderr.trim().slice(0, 200)}` };
  } finally {
    fs.rmSync(out, { force: true });
  }
  const calls = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/.exec(line);
    if (m) calls.set(m[2], Number(m[1]));
  }
  if (calls.size === 0 || requests === 0) return { perRequest: {}, total: 0, requests, unavailable: `no syscalls counted (${stderr.trim().slice(0, 200)})` };
  const perRequest: Record<string, number> = {};
  const other: Array<[string, number]> = [];
  const byName: Record<string, number> = {};
  let total = 0;
  for (const [name, n] of calls) {
    if (name !== 'total') byName[name] = n / requests;
    if (name === 'futex' || name === 'total') continue; // thread hand-offs, not the I/O path
    total += n;
    const cls = Object.keys(CLASSES).find((c) => CLASSES[c].includes(name)) ?? 'other';
    perRequest[cls] = (perRequest[cls] ?? 0) + n / requests;
    if (cls === 'other') other.push([name, n / requests]);
  }
  return { perRequest, other: other.sort((a, b) => b[1] - a[1]), byName, total: total / requests, requests };
}

/** A note with the server's syscalls per request of each contender (strace -c -f on the server worker for a short run). */
export async function syscallNote<K>(ctx: Ctx, contenders: Array<Contender<K>>, run: (c: Contender<K>) => Promise<number>, unit: string): Promise<string> {
  const parts: string[] = [];
  for (const c of contenders) {
    let counts: SyscallCounts;
    try {
      counts = await countSyscalls(ctx.b.child.pid!, () => run(c));
    } catch (err) {
      counts = { perRequest: {}, total: 0, requests: 0, unavailable: (err as Error).message.split('\n')[0] };
    }
    if (counts.unavailable) return `Syscalls per ${unit} could not be counted: ${counts.unavailable}.`;
    const by = Object.entries(counts.perRequest)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v.toFixed(2)}`)
      .join(', ');
    const other = (counts.other ?? [])
      .slice(0, 4)
      .map(([k, v]) => `${k} ${v.toFixed(2)}`)
      .join(', ');
    parts.push(`${c.label}: **${counts.total.toFixed(2)}** (${by}; ${counts.requests} ${unit}s${other ? `; most of other: ${other}` : ''})`);
    progress(`syscalls per ${unit}: ${c.label}: ${counts.total.toFixed(2)}`);
  }
  return `Server syscalls per ${unit} (strace -c -f on the server process, futex left out): ${parts.join('; ')}.`;
}
