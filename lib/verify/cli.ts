#!/usr/bin/env node
/**
 * `ktls-verify`: runs the verify suite on this kernel (or, with `--uml`, under
 * the project's user-mode-linux kernels) and reports what passed, failed, or
 * is not supported by the kernel. Exit status: 0 all passed, 1 a check failed,
 * 2 usage error, 3 kTLS not available (or no selected check was supported).
 * @packageDocumentation
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { CIPHER_NAMES, VERSIONS, type CipherName, type TlsVersion } from '../native/constants.js';
import { KtlsError } from '../native/errors.js';
import { probe } from '../native/probe.js';
import { stats } from '../tools/stats.js';
import { formatHeader, formatProbe, formatStats, formatSummary, formatTap, progress } from './report.js';
import { exitCodeOf, GROUPS, runVerify, SUITE, UNAVAILABLE_HINT, type GroupName, type VerifyReport } from './runner.js';

/** What the command line asked for. */
export interface CliOptions {
  /** Groups to run (all when none was named). */
  groups: GroupName[];
  /** Versions (all when empty). */
  versions: TlsVersion[];
  /** Ciphers (all when empty). */
  ciphers: CipherName[];
  /** Check ids (all when empty). */
  only: string[];
  /** Output format. */
  format: 'human' | 'json' | 'tap';
  /** `--probe`: print the capability report instead of running checks. */
  probe: boolean;
  /** `--stats`: print `ktls.stats()` (alone, or after the checks a group flag asks for). */
  stats?: boolean;
  /** `--help`. */
  help: boolean;
  /** `--uml[=kernel|all]`: the kernels to run under, or null to run here. */
  uml: string[] | null;
  /** `--json-out=FILE` (used by `--uml`): also write the JSON report to FILE. */
  jsonOut?: string;
}

/** A command-line mistake; exit status 2. */
export class UsageError extends KtlsError {
  constructor(message: string) {
    super('ERR_KTLS_USAGE', message);
  }
}

/** The `--help` text. */
export const USAGE = `usage: ktls-verify [groups] [filters] [output] [--uml[=KERNEL|all]]

Checks that this kernel's TLS offload (kTLS) carries data correctly, through
real exchanges over loopback, every byte compared.

groups (default --all):
  --all             every group
  --transmission    record sizes, small writes/reads, writev, record boundaries,
                    non-blocking sends, cork, wire bytes vs the userspace record layer
  --handling        ULP/key errors, seq exhaustion, control records, forged and
                    malformed records, queued ciphertext, close_notify, rekey
  --sendpage        sendFile (whole, chunks at offsets, interleaved), spliceFrom a pipe
  --splice-read     spliceTo a pipe (whole, parts, after a read), control and empty records
  --probe           print the kernel's kTLS capability report (ktls.probe()) and exit
  --stats           print ktls.stats(): the host's /proc/net/tls_stat and this
                    process's counters (with a group: after its checks, counting
                    their connections); alone, print and exit
filters:
  --version V       TLSv1.2 or TLSv1.3 (also 1.2, 1.3; repeat or comma-separate)
  --cipher C        ${CIPHER_NAMES.join(', ')}
  --check ID        only checks with this id (repeat or comma-separate)
output:
  (default)         progress while it runs, then a summary table
  --json            the full report as JSON (observed kernel values included)
  --tap             TAP 14; checks the kernel cannot do are # SKIP
  --uml[=K]         run inside the project's user-mode-linux kernel K
                    (5.10, 6.1, 6.12, 7.2; pre / rekey: the first of that
                    generation that boots; default auto; 'all' for each,
                    where one this host cannot boot is a failure)
  -h, --help        this text

exit status: 0 all passed (some may be not supported by this kernel), 1 a check
failed, 2 usage error, 3 kTLS not available here or no selected check supported (${UNAVAILABLE_HINT})
`;

function parseVersion(v: string): TlsVersion {
  const m = /^(?:tls\s*v?)?(1\.[23])$/i.exec(v.trim());
  if (!m) throw new UsageError(`unknown TLS version '${v}' (expected ${VERSIONS.join(' or ')})`);
  return `TLSv${m[1]}` as TlsVersion;
}

function parseCipher(c: string): CipherName {
  const name = c.trim().toLowerCase();
  if (!(CIPHER_NAMES as readonly string[]).includes(name)) throw new UsageError(`unknown cipher '${c}' (expected one of ${CIPHER_NAMES.join(', ')})`);
  return name as CipherName;
}

/** Parses the command line; throws {@link UsageError}. */
export function parseArgs(argv: readonly string[]): CliOptions {
  const o: CliOptions = { groups: [], versions: [], ciphers: [], only: [], format: 'human', probe: false, help: false, uml: null };
  const formats = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf('=');
    const [flag, inline] = arg.startsWith('--') && eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new UsageError(`${flag} needs a value`);
      return v;
    };
    const noValue = (): void => {
      if (inline !== undefined) throw new UsageError(`${flag} takes no value`);
    };
    switch (flag) {
      case '--all':
        noValue();
        o.groups.push(...GROUPS);
        break;
      case '--transmission':
      case '--handling':
      case '--sendpage':
      case '--splice-read':
        noValue();
        o.groups.push(flag.slice(2) as GroupName);
        break;
      case '--probe':
        noValue();
        o.probe = true;
        break;
      case '--stats':
        noValue();
        o.stats = true;
        break;
      case '--version':
        o.versions.push(...value().split(',').map(parseVersion));
        break;
      case '--cipher':
        o.ciphers.push(...value().split(',').map(parseCipher));
        break;
      case '--check':
        o.only.push(
          ...value()
            .split(',')
            .map((s) => s.trim()),
        );
        break;
      case '--json':
      case '--tap':
        noValue();
        formats.add(flag.slice(2));
        break;
      case '--uml':
        o.uml = (inline ?? 'auto').split(',').map((s) => s.trim());
        break;
      case '--json-out':
        o.jsonOut = value();
        break;
      case '-h':
      case '--help':
        noValue();
        o.help = true;
        break;
      default:
        throw new UsageError(`unknown option '${arg}'`);
    }
  }
  if (formats.size > 1) throw new UsageError('--json and --tap cannot be combined');
  o.format = formats.has('json') ? 'json' : formats.has('tap') ? 'tap' : 'human';
  o.groups = [...new Set(o.groups)];
  o.versions = [...new Set(o.versions)];
  o.ciphers = [...new Set(o.ciphers)];
  const known = new Set(Object.values(SUITE).flatMap((g) => g.checks.map((c) => c.id)));
  for (const id of o.only) if (!known.has(id)) throw new UsageError(`unknown check '${id}' (known: ${[...known].join(', ')})`);
  return o;
}

/** Output streams of {@link main}. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const defaultIo: CliIo = { stdout: (s) => void process.stdout.write(s), stderr: (s) => void process.stderr.write(s) };

/** The UML harness's exports we use (scripts/uml.mjs). */
interface UmlHarness {
  runInUml(
    command: string[],
    options: { kernel?: string; cwd?: string; env?: Record<string, string>; output?: { write(s: string): unknown } },
  ): Promise<{ status: number; kernelLabel: string; bootFailure?: string }>;
  KERNEL_NAMES?: readonly string[];
  /** Kernel generations by name (`pre`, `rekey`), each a list of kernel names. */
  GENERATIONS?: Readonly<Record<string, readonly string[]>>;
}

const ROOT = path.resolve(__dirname, '..', '..', '..');

async function loadHarness(): Promise<UmlHarness> {
  const file = path.join(ROOT, 'scripts', 'uml.mjs');
  if (!fs.existsSync(file)) throw new Error(`the UML harness ${file} is not here`);
  return (await import(pathToFileURL(file).href)) as UmlHarness;
}

/** One kernel's result under `--uml`. */
export interface UmlKernelResult {
  /** Harness kernel name, e.g. `6.12`. */
  kernel: string;
  /** The harness's label, e.g. `UML 6.12.… (Debian trixie user-mode-linux)`. */
  label?: string;
  /** Exit status of ktls-verify inside the guest. */
  status: number;
  /** The guest's report (JSON/TAP runs). */
  report?: VerifyReport;
  /** Why there is no report. */
  error?: string;
  /** Set when this host cannot boot the kernel at all (no check ran; see scripts/uml.mjs). */
  bootFailure?: string;
}

function forwardArgs(argv: readonly string[]): string[] {
  return argv.filter((a) => !/^--uml(=|$)/.test(a) && a !== '--json' && a !== '--tap' && !a.startsWith('--json-out'));
}

async function runUml(o: CliOptions, argv: readonly string[], io: CliIo): Promise<number> {
  let harness: UmlHarness;
  try {
    harness = await loadHarness();
  } catch (err) {
    io.stderr(`ktls-verify: --uml: ${(err as Error).message}\n`);
    return 3;
  }
  const names = harness.KERNEL_NAMES ?? ['6.1'];
  const kernels = o.uml!.includes('all') ? [...names] : o.uml!;
  const generations = Object.keys(harness.GENERATIONS ?? {});
  for (const k of kernels)
    if (k !== 'auto' && !names.includes(k) && !generations.includes(k))
      throw new UsageError(`unknown UML kernel '${k}' (the harness has ${[...names, ...generations].join(', ')}, 'auto' or 'all')`);
  const results: UmlKernelResult[] = [];
  const args = forwardArgs(argv);
  for (const kernel of kernels) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ktls-verify-'));
    const jsonFile = path.join(tmp, 'report.json');
    const human = o.format === 'human';
    if (human) io.stdout(`=== UML kernel ${kernel} ===\n`);
    let captured = '';
    const output = { write: (s: string): boolean => (human ? io.stdout(s) : (captured += s), true) };
    const command = [process.execPath, path.join(__dirname, 'cli.js'), ...args, ...(human ? [] : ['--json', `--json-out=${jsonFile}`])];
    const r: UmlKernelResult = { kernel, status: 1 };
    try {
      const { status, kernelLabel, bootFailure } = await harness.runInUml(command, { kernel, cwd: ROOT, output });
      r.status = status;
      r.label = kernelLabel;
      if (bootFailure !== undefined) {
        r.bootFailure = bootFailure;
        r.error = `this host cannot boot ${kernelLabel}: ${bootFailure}`;
        io.stderr(`ktls-verify: ${r.error}\n`);
      } else if (!human) {
        if (fs.existsSync(jsonFile)) r.report = JSON.parse(fs.readFileSync(jsonFile, 'utf8')) as VerifyReport;
        else r.error = `no report from the guest (exit ${status}): ${captured.trim().slice(-2000)}`;
      }
    } catch (err) {
      r.status = 3;
      r.error = `the UML harness could not run kernel ${kernel}: ${(err as Error).message}`;
      io.stderr(`ktls-verify: ${r.error}\n`);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    if (human && r.error === undefined && ![0, 1, 3].includes(r.status)) io.stderr(`ktls-verify: the guest ended with status ${r.status}\n`);
    results.push(r);
  }
  // A kernel this host cannot boot fails the run, under `all` too: nothing was verified there.
  const statuses = results.map((r) => (r.bootFailure !== undefined ? 1 : r.report ? exitCodeOf(r.report) : r.status));
  const code = statuses.some((s) => s !== 0 && s !== 3) ? 1 : statuses.includes(3) ? 3 : 0;
  if (o.format === 'json') io.stdout(JSON.stringify({ uml: true, exitCode: code, kernels: results }, null, 2) + '\n');
  else if (o.format === 'tap') {
    io.stdout('TAP version 14\n');
    results.forEach((r, i) => {
      io.stdout(`# Subtest: UML kernel ${r.kernel}\n`);
      io.stdout(r.report ? formatTap(r.report, '    ') : `    1..0 # SKIP ${r.error ?? 'no report'}\n`);
      const bootNote = r.bootFailure !== undefined ? `: this host cannot boot it (${r.bootFailure})` : '';
      io.stdout(`${statuses[i] === 0 ? 'ok' : 'not ok'} ${i + 1} - UML kernel ${r.kernel}${r.label ? ` (${r.label})` : ''}${bootNote}\n`);
    });
    io.stdout(`1..${results.length}\n`);
  } else if (results.length > 1) {
    io.stdout(
      `\nUML kernels: ${results.map((r, i) => `${r.kernel} ${r.bootFailure !== undefined ? 'cannot boot on this host' : statuses[i] === 0 ? 'passed' : statuses[i] === 3 ? 'no kTLS' : 'FAILED'}`).join(', ')}\n`,
    );
  }
  return code;
}

/** Runs the command line and resolves with the exit status. */
export async function main(argv: readonly string[], io: CliIo = defaultIo): Promise<number> {
  let o: CliOptions;
  try {
    o = parseArgs(argv);
    if (o.help) {
      io.stdout(USAGE);
      return 0;
    }
    if (o.uml) return await runUml(o, argv, io);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr(`ktls-verify: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (o.probe) {
    const caps = await probe();
    io.stdout(o.format === 'human' ? formatProbe(caps) : JSON.stringify(caps, null, 2) + '\n');
    if (!caps.ulp) io.stderr(`ktls-verify: kTLS is not available on this kernel; ${UNAVAILABLE_HINT}\n`);
    return caps.ulp ? 0 : 3;
  }
  const human = o.format === 'human';
  if (o.stats && o.groups.length === 0) {
    const s = await stats();
    io.stdout(human ? formatStats(s) : JSON.stringify(s, null, 2) + '\n');
    return 0;
  }
  const caps = await probe();
  if (human && caps.ulp) {
    const label = process.env.KTLS_KERNEL_LABEL;
    io.stdout(formatHeader({ kernel: os.release(), node: process.version, probe: caps, ...(label ? { kernelLabel: label } : {}) }));
  }
  const report = await runVerify({
    groups: o.groups,
    versions: o.versions,
    ciphers: o.ciphers,
    only: o.only,
    caps,
    ...(human ? { onEvent: progress(io.stdout) } : {}),
  });
  if (o.jsonOut) fs.writeFileSync(o.jsonOut, JSON.stringify(report, null, 2) + '\n');
  const after = o.stats ? await stats() : undefined;
  if (o.format === 'json') io.stdout(JSON.stringify(after ? { ...report, stats: after } : report, null, 2) + '\n');
  else if (o.format === 'tap') io.stdout(formatTap(report) + (after ? formatStats(after).replace(/^/gm, '# ') + '\n' : ''));
  else if (report.available) io.stdout(formatSummary(report) + (after ? `\n${formatStats(after)}` : ''));
  if (!report.available) io.stderr(`ktls-verify: ${report.unavailableReason ?? 'kTLS is not available'}\n`);
  return exitCodeOf(report);
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.stdout.write('', () => process.exit(code)),
    (err: unknown) => {
      process.stderr.write(`ktls-verify: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
