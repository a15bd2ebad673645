// Shared pieces of the benchmarks: paths, statistics, CPU accounting, progress.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Repository root (this file runs from dist/bench/). */
export const ROOT = path.resolve(__dirname, '..', '..');
/** Generated, git-ignored files: test files, the C binary, raw results. */
export const CACHE = path.join(ROOT, '.cache', 'bench');
/** The C contenders' program, built from bench/cbench.c by run.ts and run by the workers. */
export const CBENCH = path.join(CACHE, 'cbench');
export const FIXTURES = path.join(ROOT, 'test', 'fixtures');
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** CPU seconds spent in user and system mode. */
export interface Cpu {
  user: number;
  system: number;
}

/** process.cpuUsage() as seconds. */
export function cpuNow(): Cpu {
  const u = process.cpuUsage();
  return { user: u.user / 1e6, system: u.system / 1e6 };
}

export function cpuSince(start: Cpu): Cpu {
  const now = cpuNow();
  return { user: now.user - start.user, system: now.system - start.system };
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime/stime of another process from /proc/<pid>/stat (clock-tick resolution). */
export function procCpu(pid: number): Cpu {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may contain spaces; fields after it are space-separated.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  return { user: Number(fields[11]) / CLK_TCK, system: Number(fields[12]) / CLK_TCK };
}

/** Monotonic nanoseconds (CLOCK_MONOTONIC, the same clock across processes). */
export const nowNs = (): bigint => process.hrtime.bigint();

/** Median, spread and samples of one metric over rounds. */
export interface Stat {
  median: number;
  min: number;
  max: number;
  /** (max - min) / median, in percent. */
  spreadPct: number;
  n: number;
}

export function stat(values: number[]): Stat | null {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  const min = v[0];
  const max = v[v.length - 1];
  return { median, min, max, spreadPct: median !== 0 ? ((max - min) / Math.abs(median)) * 100 : 0, n: v.length };
}

/** Percentile (nearest rank) of unsorted samples. */
export function percentile(samples: Float64Array | number[], p: number): number {
  const v = Float64Array.from(samples).sort();
  if (v.length === 0) return NaN;
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))];
}

/** Where the kTLS scenarios run. */
export type KtlsWhere = 'native' | 'uml' | 'none';

/** Facts about the machine a part of the bench ran on. */
export interface MachineInfo {
  kernel: string;
  ktls: KtlsWhere;
  kernelLabel: string;
  cpuModel: string;
  cpus: number;
  node: string;
  memoryGiB: number;
}

export function machineInfo(ktls: KtlsWhere): MachineInfo {
  return {
    kernel: os.release(),
    ktls,
    kernelLabel: process.env.KTLS_KERNEL_LABEL ?? `native ${os.release()}`,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    cpus: os.cpus().length,
    node: process.version,
    memoryGiB: Math.round((os.totalmem() / GiB) * 10) / 10,
  };
}

/** Progress lines on stderr (stdout stays clean). */
export function progress(msg: string): void {
  const t = ((Date.now() - START) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[bench ${t}s] ${msg}\n`);
}
const START = Date.now();

export function fmtBytes(n: number): string {
  if (n >= GiB) return `${n / GiB} GiB`;
  if (n >= MiB) return `${n / MiB} MiB`;
  return `${n / 1024} KiB`;
}

export function hex(b: Buffer): string {
  return b.toString('hex');
}

/** A small deterministic PRNG (mulberry32), so failures can be replayed from the seed. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = s;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
