// rx-nopad: the kernel's TLS 1.3 receive path with and without
// TLS_RX_EXPECT_NO_PAD. With it on the kernel decrypts a record straight into
// the reader's buffer (it need not look for padding first); off, into a kernel
// buffer that is then copied. A sender worker writes application data over a
// loopback pair (kernel TX), a receiver worker reads it on a KtlsSocket under
// kernel RX, once with `rxExpectNoPad: true` and once with `false`, alternating
// by round; each run checks that socket.offload.rxExpectNoPad is what it asked
// for. Per MiB received: the receiver's CPU, its reads ('data' chunks, one per
// recvmsg that returned data) and, from a separate run under strace, its
// recvmsg calls and syscalls.
import { loopbackPair, probe } from '../lib/native/probe.js';
import { sessionKeys } from '../lib/verify/util.js';
import { MiB, fmtBytes, progress, stat, type Cpu } from './common.js';
import { toWire, type RxResult, type RxSetup } from './ops/rx-nopad.js';
import { alternate, type Contender, type Ctx, type Row, type ScenarioResult } from './sampling.js';
import { ratio } from './scenarios.js';
import { countSyscalls, straceAvailable, type SyscallCounts } from './syscalls.js';

export const RX_METRICS = [
  'MiB/s',
  'receiver CPU µs/MiB',
  'receiver user µs/MiB',
  'receiver sys µs/MiB',
  'reads/MiB',
  'recvmsg/MiB (strace)',
  'syscalls/MiB (strace)',
];

/** Each write of the sender (the kernel seals it into 16 KiB records). */
const WRITE = MiB;
let nextId = 0;

interface Transfer {
  setup: RxSetup;
  got: RxResult;
  sent: { t0: string; cpu: Cpu };
  seconds: number;
}

/**
 * One connection: a loopback pair whose ends go to the workers, keys from
 * sessionKeys(); the receiver asks for `ask` and must end up with `expect`
 * (socket.offload.rxExpectNoPad) under kernel RX, or the run fails.
 */
async function transfer(ctx: Ctx, ask: boolean, total: number, expect = ask): Promise<Transfer> {
  const id = ++nextId;
  const keys = sessionKeys('TLSv1.3', 'aes-128-gcm');
  const [client, server] = await loopbackPair();
  let setup: RxSetup;
  try {
    setup = await ctx.b.call<RxSetup>('rxNopadAccept', { id, secrets: toWire(keys.b), rxExpectNoPad: ask }, 60_000, server);
  } catch (err) {
    client.destroy();
    throw err;
  }
  if (!setup.kernelRx || setup.rxExpectNoPad !== expect) {
    client.destroy();
    await ctx.b.call('rxNopadDrop', { id });
    throw new Error(
      `asked for rxExpectNoPad: ${ask}, expected socket.offload.rxExpectNoPad ${expect} under kernel RX; got ${setup.rxExpectNoPad} (kernelDirections.rx ${setup.kernelRx}, offload.rx ${setup.rx})`,
    );
  }
  const limit = 180_000;
  const gotP = ctx.b.call<RxResult>('rxNopadReceive', { id, total }, limit);
  const sentP = ctx.a.call<{ t0: string; cpu: Cpu }>('rxNopadSend', { secrets: toWire(keys.a), total, chunk: WRITE }, limit, client);
  // Whichever side fails first is the reason.
  const [got, sent] = await Promise.all([gotP, sentP]);
  if (got.bytes !== total) throw new Error(`received ${got.bytes} of ${total} bytes`);
  return { setup, got, sent, seconds: Number(BigInt(got.t1) - BigInt(sent.t0)) / 1e9 };
}

/** Why the comparison cannot run on this kernel (no option, or ktls leaves it off for a defect), or null. */
async function gate(): Promise<{ why: string; defect: boolean } | null> {
  const caps = await probe();
  if (!caps.ulp) return { why: `no kTLS on this kernel (${caps.ulpError ?? 'ULP refused'})`, defect: false };
  const aead = caps.ciphers.find((c) => c.version === 'TLSv1.3' && c.cipher === 'aes-128-gcm');
  if (!aead?.tx || !aead.rx || aead.defect)
    return { why: `TLS 1.3 AES-128-GCM is not on kernel records here (${aead?.defect ?? aead?.error ?? 'not installed'})`, defect: false };
  if (!caps.rxExpectNoPad) return { why: `kernel ${caps.kernelRelease} has no TLS_RX_EXPECT_NO_PAD (Linux 6.0+)`, defect: false };
  const d = caps.defects.find((x) => x.area === 'rx-no-pad');
  if (d)
    return {
      why: `kernel ${caps.kernelRelease} has the ${d.id} defect (ktls.probe().defects: ${d.observed}), so ktls leaves TLS_RX_EXPECT_NO_PAD off on every socket: nothing to compare`,
      defect: true,
    };
  return null;
}

/** recvmsg and all syscalls (futex left out) per MiB of the receiver worker, strace -c -f attached for one transfer per contender and pass. */
async function straceRows(ctx: Ctx, rows: Row[], contenders: Contender<boolean>[], total: number, passes: number): Promise<string> {
  const why = straceAvailable();
  if (why) return `recvmsg/MiB and syscalls/MiB not counted: ${why}; reads/MiB ('data' chunks) counts the recvmsg calls that returned data.`;
  const recv = new Map<string, number[]>();
  const all = new Map<string, number[]>();
  const live = contenders.filter((c) => rows.find((r) => r.contender === c.id)?.available);
  for (let p = 0; p < passes; p++) {
    for (const c of p % 2 ? [...live].reverse() : live) {
      const run = async (): Promise<number> => (await transfer(ctx, c.spec, total)).got.bytes / MiB;
      const counts = await countSyscalls(ctx.b.child.pid!, run).catch((err: Error): SyscallCounts => ({
        perRequest: {},
        total: 0,
        requests: 0,
        unavailable: err.message.split('\n')[0],
      }));
      if (counts.unavailable)
        return `recvmsg/MiB and syscalls/MiB not counted: ${counts.unavailable}; reads/MiB ('data' chunks) counts the recvmsg calls that returned data.`;
      recv.set(c.id, [...(recv.get(c.id) ?? []), counts.byName?.recvmsg ?? 0]);
      all.set(c.id, [...(all.get(c.id) ?? []), counts.total]);
      progress(
        `rx-nopad strace pass ${p + 1}/${passes}: ${c.label}: ${(counts.byName?.recvmsg ?? 0).toFixed(2)} recvmsg/MiB, ${counts.total.toFixed(2)} syscalls/MiB`,
      );
    }
  }
  for (const r of rows) {
    if (!r.available) continue;
    r.metrics['recvmsg/MiB (strace)'] = stat(recv.get(r.contender) ?? []);
    r.metrics['syscalls/MiB (strace)'] = stat(all.get(r.contender) ?? []);
  }
  return `recvmsg/MiB and syscalls/MiB (futex left out; IPC with the bench and the connection's setup included): strace -c -f on the receiver worker for ${passes} separate ${fmtBytes(total)} transfer${passes === 1 ? '' : 's'} per contender, not the timed ones; recvmsg counts the EAGAIN ones too, reads/MiB only those that returned data.`;
}

export async function rxNopadScenario(ctx: Ctx): Promise<ScenarioResult> {
  const t0 = Date.now();
  const total = ctx.quick ? 32 * MiB : 256 * MiB;
  const traced = ctx.quick ? 8 * MiB : 32 * MiB;
  const blocked = await gate();
  const contenders: Contender<boolean>[] = [
    { id: 'nopad-on', label: 'rxExpectNoPad: true', spec: true, unavailable: () => blocked?.why ?? null },
    { id: 'nopad-off', label: 'rxExpectNoPad: false', spec: false, unavailable: () => blocked?.why ?? null },
  ];
  const groups = [{ name: fmtBytes(total) }];
  const notes: string[] = [];
  if (blocked?.defect) {
    // The defect path: asking for the option must leave it off, and the data still arrive.
    const r = await transfer(ctx, true, MiB, false).then(
      () => 'a 1 MiB transfer upgraded with rxExpectNoPad: true had socket.offload.rxExpectNoPad false and arrived whole, as it should',
      (err: Error) => `CHECK FAILED: ${err.message.split('\n')[0]}`,
    );
    progress(`rx-nopad: ${blocked.why}; ${r}`);
    notes.push(`${blocked.why}. Checked: ${r}.`);
  } else if (blocked) {
    notes.push(`${blocked.why}.`);
  }
  if (!blocked) {
    // One untimed transfer each first: the workers' first connection pays for JIT and first-use costs.
    for (const c of contenders) await transfer(ctx, c.spec, traced).catch(() => undefined);
  }
  const rows = await alternate(ctx, 'rx-nopad', groups, contenders, RX_METRICS, async (_g, c, s, key) => {
    const r = await transfer(ctx, c.spec, total);
    const mib = r.got.bytes / MiB;
    const us = (v: number): number => (v / mib) * 1e6;
    s.add(key, 'MiB/s', mib / r.seconds);
    s.add(key, 'receiver CPU µs/MiB', us(r.got.cpu.user + r.got.cpu.system));
    s.add(key, 'receiver user µs/MiB', us(r.got.cpu.user));
    s.add(key, 'receiver sys µs/MiB', us(r.got.cpu.system));
    s.add(key, 'reads/MiB', r.got.chunks / mib);
    s.note(key, `offload.rx ${r.setup.rx}, offload.rxExpectNoPad ${r.setup.rxExpectNoPad}`);
    return `${(mib / r.seconds).toFixed(0)} MiB/s, receiver ${us(r.got.cpu.user + r.got.cpu.system).toFixed(0)} µs/MiB, ${(r.got.chunks / mib).toFixed(2)} reads/MiB (${fmtBytes(total)} in ${r.seconds.toFixed(2)} s)`;
  });
  if (!blocked) {
    notes.push(await straceRows(ctx, rows, contenders, traced, ctx.quick ? 1 : 2));
    const on = contenders[0].id;
    const off = contenders[1].id;
    const q = (m: string): string => {
      const v = ratio(rows, groups[0].name, on, off, (r) => r.metrics[m]?.median ?? null);
      return `${m} ${v === null ? '–' : `${v.toFixed(2)}×`}`;
    };
    notes.push(
      `On ÷ off (medians): ${['receiver CPU µs/MiB', 'receiver sys µs/MiB', 'reads/MiB', 'recvmsg/MiB (strace)', 'syscalls/MiB (strace)', 'MiB/s'].map(q).join(', ')}.`,
    );
  }
  return {
    id: 'rx-nopad',
    title: 'Kernel RX with and without TLS_RX_EXPECT_NO_PAD',
    where: ctx.where,
    kernelLabel: ctx.kernelLabel,
    metrics: RX_METRICS,
    rows,
    targets: [],
    description: `A sender worker writes ${fmtBytes(total)} of TLS 1.3 AES-128-GCM application data (${fmtBytes(WRITE)} writes, kernel TX) over a loopback pair to a KtlsSocket under kernel RX in a receiver worker, upgraded with \`rxExpectNoPad: true\` or \`false\` (each run fails unless \`socket.offload.rxExpectNoPad\` says the same), alternating by round; per MiB received: the receiver process's CPU (user + system from \`process.cpuUsage()\`, from its first read to its last byte), its reads ('data' chunks, one per recvmsg that returned data), recvmsg calls and syscalls (strace, separate runs), and MiB/s from the sender's first write to the receiver's last byte. Under UML these numbers are functional, not performance-representative; on kernels with the rx-no-pad-retry defect (\`ktls.probe().defects\`) ktls leaves the option off, and the scenario reports that (after checking it) instead of numbers.`,
    notes,
    seconds: (Date.now() - t0) / 1000,
  };
}
