// Generates docs/benchmarks.md and docs/benchmarks/*.svg from bench results.
// Charts are Vega-Lite specs rendered to SVG in Node (vega View#toSVG, no browser).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, type MachineInfo, type Stat } from './common.js';
import { H2_BODY_NOTE } from './h2.js';
import type { BenchResults } from './run.js';
import type { Row, ScenarioResult, TargetResult } from './sampling.js';

/** Full runs write into docs/ (committed); quick runs into .cache/bench/quick/. */
export function reportDir(quick: boolean): string {
  return quick ? path.join(ROOT, '.cache', 'bench', 'quick') : path.join(ROOT, 'docs');
}
export const FUNCTIONAL = 'functional run, not performance';

interface VegaModule {
  View: new (runtime: unknown, opts: { renderer: string }) => { toSVG(): Promise<string>; finalize(): void };
  parse(spec: unknown): unknown;
}
interface VegaLiteModule {
  compile(spec: unknown): { spec: unknown };
}

// Loaded with import() (both are ES modules) through a variable so that tsc keeps it an import().
// eslint-disable-next-line @typescript-eslint/no-implied-eval -- a real import() that CommonJS output keeps
const load = <T>(name: string): Promise<T> => (new Function('s', 'return import(s)') as (s: string) => Promise<T>)(name);

async function svg(spec: object): Promise<string> {
  const vega = await load<VegaModule>('vega');
  const vl = await load<VegaLiteModule>('vega-lite');
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  const out = await view.toSVG();
  view.finalize();
  return out;
}

function umlTag(s: { where: string }): string {
  return s.where === 'uml' ? ` (UML: ${FUNCTIONAL})` : '';
}

function fmt(v: number, metric: string): string {
  if (metric.includes('s/GB')) return v.toFixed(v < 1 ? 3 : 2);
  if (metric.includes('ms')) return v.toFixed(v < 10 ? 2 : 1);
  if (v >= 100) return v.toFixed(0);
  return v.toFixed(1);
}

function cell(s: Stat | null | undefined, metric: string): string {
  if (!s) return '–';
  const spread = s.n > 1 ? ` ±${(s.spreadPct / 2).toFixed(0)}%` : '';
  return `${fmt(s.median, metric)}${spread}`;
}

/** Grouped bar chart of one metric: groups on x, contenders side by side, min–max whiskers. */
function barSpec(title: string, rows: Row[], metric: string, yTitle: string, groupTitle: string): object {
  const values = rows
    .filter((r) => r.available && r.metrics[metric])
    .map((r) => ({ group: r.group, label: r.label, value: r.metrics[metric]!.median, min: r.metrics[metric]!.min, max: r.metrics[metric]!.max }));
  const groups = [...new Set(rows.map((r) => r.group))];
  const labels = [...new Set(rows.filter((r) => r.available).map((r) => r.label))];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, fontSize: 13, limit: 760 },
    width: Math.max(360, groups.length * labels.length * 16),
    height: 260,
    background: 'white',
    data: { values },
    encoding: {
      x: { field: 'group', type: 'nominal', sort: groups, title: groupTitle, axis: { labelAngle: 0 } },
      xOffset: { field: 'label', type: 'nominal', sort: labels },
      color: { field: 'label', type: 'nominal', sort: labels, title: null, legend: { orient: 'bottom', columns: 2, labelLimit: 360 } },
    },
    layer: [
      { mark: 'bar', encoding: { y: { field: 'value', type: 'quantitative', title: yTitle } } },
      { mark: { type: 'rule' }, encoding: { y: { field: 'min', type: 'quantitative' }, y2: { field: 'max' }, color: { value: '#222' } } },
    ],
  };
}

interface Chart {
  file: string;
  scenario: string;
  alt: string;
  spec: object;
}

function charts(results: BenchResults): Chart[] {
  const out: Chart[] = [];
  for (const s of results.scenarios) {
    const tag = umlTag(s);
    if (s.id === 'bulk' || s.id === 'plain' || s.id === 'splice') {
      const title = `${s.title}: throughput, MB/s (median, whiskers min–max)${tag}`;
      out.push({
        file: `${s.id}-throughput.svg`,
        scenario: s.id,
        alt: title,
        spec: barSpec(title, s.rows, 'MB/s', 'MB/s', s.id === 'splice' ? '' : 'file size'),
      });
      if (s.id !== 'splice') {
        const cpuRows = s.rows.map((r) => ({ ...r, metrics: { cpu: sumStat(r.metrics['sender user s/GB'], r.metrics['sender sys s/GB']) } }));
        const t2 = `${s.title}: sender CPU seconds per GB (user + system, median)${tag}`;
        out.push({ file: `${s.id}-sender-cpu.svg`, scenario: s.id, alt: t2, spec: barSpec(t2, cpuRows, 'cpu', 'CPU s/GB', 'file size') });
      }
    } else if (s.id === 'small' || s.id === 'small-plain') {
      const title = `${s.title}: requests/s (median)${tag}`;
      out.push({ file: `${s.id}-rps.svg`, scenario: s.id, alt: title, spec: barSpec(title, s.rows, 'req/s', 'requests/s', 'message size') });
    } else if (s.id === 'rx-nopad' && s.rows.some((r) => r.available)) {
      const title = `${s.title}: receiver CPU µs per MiB received (user + system, median)${tag}`;
      out.push({ file: 'rx-nopad-cpu.svg', scenario: s.id, alt: title, spec: barSpec(title, s.rows, 'receiver CPU µs/MiB', 'CPU µs/MiB', 'data per run') });
    } else if (s.id === 'handshake') {
      const title = `${s.title}: time to first response byte, ms (median)${tag}`;
      out.push({ file: 'handshake-ttfb.svg', scenario: s.id, alt: title, spec: barSpec(title, s.rows, 'TTFB ms', 'ms', '') });
    }
  }
  return out;
}

function sumStat(a: Stat | null | undefined, b: Stat | null | undefined): Stat | null {
  if (!a || !b) return null;
  const median = a.median + b.median;
  return { median, min: a.min + b.min, max: a.max + b.max, spreadPct: 0, n: a.n };
}

function machineLine(m: MachineInfo | null, uml: boolean): string {
  if (!m) return 'not run';
  const k = uml
    ? `${m.kernelLabel} — **${FUNCTIONAL}**`
    : `Linux ${m.kernel}${m.ktls === 'native' ? ' (kTLS native)' : ' (no kTLS in this kernel; plain TCP only)'}`;
  return `${k}; ${m.cpuModel}, ${m.cpus} CPU${m.cpus === 1 ? '' : 's'}, ${m.memoryGiB} GiB; Node ${m.node}`;
}

function targetRow(t: TargetResult): string {
  const status = t.met === null ? 'n/a (not measured)' : t.met ? '**met**' : '**missed**';
  const value = t.value === null ? '–' : `${t.value.toFixed(2)}×`;
  return `| ${t.label} | ${value} | ${t.op} ${t.threshold}× | ${status}${t.functionalOnly ? ` (UML: ${FUNCTIONAL})` : ''} |`;
}

function table(s: ScenarioResult): string[] {
  const lines = [
    `| ${s.id === 'handshake' ? 'version' : 'group'} | contender | ${s.metrics.join(' | ')} |`,
    `|---|---|${s.metrics.map(() => '---:').join('|')}|`,
  ];
  for (const r of s.rows) {
    if (!r.available)
      lines.push(
        `| ${r.group} | ${r.label} | ${r.metrics && s.metrics.length ? `not available: ${r.reason ?? '?'}` : ''}${' | '.repeat(Math.max(0, s.metrics.length - 1))} |`,
      );
    else lines.push(`| ${r.group} | ${r.label} | ${s.metrics.map((m) => cell(r.metrics[m], m)).join(' | ')} |`);
  }
  return lines;
}

/** Writes docs/benchmarks.md, docs/benchmarks/*.svg and docs/benchmarks/results.json. */
export async function writeReport(results: BenchResults, dir = reportDir(results.quick)): Promise<string> {
  const ASSETS = path.join(dir, 'benchmarks');
  fs.mkdirSync(ASSETS, { recursive: true });
  const quickSuffix = '';
  const cs = charts(results);
  for (const c of cs) fs.writeFileSync(path.join(ASSETS, c.file.replace('.svg', `${quickSuffix}.svg`)), await svg(c.spec));
  const headline = cs.find((c) => c.scenario === 'bulk') ?? cs[0];
  if (headline) fs.writeFileSync(path.join(ASSETS, `headline${quickSuffix}.svg`), await svg(headline.spec));
  fs.writeFileSync(path.join(ASSETS, `results${quickSuffix}.json`), JSON.stringify(results, null, 1) + '\n');

  const rel = (f: string): string => `benchmarks/${f.replace('.svg', `${quickSuffix}.svg`)}`;
  const md: string[] = [];
  md.push('# Benchmarks', '');
  md.push(
    `<!-- Generated by \`npm run bench${results.quick ? ':quick' : ''}\` (bench/report.ts) from benchmarks/results.json beside this file; do not edit by hand. Regenerate with \`node dist/bench/run.js --report <that file>\`. -->`,
    '',
  );
  md.push(
    `Measured ${results.generatedAt.slice(0, 16).replace('T', ' ')} UTC${results.quick ? ' in **quick mode** (fewer rounds and smaller transfers)' : ''}; the whole run took ${Math.round(results.wallSeconds)} s.${(results.updated ?? []).map((u) => ` Scenario \`${u.id}\` was rerun on its own at ${u.at.slice(0, 16).replace('T', ' ')} UTC (\`node dist/bench/run.js --only ${u.id} --update\`).`).join('')}`,
    '',
  );
  md.push('| part | where it ran |', '|---|---|');
  md.push(`| plain-TCP scenarios (addon path, no ULP) | ${machineLine(results.host, false)} |`);
  md.push(
    `| kTLS scenarios | ${results.ktls.where === 'none' ? `not run: ${results.ktls.error ?? ''}` : machineLine(results.ktls.machine, results.ktls.where === 'uml')}${results.ktls.error && results.ktls.where !== 'none' ? ` (error: ${results.ktls.error})` : ''} |`,
  );
  md.push('');
  if (results.scenarios.some((s) => s.where === 'uml')) {
    md.push(
      `> **The kTLS numbers below were taken under user-mode-linux: ${FUNCTIONAL}.** UML runs the kernel as a process on one CPU; every syscall and page fault is a trap, so they show that each path works and roughly how paths compare there, not what kTLS does on a real kernel. CPU accounting inside the guest is unreliable as well (kernel crypto often shows up as user time, and clock-tick sampling is coarse). Run \`npm run bench\` on a host whose kernel has the \`tls\` module for performance numbers (the bench decides by \`ktls.probe()\`).`,
      '',
    );
  }
  md.push(
    'Every scenario runs its contenders alternately (order rotated each round) in one sender and one receiver worker process; cells are the median over rounds with ± half the min–max spread in percent. CPU seconds per GB are per side, user and system separately (`process.cpuUsage()` for Node workers, `/proc/<pid>/stat` for the C programs, whose clock ticks are 10 ms: their small CPU figures read as 0 or in steps). ' +
      `Sender, receiver and any other load share ${results.host.cpus} CPU${results.host.cpus === 1 ? '' : 's'} here, so wide spreads mean the machine was busy.`,
    '',
  );
  const targets = results.scenarios.flatMap((s) => s.targets);
  if (targets.length) {
    md.push('## Targets', '');
    md.push('| target | measured | goal | status |', '|---|---:|---:|---|');
    for (const t of targets) md.push(targetRow(t));
    md.push('');
  }
  for (const s of results.scenarios) {
    md.push(`## ${s.title}${umlTag(s)}`, '');
    md.push(
      `Ran on: ${s.where === 'uml' ? `${s.kernelLabel} — **${FUNCTIONAL}**` : `Linux ${s.kernelLabel.replace(/^native /, '')}`}. ${s.seconds.toFixed(0)} s.`,
      '',
    );
    md.push(s.description, '');
    if (s.id === 'h2') md.push(`> ${H2_BODY_NOTE}`, '');
    for (const c of cs.filter((x) => x.scenario === s.id)) md.push(`![${c.alt}](${rel(c.file)})`, '');
    md.push(...table(s), '');
    const notes = s.rows.filter((r) => r.available && r.note).map((r) => `${r.group} / ${r.label}: ${r.note}`);
    const methods = [...new Set(s.rows.filter((r) => r.available && r.note).map((r) => `${r.label}: ${r.note}`))];
    if (s.id === 'handshake') {
      if (notes.length) md.push('Per contender:', '', ...notes.map((n) => `- ${n}`), '');
    } else if (methods.length && s.id !== 'splice') {
      md.push(
        s.id === 'rx-nopad' ? "What each receiver's socket reported (socket.offload):" : 'How each contender sends:',
        '',
        ...methods.map((n) => `- ${n}`),
        '',
      );
    }
    if (s.notes.length) md.push(...s.notes.map((n) => `- ${n}`), '');
  }
  const file = path.join(dir, 'benchmarks.md');
  fs.writeFileSync(file, md.join('\n'));
  return file;
}
