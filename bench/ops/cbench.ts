// The C contenders: the worker's side of bench/cbench.c, a sink that counts
// what it receives and a sender (sendfile() or pread()+write(), with or without
// kTLS), each speaking a line protocol on its stdout.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as readline from 'node:readline';
import { CBENCH, procCpu } from '../common.js';
import type { RecvResult, SendKind, SendResult } from './bulk.js';
import type { WireKeys } from './common.js';

/** Starts `cbench sink`; resolves with its port once it listens, and the result it will report. */
export async function cSink(total: number): Promise<{ port: number; result: Promise<RecvResult> }> {
  const child = spawn(CBENCH, ['sink', String(total)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout });
  const it = lines[Symbol.asyncIterator]();
  const first = await it.next();
  const port = Number(/^port (\d+)/.exec(String(first.value))?.[1]);
  if (!port) throw new Error(`cbench sink said ${String(first.value)}`);
  const result = (async (): Promise<RecvResult> => {
    const line = await it.next();
    const m = /^done (\d+)/.exec(String(line.value));
    if (!m) throw new Error(`cbench sink said ${String(line.value)}`);
    const cpu = procCpu(child.pid!);
    child.stdin.end('\n');
    await new Promise((r) => child.once('close', r));
    return { t1: m[1], cpu };
  })();
  result.catch(() => undefined);
  return { port, result };
}

/** Runs `cbench send` for the c-* sender kinds. */
export async function cSend(a: { kind: SendKind; port: number; file: string; count: number; keys?: WireKeys }): Promise<SendResult> {
  const args = ['send', String(a.port), a.file, String(a.count), a.kind === 'c-write' ? 'write' : 'sendfile'];
  if (a.kind === 'c-ktls-sendfile') {
    const iv = Buffer.from(a.keys!.ab.iv, 'hex');
    args.push(a.keys!.ab.key, iv.subarray(0, 4).toString('hex'), iv.subarray(4).toString('hex'));
  }
  const child: ChildProcessWithoutNullStreams = spawn(CBENCH, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const fail = (what: unknown): Error => new Error(`cbench send: expected ${String(what)}; ${stderr.trim()}`);
  const l1 = await lines.next();
  const m = /^t0 (\d+)/.exec(String(l1.value));
  if (!m) throw fail(l1.value);
  const l2 = await lines.next();
  if (String(l2.value) !== 'sent') throw fail(l2.value);
  const cpu = procCpu(child.pid!);
  child.stdin.end('\n');
  await new Promise((r) => child.once('close', r));
  return { t0: m[1], cpu, method: a.kind === 'c-write' ? 'C pread()+write() loop' : 'C sendfile() loop' };
}
