// `npm run bench [-- --quick] [-- --only bulk,plain,...]`
//
// Runs the plain-TCP scenarios on this kernel, and the kTLS scenarios where kTLS
// is: natively when ktls.probe() finds the tls ULP, otherwise under
// user-mode-linux (scripts/uml.mjs), whose numbers are functional only. Writes
// .cache/bench/results.json and docs/benchmarks/results.json, then generates
// docs/benchmarks.md and its SVG charts (bench/report.ts).
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { probe } from '../lib/index.js';
import { CACHE, CBENCH, ROOT, machineInfo, progress, type KtlsWhere, type MachineInfo } from './common.js';
import { h2Scenario } from './h2.js';
import { reportDir, writeReport } from './report.js';
import { Worker, type Ctx, type ScenarioResult } from './sampling.js';
import { resumptionScenario } from './resumption.js';
import { rxNopadScenario } from './rx-nopad.js';
import { bulkPlan, bulkScenario, handshakeScenario, addNetem, plainScenario, prepareFiles, smallScenario, spliceScenario } from './scenarios.js';
import { idleScenario, staticScenario } from './serving.js';

export interface BenchResults {
  version: 1;
  quick: boolean;
  generatedAt: string;
  wallSeconds: number;
  host: MachineInfo;
  ktls: { where: KtlsWhere; machine: MachineInfo | null; error?: string };
  scenarios: ScenarioResult[];
  /** Scenarios rerun later with `--update`, and when (the rest are from `generatedAt`). */
  updated?: Array<{ id: string; at: string }>;
}

const KTLS_SCENARIOS = ['bulk', 'small', 'splice', 'handshake', 'resumption', 'static', 'h2', 'rx-nopad', 'idle'];
const HOST_SCENARIOS = ['plain', 'small-plain', 'static-plain', 'static-adopt', 'resumption-cpu'];
const RTT_MS = 20;
/** Scenarios that need netem's RTT on loopback. */
const NETEM_SCENARIOS = ['handshake', 'resumption'];

interface Args {
  quick: boolean;
  only: string[] | null;
  inner: boolean;
  netns: boolean;
  out: string | null;
  reportOnly: string | null;
  update: boolean;
  /** The UML kernel for the kTLS scenarios where this kernel has no kTLS (a name, or auto: the first that boots). */
  kernel: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, only: null, inner: false, netns: false, out: null, reportOnly: null, update: false, kernel: 'auto' };
  for (let i = 0; i < argv.length; i++) {
    const [k, inline] = argv[i].split('=', 2) as [string, string | undefined];
    const val = (): string => inline ?? argv[++i] ?? '';
    if (k === '--quick') a.quick = true;
    else if (k === '--only') a.only = val().split(',').filter(Boolean);
    else if (k === '--inner') a.inner = true;
    else if (k === '--netns') a.netns = true;
    else if (k === '--out') a.out = val();
    else if (k === '--report') a.reportOnly = val();
    else if (k === '--update') a.update = true;
    else if (k === '--kernel') a.kernel = val();
    else
      throw new Error(
        `unknown argument ${k}; usage: run.js [--quick] [--only ${[...HOST_SCENARIOS, ...KTLS_SCENARIOS].join(',')}] [--report results.json] [--update (with --only: replace those scenarios in the last full report)] [--kernel 6.1|7.2|... (UML kernel for the kTLS scenarios)]`,
      );
  }
  return a;
}

function buildC(): void {
  fs.mkdirSync(CACHE, { recursive: true });
  const src = path.join(ROOT, 'bench', 'cbench.c');
  if (fs.existsSync(CBENCH) && fs.statSync(CBENCH).mtimeMs >= fs.statSync(src).mtimeMs) return;
  progress(`building ${path.relative(ROOT, CBENCH)} with cc`);
  execFileSync('cc', ['-O2', '-Wall', '-o', CBENCH, src], { stdio: 'inherit' });
}

/** Runs the named scenarios in this process tree (one worker pair). */
async function runScenarios(names: string[], quick: boolean, where: 'native' | 'uml', netem: { ok: boolean; why?: string }): Promise<ScenarioResult[]> {
  const sizes = new Set(bulkPlan(quick, where).map((p) => p.size));
  const files = prepareFiles([...sizes]);
  const a = new Worker('sender');
  const b = new Worker('receiver');
  const ctx: Ctx = { quick, rounds: quick ? 2 : 5, where, kernelLabel: process.env.KTLS_KERNEL_LABEL ?? `native ${os.release()}`, files, a, b };
  const out: ScenarioResult[] = [];
  try {
    for (const name of names) {
      progress(`scenario ${name} (${where}${where === 'uml' ? ', functional run, not performance' : ''})`);
      if (name === 'bulk') out.push(await bulkScenario(ctx));
      else if (name === 'plain') out.push(await plainScenario(ctx));
      else if (name === 'small') out.push(await smallScenario(ctx, false));
      else if (name === 'small-plain') out.push(await smallScenario(ctx, true));
      else if (name === 'splice') out.push(await spliceScenario(ctx));
      else if (name === 'static') out.push(await staticScenario(ctx, false));
      else if (name === 'static-plain') out.push(await staticScenario(ctx, true));
      else if (name === 'static-adopt') out.push(await staticScenario(ctx, true, true));
      else if (name === 'h2') out.push(await h2Scenario(ctx));
      else if (name === 'rx-nopad') out.push(await rxNopadScenario(ctx));
      else if (name === 'idle') out.push(await idleScenario(ctx));
      else if (name === 'resumption-cpu') out.push(await resumptionScenario(ctx, 'no netem on this kernel: CPU figures only', RTT_MS, 'resumption-cpu'));
      else if (name === 'handshake' || name === 'resumption') {
        let undo: (() => void) | null = null;
        let why: string | null = netem.ok ? null : (netem.why ?? 'netem unavailable');
        if (!why) {
          try {
            undo = addNetem(RTT_MS / 2);
          } catch (err) {
            why = `netem could not be set up: ${(err as Error).message.split('\n')[0]}`;
          }
        }
        try {
          out.push(name === 'handshake' ? await handshakeScenario(ctx, why, RTT_MS) : await resumptionScenario(ctx, why, RTT_MS));
        } finally {
          undo?.();
        }
      }
    }
  } finally {
    a.kill();
    b.kill();
  }
  return out;
}

/** Runs this script again in another environment (UML, a network namespace) and reads its results. */
async function runElsewhere(
  how: 'uml' | 'netns',
  names: string[],
  quick: boolean,
  kernel = 'auto',
): Promise<{ machine: MachineInfo; scenarios: ScenarioResult[] }> {
  const out = path.join(CACHE, `inner-${how}-${process.pid}.json`);
  fs.rmSync(out, { force: true });
  const args = [
    path.join(__dirname, 'run.js'),
    '--inner',
    '--only',
    names.join(','),
    '--out',
    out,
    ...(quick ? ['--quick'] : []),
    ...(how === 'netns' ? ['--netns'] : []),
  ];
  if (how === 'uml') {
    const uml = (await import(pathToFileURL(path.join(ROOT, 'scripts', 'uml.mjs')).href)) as {
      runInUml: (cmd: string[], o: object) => Promise<{ status: number; kernelLabel: string }>;
    };
    progress('booting user-mode-linux for the kTLS scenarios (queues behind other UML guests on .cache/uml/run.lock)');
    const r = await uml.runInUml([process.execPath, ...args], { kernel, cwd: ROOT, mem: '2048M', timeout: 1500, output: process.stderr });
    if (r.status !== 0) throw new Error(`the UML run exited with ${r.status}`);
  } else {
    const script = `ip link set lo up && exec "$0" "$@"`;
    const child = spawn('unshare', ['--net', '--', 'sh', '-c', script, process.execPath, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
    const code = await new Promise<number | null>((r) => child.once('close', r));
    if (code !== 0) throw new Error(`the network-namespace run exited with ${code}`);
  }
  const inner = JSON.parse(fs.readFileSync(out, 'utf8')) as { machine: MachineInfo; scenarios: ScenarioResult[] };
  fs.rmSync(out, { force: true });
  return inner;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.reportOnly) {
    const file = path.resolve(args.reportOnly);
    await writeReport(JSON.parse(fs.readFileSync(file, 'utf8')) as BenchResults, path.dirname(path.dirname(file)));
    return;
  }
  const started = Date.now();
  if (args.inner) {
    // Inside UML (the guest is ours) or a private network namespace: netem on lo touches nobody else.
    const inUml = (process.env.KTLS_KERNEL_LABEL ?? '').startsWith('UML');
    const where = inUml ? 'uml' : 'native';
    const netem = inUml || args.netns ? { ok: true } : { ok: false, why: 'netem needs UML or a private network namespace' };
    const scenarios = await runScenarios(args.only ?? KTLS_SCENARIOS, args.quick, where, netem);
    fs.writeFileSync(args.out!, JSON.stringify({ machine: machineInfo(inUml ? 'uml' : 'native'), scenarios }, null, 1));
    return;
  }
  const wanted = (list: string[]): string[] => list.filter((s) => !args.only || args.only.includes(s));
  buildC();
  const caps = await probe().catch(() => null);
  const ktlsWhere: KtlsWhere = caps?.ulp ? 'native' : fs.existsSync('/usr/bin/apt-get') ? 'uml' : 'none';
  progress(
    `kTLS on this kernel (${os.release()}): ${caps?.ulp ? 'yes, kTLS scenarios run natively' : `no (${caps?.ulpError ?? 'probe failed'}), kTLS scenarios run under user-mode-linux: functional run, not performance`}`,
  );
  const results: BenchResults = {
    version: 1,
    quick: args.quick,
    generatedAt: new Date().toISOString(),
    wallSeconds: 0,
    host: machineInfo(caps?.ulp ? 'native' : ktlsWhere),
    ktls: { where: ktlsWhere, machine: null },
    scenarios: [],
  };
  const host = wanted(HOST_SCENARIOS);
  if (host.length) results.scenarios.push(...(await runScenarios(host, args.quick, 'native', { ok: false })));
  const kt = wanted(KTLS_SCENARIOS);
  if (kt.length) {
    try {
      if (ktlsWhere === 'native') {
        results.ktls.machine = results.host;
        const withNetem = kt.filter((s) => NETEM_SCENARIOS.includes(s));
        const direct = kt.filter((s) => !NETEM_SCENARIOS.includes(s));
        if (direct.length) results.scenarios.push(...(await runScenarios(direct, args.quick, 'native', { ok: false })));
        if (withNetem.length) {
          // netem on the host's lo would slow every other program: use a private network namespace.
          const root = process.getuid?.() === 0;
          if (root && fs.existsSync('/usr/bin/unshare')) results.scenarios.push(...(await runElsewhere('netns', withNetem, args.quick)).scenarios);
          else
            results.scenarios.push(
              ...(await runScenarios(withNetem, args.quick, 'native', {
                ok: false,
                why: 'needs root for netem in a private network namespace (unshare --net)',
              })),
            );
        }
      } else if (ktlsWhere === 'uml') {
        const inner = await runElsewhere('uml', kt, args.quick, args.kernel);
        results.scenarios.push(...inner.scenarios);
        results.ktls.machine = inner.machine;
      } else {
        results.ktls.error = 'no kTLS kernel and no way to boot user-mode-linux here';
      }
    } catch (err) {
      results.ktls.error = (err as Error).message;
      progress(`kTLS scenarios failed: ${(err as Error).message}`);
    }
  }
  results.wallSeconds = (Date.now() - started) / 1000;
  if (args.update) mergeInto(results);
  fs.mkdirSync(CACHE, { recursive: true });
  const json = JSON.stringify(results, null, 1);
  fs.writeFileSync(path.join(CACHE, `results${args.quick ? '-quick' : ''}.json`), json);
  const md = await writeReport(results);
  progress(
    `done in ${results.wallSeconds.toFixed(0)} s: ${path.relative(ROOT, md)} (charts and results.json in ${path.relative(ROOT, path.join(path.dirname(md), 'benchmarks'))}/)`,
  );
}

/** `--update`: these scenarios replace their namesakes in the last full report (docs/benchmarks/results.json), which keeps the rest. */
function mergeInto(results: BenchResults): void {
  const file = path.join(reportDir(results.quick), 'benchmarks', 'results.json');
  const last = JSON.parse(fs.readFileSync(file, 'utf8')) as BenchResults;
  const at = results.generatedAt;
  for (const s of results.scenarios) {
    const i = last.scenarios.findIndex((o) => o.id === s.id);
    if (i >= 0) last.scenarios[i] = s;
    else last.scenarios.push(s);
    last.updated = [...(last.updated ?? []).filter((u) => u.id !== s.id), { id: s.id, at }];
  }
  Object.assign(results, last);
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    console.error(err.stack ?? err);
    process.exit(1);
  },
);
