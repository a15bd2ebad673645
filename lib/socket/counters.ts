/**
 * The process's own kTLS counters (this thread's, in a Worker): connections by
 * who protects their records, fallbacks by reason, KeyUpdates, alerts by name
 * and bytes by how they were sent. `ktls.stats()` (tools/stats.ts) reports them
 * next to the host's `/proc/net/tls_stat`.
 * @packageDocumentation
 */
import type { EventEmitter } from 'node:events';
import type { Offload } from './offload.js';

/**
 * Who protects a connection's records, from its `socket.offload` at the switch:
 * `kernel-sw`/`kernel-hw` (both directions the kernel's, in software / with the
 * NIC in either), `kernel` (the kernel's, which would not say which: no
 * `CAP_NET_ADMIN`), `partial` (one direction the kernel's, the other in
 * userspace), `userspace` (ktls's record layer, or node:tls), `none` (plain TCP
 * from `adopt()`).
 */
export type ConnectionKind = 'kernel-sw' | 'kernel-hw' | 'kernel' | 'partial' | 'userspace' | 'none';

/** A snapshot of the process counters (see {@link KtlsStats}). */
export interface ProcessCounters {
  /** Connections switched since the process started, by {@link ConnectionKind}. */
  connections: Record<ConnectionKind, number>;
  /** Connections open now, by the same kinds. */
  open: Record<ConnectionKind, number>;
  /** Connections that are not wholly the kernel's, by the reason (the `KTLS_FALLBACK` warning's). */
  fallbacks: Record<string, number>;
  /** TLS 1.3 KeyUpdates sent and received. */
  keyUpdates: {
    /** Ours (`updateKeys()`, answers to the peer's requests, key usage limits). */
    sent: number;
    /** The peer's. */
    received: number;
  };
  /** Alerts sent and received, by name (`close_notify`, `bad_record_mac`, …). */
  alerts: {
    /** Alerts that reached the socket, by name. */
    sent: Record<string, number>;
    /** Alerts the peer sent, by name. */
    received: Record<string, number>;
  };
  /** Application bytes by path. */
  bytes: {
    /** Handed to the socket by `write()`/`end()`. */
    write: number;
    /** Sent by `sendFile()`. */
    sendFile: number;
    /** Sent by `spliceFrom()`. */
    spliceFrom: number;
    /** Received and moved out by `spliceTo()`. */
    spliceTo: number;
  };
}

const kinds = (): Record<ConnectionKind, number> => ({ 'kernel-sw': 0, 'kernel-hw': 0, kernel: 0, partial: 0, userspace: 0, none: 0 });

const c: ProcessCounters = {
  connections: kinds(),
  open: kinds(),
  fallbacks: {},
  keyUpdates: { sent: 0, received: 0 },
  alerts: { sent: {}, received: {} },
  bytes: { write: 0, sendFile: 0, spliceFrom: 0, spliceTo: 0 },
};

/** A connection switched (or kept on node:tls): counted, and counted out of `open` at its `'close'`. */
export function countConnection(socket: EventEmitter, kind: ConnectionKind, fallbackReason?: string): void {
  c.connections[kind]++;
  c.open[kind]++;
  if (fallbackReason !== undefined && (kind === 'partial' || kind === 'userspace')) c.fallbacks[fallbackReason] = (c.fallbacks[fallbackReason] ?? 0) + 1;
  socket.once('close', () => c.open[kind]--);
}

/** The kind of a connection from its offload. */
export function kindOf(o: Offload): ConnectionKind {
  const inKernel = (k: string): boolean => k.startsWith('kernel');
  if (inKernel(o.tx) !== inKernel(o.rx)) return 'partial';
  if (!inKernel(o.tx)) return o.tx === 'none' && o.rx === 'none' ? 'none' : 'userspace';
  if (o.tx === 'kernel-hw' || o.rx === 'kernel-hw') return 'kernel-hw';
  return o.tx === 'kernel-sw' && o.rx === 'kernel-sw' ? 'kernel-sw' : 'kernel';
}

/** An alert sent or received, by name. */
export function countAlert(dir: 'sent' | 'received', name: string): void {
  const m = c.alerts[dir];
  m[name] = (m[name] ?? 0) + 1;
}

/** A KeyUpdate sent or received. */
export function countKeyUpdate(dir: 'sent' | 'received'): void {
  c.keyUpdates[dir]++;
}

/** Application bytes moved by one path. */
export function countBytes(path: keyof ProcessCounters['bytes'], n: number): void {
  c.bytes[path] += n;
}

/** A deep copy of the counters now. */
export function processCounters(): ProcessCounters {
  return structuredClone(c);
}
