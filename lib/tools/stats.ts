/**
 * {@link stats}: is kTLS on, and what is it doing? The process's own counters
 * (socket/counters.ts) and the host's `/proc/net/tls_stat`, as an object and
 * as Prometheus text ({@link prometheusText}).
 * @packageDocumentation
 */
import { tlsStats } from '../native/probe.js';
import { processCounters, type ProcessCounters } from '../socket/counters.js';

export type { ConnectionKind, ProcessCounters } from '../socket/counters.js';

/** What {@link stats} returns. */
export interface KtlsStats {
  /** This process's (this thread's, in a Worker) counters since it loaded ktls. */
  process: ProcessCounters;
  /**
   * The host's kTLS counters (`/proc/net/tls_stat`, every process in this
   * network namespace): `TlsCurrTxSw`/`TlsCurrTxDevice` (sockets open now,
   * software or NIC), `TlsTxSw`, `TlsDecryptError`, `TlsRxNoPadViolation`,
   * `TlsTxRekeyOk`, …, as the running kernel names them. null where the kernel
   * has none (no `tls` module loaded).
   */
  host: Record<string, number> | null;
}

/** The process counters and the host's `/proc/net/tls_stat` (read without blocking the event loop). */
export async function stats(): Promise<KtlsStats> {
  return { process: processCounters(), host: await tlsStats() };
}

/** One Prometheus metric: its type, help and samples (label set → value). */
export interface Metric {
  /** The metric's name (`ktls_*`). */
  name: string;
  /** Its Prometheus type. */
  type: 'counter' | 'gauge';
  /** Its `# HELP` text. */
  help: string;
  /** The label names every sample has. */
  labelNames: string[];
  /** One value per label set. */
  samples: Array<{
    /** The sample's labels (each of `labelNames`). */
    labels: Record<string, string>;
    /** Its value. */
    value: number;
  }>;
}

const each = (m: Record<string, number>, label: string): Metric['samples'] => Object.entries(m).map(([k, value]) => ({ labels: { [label]: k }, value }));

/** The metrics of a {@link KtlsStats}, named `ktls_*`. */
export function metricsOf(s: KtlsStats): Metric[] {
  const p = s.process;
  const alerts = (['sent', 'received'] as const).flatMap((direction) =>
    Object.entries(p.alerts[direction]).map(([alert, value]) => ({ labels: { direction, alert }, value })),
  );
  const out: Metric[] = [
    {
      name: 'ktls_connections_total',
      type: 'counter',
      help: 'Connections switched, by who protects their records.',
      labelNames: ['kind'],
      samples: each(p.connections, 'kind'),
    },
    {
      name: 'ktls_connections_open',
      type: 'gauge',
      help: 'Connections open now, by who protects their records.',
      labelNames: ['kind'],
      samples: each(p.open, 'kind'),
    },
    {
      name: 'ktls_fallbacks_total',
      type: 'counter',
      help: 'Connections not wholly on kernel TLS, by reason.',
      labelNames: ['reason'],
      samples: each(p.fallbacks, 'reason'),
    },
    {
      name: 'ktls_key_updates_total',
      type: 'counter',
      help: 'TLS 1.3 KeyUpdates sent and received.',
      labelNames: ['direction'],
      samples: each(p.keyUpdates, 'direction'),
    },
    { name: 'ktls_alerts_total', type: 'counter', help: 'TLS alerts sent and received, by name.', labelNames: ['direction', 'alert'], samples: alerts },
    {
      name: 'ktls_bytes_total',
      type: 'counter',
      help: 'Application bytes by path: write, sendFile, spliceFrom (sent), spliceTo (received).',
      labelNames: ['path'],
      samples: each(p.bytes, 'path'),
    },
  ];
  if (s.host) {
    const entries = Object.entries(s.host);
    const current = entries.filter(([k]) => k.startsWith('TlsCurr'));
    const totals = entries.filter(([k]) => !k.startsWith('TlsCurr'));
    const samples = (list: Array<[string, number]>): Metric['samples'] => list.map(([name, value]) => ({ labels: { name }, value }));
    out.push(
      {
        name: 'ktls_host_tls_current',
        type: 'gauge',
        help: "The host's kTLS sockets open now (/proc/net/tls_stat TlsCurr*).",
        labelNames: ['name'],
        samples: samples(current),
      },
      { name: 'ktls_host_tls_total', type: 'counter', help: "The host's kTLS counters (/proc/net/tls_stat).", labelNames: ['name'], samples: samples(totals) },
    );
  }
  return out;
}

/** A label value in the exposition format: backslash, double quote and newline escaped. */
function labelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/**
 * The stats in Prometheus's text exposition format (version 0.0.4), for a
 * `/metrics` endpoint: `res.setHeader('content-type', 'text/plain; version=0.0.4')`,
 * then `res.end(ktls.prometheusText(await ktls.stats()))`.
 */
export function prometheusText(s: KtlsStats): string {
  const lines: string[] = [];
  for (const m of metricsOf(s)) {
    lines.push(`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} ${m.type}`);
    for (const { labels, value } of m.samples) {
      const l = Object.entries(labels)
        .map(([k, v]) => `${k}="${labelValue(v)}"`)
        .join(',');
      lines.push(`${m.name}${l ? `{${l}}` : ''} ${value}`);
    }
  }
  return lines.join('\n') + '\n';
}
