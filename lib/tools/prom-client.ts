/**
 * {@link registerPromClient}: ktls's stats as `prom-client` metrics, for
 * services that already expose a registry. prom-client is not a dependency:
 * it is loaded from the application only when this is called.
 * @packageDocumentation
 */
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { KtlsError } from '../native/errors.js';
import { processCounters } from '../socket/counters.js';
import { metricsOf, stats, type KtlsStats } from './stats.js';

/** The parts of prom-client this uses. */
interface PromClient {
  register: unknown;
  Counter: new (config: PromConfig) => PromMetric;
  Gauge: new (config: PromConfig) => PromMetric;
}
interface PromConfig {
  name: string;
  help: string;
  labelNames: string[];
  registers: unknown[];
  collect(this: PromMetric): Promise<void>;
}
/** A prom-client metric as this file drives it. */
export interface PromMetric {
  /** Forgets every sample (prom-client's `reset()`). */
  reset(): void;
  /** Adds to a counter's sample. */
  inc(labels: Record<string, string>, value: number): void;
  /** Sets a gauge's sample. */
  set(labels: Record<string, string>, value: number): void;
}

/** prom-client as the application resolves it (its working directory), else as this package does. */
function loadPromClient(): PromClient {
  for (const base of [path.join(process.cwd(), 'index.js'), __filename]) {
    try {
      return createRequire(base)('prom-client') as PromClient;
    } catch {
      // not there: try the next place
    }
  }
  throw new KtlsError(
    'ERR_KTLS_PROM_CLIENT_MISSING',
    'registerPromClient() needs prom-client, which this application does not have (npm install prom-client), or serve ktls.prometheusText(await ktls.stats()) yourself',
  );
}

/** Options of {@link registerPromClient}. */
export interface PromClientOptions {
  /** The registry to add the metrics to (default: prom-client's global `register`). */
  register?: unknown;
}

/**
 * Adds ktls's metrics (those of {@link prometheusText}: `ktls_connections_total`,
 * `ktls_fallbacks_total`, `ktls_alerts_total`, `ktls_host_tls_total`, …) to a
 * prom-client registry; each scrape reads {@link stats} once. Throws
 * `ERR_KTLS_PROM_CLIENT_MISSING` where the application has no prom-client.
 * Returns the metrics created (to remove them with `register.removeSingleMetric(name)`).
 */
export function registerPromClient(options: PromClientOptions = {}): PromMetric[] {
  const client = loadPromClient();
  const register = options.register ?? client.register;
  let pending: Promise<KtlsStats> | null = null;
  // One read per scrape: every metric's collect() runs in the same scrape.
  const snapshot = (): Promise<KtlsStats> => {
    pending ??= stats().finally(() => setImmediate(() => (pending = null)));
    return pending;
  };
  // The shapes (names, types, label names): the host's metrics are there even before a host has counters.
  return metricsOf({ process: processCounters(), host: {} }).map((shape) => {
    const Kind = shape.type === 'counter' ? client.Counter : client.Gauge;
    return new Kind({
      name: shape.name,
      help: shape.help,
      labelNames: shape.labelNames,
      registers: [register],
      async collect() {
        const m = metricsOf(await snapshot()).find((x) => x.name === shape.name);
        this.reset();
        for (const { labels, value } of m?.samples ?? []) {
          if (shape.type === 'counter') this.inc(labels, value);
          else this.set(labels, value);
        }
      },
    });
  });
}
