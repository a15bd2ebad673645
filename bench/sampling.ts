// How the scenarios measure: the worker processes they drive, the per-round
// samples, the alternating runner that turns them into rows, and the result
// shapes written to results.json and read by report.ts.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type * as net from 'node:net';
import * as path from 'node:path';
import { progress, stat, type Stat } from './common.js';
import type { WireKeys } from './ops/common.js';

// ---------------------------------------------------------------------------
// Result shapes (written to results.json, read by report.ts)

export interface Row {
  group: string;
  contender: string;
  label: string;
  available: boolean;
  reason?: string;
  note?: string;
  metrics: Record<string, Stat | null>;
}

export interface TargetResult {
  label: string;
  value: number | null;
  op: '>=' | '<=';
  threshold: number;
  met: boolean | null;
  /** Measured under UML: correctness only, not a performance verdict. */
  functionalOnly: boolean;
  detail: string;
}

export interface ScenarioResult {
  id: string;
  title: string;
  description: string;
  where: 'native' | 'uml';
  kernelLabel: string;
  /** Metric names in display order. */
  metrics: string[];
  rows: Row[];
  targets: TargetResult[];
  notes: string[];
  seconds: number;
}

/** What every scenario runs with: the run's settings, the test files by size, and the worker pair. */
export interface Ctx {
  quick: boolean;
  rounds: number;
  where: 'native' | 'uml';
  kernelLabel: string;
  files: Map<number, string>;
  a: Worker;
  b: Worker;
}

// ---------------------------------------------------------------------------
// Workers

/** A forked worker.js, called over IPC: `call(op, args)` resolves with the op's result. */
export class Worker {
  readonly child: ChildProcess;
  #id = 0;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(readonly name: string) {
    this.child = fork(path.join(__dirname, 'worker.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: { id: number; ok: boolean; result?: unknown; error?: string }) => {
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`${this.name}: ${m.error}`));
    });
    this.child.on('exit', (code) => {
      for (const p of this.#pending.values()) p.reject(new Error(`${this.name} worker exited (${code})`));
      this.#pending.clear();
    });
  }

  /** `handle`: a socket handed to the worker with the message (the op gets it as its second argument; it closes here). */
  call<T>(op: string, args: object = {}, timeoutMs = 180_000, handle?: net.Socket): Promise<T> {
    const id = ++this.#id;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${this.name}: ${op} timed out after ${timeoutMs / 1000}s`));
      }, timeoutMs);
      this.#pending.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v as T)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      if (handle) this.child.send({ id, op, args }, handle);
      else this.child.send({ id, op, args });
    });
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

/** Fresh random keys for both directions of one connection. */
export function newKeys(): WireKeys {
  return {
    ab: { key: randomBytes(16).toString('hex'), iv: randomBytes(12).toString('hex') },
    ba: { key: randomBytes(16).toString('hex'), iv: randomBytes(12).toString('hex') },
  };
}

// ---------------------------------------------------------------------------
// Samples and the alternating runner

const rotate = <T>(list: T[], r: number): T[] => list.map((_, i) => list[(i + r) % list.length]);
/** CPU seconds per GB moved. */
export const perGB = (cpu: number, bytes: number): number => cpu / (bytes / 1e9);

/** Samples of each metric per (group, contender). */
export class Samples {
  #m = new Map<string, Map<string, number[]>>();
  #notes = new Map<string, string>();
  add(key: string, metric: string, v: number | null): void {
    if (v === null || !Number.isFinite(v)) return;
    const m = this.#m.get(key) ?? new Map<string, number[]>();
    this.#m.set(key, m);
    const list = m.get(metric) ?? [];
    m.set(metric, list);
    list.push(v);
  }
  note(key: string, note: string): void {
    this.#notes.set(key, note);
  }
  stats(key: string, metrics: string[]): Record<string, Stat | null> {
    const m = this.#m.get(key);
    return Object.fromEntries(metrics.map((name) => [name, stat(m?.get(name) ?? [])]));
  }
  getNote(key: string): string | undefined {
    return this.#notes.get(key);
  }
}

/** One contender of a scenario: what it is called and what the scenario's run needs to know. */
export interface Contender<K> {
  id: string;
  label: string;
  spec: K;
  /** Reasons the contender cannot run now (missing API), or null. */
  unavailable?: () => string | null;
}

/** Runs every (group × contender) once per round, alternating, and builds rows. */
export async function alternate<G extends { name: string }, K>(
  ctx: Ctx,
  scenario: string,
  groups: G[],
  contenders: Contender<K>[],
  metrics: string[],
  once: (g: G, c: Contender<K>, s: Samples, key: string) => Promise<string>,
): Promise<Row[]> {
  const samples = new Samples();
  const failed = new Map<string, string>();
  for (let r = 0; r < ctx.rounds; r++) {
    for (const g of groups) {
      for (const c of rotate(contenders, r)) {
        const key = `${g.name}\u0000${c.id}`;
        if (c.unavailable?.() || failed.has(key)) continue;
        try {
          const summary = await once(g, c, samples, key);
          progress(`${scenario} ${g.name} round ${r + 1}/${ctx.rounds}: ${c.label}: ${summary}`);
        } catch (err) {
          failed.set(key, (err as Error).message.split('\n')[0]);
          progress(`${scenario} ${g.name}: ${c.label} FAILED: ${(err as Error).message}`);
        }
      }
    }
  }
  const rows: Row[] = [];
  for (const g of groups) {
    for (const c of contenders) {
      const key = `${g.name}\u0000${c.id}`;
      const why = c.unavailable?.() ?? (failed.has(key) ? `failed: ${failed.get(key)}` : null);
      const note = samples.getNote(key);
      rows.push({
        group: g.name,
        contender: c.id,
        label: c.label,
        available: why === null,
        ...(why ? { reason: why } : {}),
        ...(note ? { note } : {}),
        metrics: why ? {} : samples.stats(key, metrics),
      });
    }
  }
  return rows;
}
