// RX ops for the rx-nopad scenario: the parent makes a loopback pair and hands
// one end to each worker (Worker#call with a socket). The receiver upgrades its
// end with or without TLS_RX_EXPECT_NO_PAD and says what the kernel took, then
// counts the bytes and 'data' chunks (one per successful recvmsg) with its own
// CPU time; the sender upgrades the other end and writes application data.
import { randomBytes } from 'node:crypto';
import type * as net from 'node:net';
import * as ktls from '../../lib/index.js';
import type { CipherName, TlsVersion } from '../../lib/native/constants.js';
import type { KtlsSocket } from '../../lib/socket/socket.js';
import { cpuNow, cpuSince, nowNs, type Cpu } from '../common.js';

/** One direction's keys as IPC can carry them (hex, the sequence number as a decimal string). */
interface WireDirection {
  key: string;
  iv: string;
  seq: string;
}

/** `TlsSecrets` for IPC (Buffers and bigints do not survive its JSON). */
export interface WireSecrets {
  version: TlsVersion;
  cipher: CipherName;
  tx: WireDirection;
  rx: WireDirection;
}

/** `sessionKeys()`'s secrets of one end, for IPC. */
export function toWire(s: ktls.TlsSecrets): WireSecrets {
  const d = (x: ktls.DirectionSecrets | undefined): WireDirection => {
    if (!x) throw new Error('both directions need keys');
    return { key: x.key.toString('hex'), iv: x.iv.toString('hex'), seq: String(x.seq) };
  };
  return { version: s.version, cipher: s.cipher, tx: d(s.tx), rx: d(s.rx) };
}

function fromWire(w: WireSecrets): ktls.TlsSecrets {
  const d = (x: WireDirection): ktls.DirectionSecrets => ({ key: Buffer.from(x.key, 'hex'), iv: Buffer.from(x.iv, 'hex'), seq: BigInt(x.seq) });
  return { version: w.version, cipher: w.cipher, tx: d(w.tx), rx: d(w.rx) };
}

/** What the receiver's socket ended up with after upgrade(). */
export interface RxSetup {
  /** `socket.offload.rxExpectNoPad`. */
  rxExpectNoPad: boolean;
  /** `socket.kernelDirections.rx`: the kernel opens the records. */
  kernelRx: boolean;
  /** `socket.offload.rx` (kernel-sw, kernel, userspace...). */
  rx: string;
}

export interface RxResult {
  /** CLOCK_MONOTONIC ns when the last byte arrived. */
  t1: string;
  /** The receiver's CPU from rxNopadReceive until the last byte. */
  cpu: Cpu;
  bytes: number;
  /** 'data' chunks: one per recvmsg that returned data. */
  chunks: number;
}

const receivers = new Map<number, KtlsSocket>();

function socketOf(handle: net.Socket | undefined, op: string): net.Socket {
  if (!handle) throw new Error(`${op}: no socket came with the message`);
  return handle;
}

/** Upgrades the receiving end (kernel RX, `rxExpectNoPad` as asked) and reports what it got. */
export async function rxNopadAccept(a: { id: number; secrets: WireSecrets; rxExpectNoPad: boolean }, handle?: net.Socket): Promise<RxSetup> {
  const s = await ktls.upgrade(socketOf(handle, 'rxNopadAccept'), fromWire(a.secrets), { rxExpectNoPad: a.rxExpectNoPad, fallback: 'error' });
  s.on('error', () => undefined);
  receivers.set(a.id, s);
  const o = s.offload;
  return { rxExpectNoPad: o.rxExpectNoPad, kernelRx: s.kernelDirections.rx, rx: o.rx };
}

/** Drops a receiver that will not be used (its setup was not what the scenario asked for). */
export function rxNopadDrop(a: { id: number }): void {
  receivers.get(a.id)?.destroy();
  receivers.delete(a.id);
}

/** Counts `total` bytes on an accepted receiver, then destroys it; CPU counts from this call to the last byte. */
export function rxNopadReceive(a: { id: number; total: number }): Promise<RxResult> {
  const s = receivers.get(a.id);
  receivers.delete(a.id);
  if (!s) return Promise.reject(new Error(`no receiver ${a.id}`));
  const cpu0 = cpuNow();
  let bytes = 0;
  let chunks = 0;
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer): void => {
      bytes += d.length;
      chunks++;
      if (bytes < a.total) return;
      const t1 = nowNs();
      const cpu = cpuSince(cpu0);
      s.off('data', onData);
      s.destroy();
      resolve({ t1: String(t1), cpu, bytes, chunks });
    };
    s.on('data', onData);
    s.once('error', reject);
    s.once('close', () => bytes < a.total && reject(new Error(`connection closed after ${bytes} of ${a.total} bytes`)));
  });
}

/** Resolves at the stream's next 'drain' or 'close', whichever comes first. */
function drained(s: KtlsSocket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      s.off('drain', done).off('close', done);
      resolve();
    };
    s.once('drain', done).once('close', done);
  });
}

/** Upgrades the sending end (kernel TX) and writes `total` bytes in `chunk`-sized writes; resolves once the receiver has closed. */
export async function rxNopadSend(a: { secrets: WireSecrets; total: number; chunk: number }, handle?: net.Socket): Promise<{ t0: string; cpu: Cpu }> {
  const s = await ktls.upgrade(socketOf(handle, 'rxNopadSend'), fromWire(a.secrets), { fallback: 'error' });
  s.on('error', () => undefined);
  if (!s.kernelDirections.tx) throw new Error(`the sender is not on kernel TX (${s.offload.tx})`);
  const buf = randomBytes(a.chunk);
  const closed = new Promise<void>((resolve) => {
    s.once('close', () => resolve());
    s.once('end', () => (s.destroy(), resolve()));
  });
  s.resume(); // nothing comes but the receiver's close
  const t0 = nowNs();
  const cpu0 = cpuNow();
  for (let sent = 0; sent < a.total && !s.destroyed;) {
    const n = Math.min(buf.length, a.total - sent);
    sent += n;
    if (!s.write(n === buf.length ? buf : buf.subarray(0, n))) await drained(s);
  }
  const cpu = cpuSince(cpu0);
  const timer = setTimeout(() => s.destroy(), 60_000);
  await closed;
  clearTimeout(timer);
  return { t0: String(t0), cpu };
}
