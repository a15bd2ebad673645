/**
 * Renders verify reports: progress lines while the suite runs, the summary
 * table (group × version × cipher), failures and unsupported reasons, TAP, and
 * the probe report.
 * @packageDocumentation
 */
import type { KtlsStats } from '../tools/stats.js';
import type { Capabilities } from '../native/probe.js';
import type { CellSummary, VerifyEvent, VerifyReport } from './runner.js';
import type { CheckResult } from './types.js';

/** Where text goes (a stream's `write`). */
export type Sink = (text: string) => void;

const MARK = { pass: '.', fail: 'F', unsupported: 'u' } as const;

/** One-line description of what the probe found. */
export function describeCaps(caps: Capabilities): string {
  if (!caps.ulp) return `no kTLS (setsockopt(TCP_ULP, "tls"): ${caps.ulpError ?? 'failed'})`;
  const both = caps.ciphers.filter((c) => c.tx && c.rx).length;
  const broken = caps.ciphers.filter((c) => c.defect).length;
  const yes = (b: boolean): string => (b ? 'yes' : 'no');
  return `ULP ok; ${both}/${caps.ciphers.length} version × cipher install both ways${broken ? ` (${broken} with a known kernel defect: userspace records)` : ''}; TLS_TX_ZEROCOPY_RO ${yes(caps.txZerocopyRo)}, TLS_RX_EXPECT_NO_PAD ${yes(caps.rxExpectNoPad)}, TLS_TX_MAX_PAYLOAD_LEN ${yes(caps.txMaxPayloadLen)}, TLS 1.3 rekey ${yes(caps.rekey)}`;
}

/** The capability report of `--probe`, human-readable. */
export function formatProbe(caps: Capabilities): string {
  const lines = [`kernel ${caps.kernelRelease}: ${describeCaps(caps)}`];
  if (caps.ciphers.length > 0) {
    lines.push('', `  ${'version'.padEnd(9)}${'cipher'.padEnd(19)}TX   RX   error`);
    for (const c of caps.ciphers)
      lines.push(
        `  ${c.version.padEnd(9)}${c.cipher.padEnd(19)}${(c.tx ? 'yes' : 'no').padEnd(5)}${(c.rx ? 'yes' : 'no').padEnd(5)}${c.error ?? (c.defect ? 'known kernel defect, below' : '')}`,
      );
  }
  for (const d of caps.defects)
    lines.push(
      '',
      `  known kernel defect ${d.id} (${d.area === 'records' ? `${d.version} ${d.cipher} stays on userspace records` : 'spliceTo() copies instead of splice(2)'}):`,
      `    seen: ${d.observed}`,
      `    ${d.summary}`,
      `    fixed in ${d.fixedIn}`,
    );
  if (caps.stats)
    lines.push(
      '',
      `  /proc/net/tls_stat: ${Object.entries(caps.stats)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
    );
  return lines.join('\n') + '\n';
}

/** A progress printer for {@link VerifyEvent}s: one line per cell, a mark per check as it finishes. */
export function progress(write: Sink): (event: VerifyEvent) => void {
  return (event) => {
    if (event.type === 'cell-start') write(`  ${event.group.padEnd(13)}${event.version.padEnd(9)}${event.cipher.padEnd(19)}`);
    else if (event.type === 'check-done') write(MARK[event.result.status]);
    else write(`  ${cellText(event.cell)}\n`);
  };
}

function cellText(c: CellSummary): string {
  if (c.status === 'unsupported') return 'not supported by this kernel';
  const parts = [`${c.passed} passed`];
  if (c.failed) parts.push(`${c.failed} FAILED`);
  if (c.unsupported) parts.push(`${c.unsupported} not supported`);
  return parts.join(', ');
}

function tableCell(c: CellSummary | undefined): string {
  if (!c) return '-';
  if (c.status === 'unsupported') return 'not supported';
  if (c.status === 'fail') return `FAIL ${c.failed}/${c.passed + c.failed + c.unsupported}`;
  return c.unsupported ? `pass ${c.passed} (+${c.unsupported} n/s)` : `pass ${c.passed}`;
}

/** The summary table: a row per group × version, a column per cipher. */
export function formatTable(report: VerifyReport): string {
  const { ciphers } = report.selection;
  const rows: string[][] = [['group', 'version', ...ciphers]];
  for (const group of report.selection.groups) {
    for (const version of report.selection.versions) {
      const cells = ciphers.map((cipher) => report.cells.find((c) => c.group === group && c.version === version && c.cipher === cipher));
      if (cells.every((c) => !c)) continue;
      rows.push([group, version, ...cells.map(tableCell)]);
    }
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return (
    rows
      .map(
        (r) =>
          '  ' +
          r
            .map((v, i) => v.padEnd(widths[i] + 2))
            .join('')
            .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

/** Unsupported results grouped by check and reason: `[label, reason, cells]`. */
function unsupportedGroups(results: CheckResult[]): Array<[string, string, string[]]> {
  const map = new Map<string, [string, string, string[]]>();
  for (const r of results.filter((x) => x.status === 'unsupported')) {
    const key = `${r.group}/${r.id}\n${r.reason}`;
    const entry = map.get(key) ?? [`${r.group}/${r.id}`, r.reason ?? '', []];
    entry[2].push(`${r.version} ${r.cipher}`);
    map.set(key, entry);
  }
  return [...map.values()];
}

/** The end of a human-readable run: failures, unsupported reasons, the table, totals. */
export function formatSummary(report: VerifyReport): string {
  const out: string[] = [''];
  const failures = report.results.filter((r) => r.status === 'fail');
  if (failures.length) {
    out.push('Failures:');
    for (const f of failures) {
      out.push(`  ✗ ${f.group}/${f.id} ${f.version} ${f.cipher}: ${f.reason ?? ''}${f.code ? ` [${f.code}]` : ''}`);
      if (Object.keys(f.observed).length) out.push(`      observed: ${JSON.stringify(f.observed)}`);
    }
    out.push('');
  }
  const unsupported = unsupportedGroups(report.results);
  if (unsupported.length) {
    out.push('Not supported by this kernel (not counted as passed):');
    for (const [label, reason, cells] of unsupported) out.push(`  - ${label} (${cells.length === 1 ? cells[0] : `${cells.length} cells`}): ${reason}`);
    out.push('');
  }
  out.push('Summary (group × version × cipher):', formatTable(report).trimEnd(), '');
  const t = report.totals;
  out.push(`${t.passed} passed, ${t.failed} failed, ${t.unsupported} not supported by this kernel (${(report.ms / 1000).toFixed(1)} s)`);
  return out.join('\n') + '\n';
}

/** The header of a human-readable run. */
export function formatHeader(report: Pick<VerifyReport, 'kernel' | 'kernelLabel' | 'node' | 'probe'>): string {
  return `ktls-verify: kernel ${report.kernelLabel ?? report.kernel}, node ${report.node}\nkTLS: ${describeCaps(report.probe)}\n\n`;
}

const yamlString = (s: string): string => JSON.stringify(s);

/** TAP 14 for one report; `indent` nests it as a subtest. Unsupported checks are `# SKIP`. */
export function formatTap(report: VerifyReport, indent = ''): string {
  const out = [`${indent}TAP version 14`, `${indent}# kernel ${report.kernelLabel ?? report.kernel}, node ${report.node}`];
  if (!report.available) {
    out.push(`${indent}1..0 # SKIP ${report.unavailableReason ?? 'kTLS not available'}`);
    return out.join('\n') + '\n';
  }
  report.results.forEach((r, i) => {
    const name = `${r.group} ${r.version} ${r.cipher} ${r.id}: ${r.title}`;
    if (r.status === 'pass') out.push(`${indent}ok ${i + 1} - ${name}`);
    else if (r.status === 'unsupported') out.push(`${indent}ok ${i + 1} - ${name} # SKIP not supported by this kernel: ${r.reason ?? ''}`);
    else {
      out.push(`${indent}not ok ${i + 1} - ${name}`, `${indent}  ---`, `${indent}  reason: ${yamlString(r.reason ?? '')}`);
      if (r.code) out.push(`${indent}  code: ${r.code}`);
      if (Object.keys(r.observed).length) out.push(`${indent}  observed: ${JSON.stringify(r.observed)}`);
      out.push(`${indent}  ...`);
    }
  });
  out.push(`${indent}1..${report.results.length}`);
  const t = report.totals;
  out.push(`${indent}# ${t.passed} passed, ${t.failed} failed, ${t.unsupported} not supported by this kernel`);
  return out.join('\n') + '\n';
}

/** `ktls-verify --stats`: the process counters, then the host's `/proc/net/tls_stat`. */
export function formatStats(s: KtlsStats): string {
  const p = s.process;
  const pairs = (m: Record<string, number>): string =>
    Object.entries(m)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ') || 'none';
  const lines = [
    'this process (ktls.stats().process):',
    `  connections switched: ${pairs(p.connections)}`,
    `  open now: ${pairs(p.open)}`,
    `  fallbacks: ${pairs(p.fallbacks)}`,
    `  KeyUpdates: ${pairs(p.keyUpdates)}`,
    `  alerts sent: ${pairs(p.alerts.sent)}`,
    `  alerts received: ${pairs(p.alerts.received)}`,
    `  bytes: ${pairs(p.bytes)}`,
    s.host ? 'this host (/proc/net/tls_stat):' : 'this host: no /proc/net/tls_stat (the kernel has no tls module loaded)',
    ...Object.entries(s.host ?? {}).map(([k, v]) => `  ${k.padEnd(28)}${v}`),
  ];
  return lines.join('\n') + '\n';
}
