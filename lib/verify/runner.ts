/**
 * Runs the verify suite: every selected group × version × cipher, each check a
 * real exchange over loopback, and returns a {@link VerifyReport}. The CLI
 * (`ktls-verify`) and the test suite both call {@link runVerify}.
 * @packageDocumentation
 */
import * as os from 'node:os';
import { CIPHER_NAMES, VERSIONS, type CipherName, type TlsVersion } from '../native/constants.js';
import { probe, type Capabilities } from '../native/probe.js';
import { handling } from './checks/handling.js';
import { sendpage } from './checks/sendpage.js';
import { spliceRead } from './checks/splice-read.js';
import { transmission } from './checks/transmission.js';
import {
  CheckFailedError,
  GROUPS,
  NotSupportedError,
  type Check,
  type CheckContext,
  type CheckGroup,
  type CheckResult,
  type CheckStatus,
  type GroupName,
  type Observed,
} from './types.js';

export * from './types.js';

/** Every group of the suite, by name. */
export const SUITE: Readonly<Record<GroupName, CheckGroup>> = { transmission, handling, sendpage, 'splice-read': spliceRead };

/** What to run. Empty or absent lists mean "all". */
export interface VerifyOptions {
  /** Groups to run (default: all). */
  groups?: readonly GroupName[];
  /** TLS versions (default: both). */
  versions?: readonly TlsVersion[];
  /** Ciphers (default: all four). */
  ciphers?: readonly CipherName[];
  /** Only checks whose id is listed (default: all). */
  only?: readonly string[];
  /** Called as the run progresses (for progress output). */
  onEvent?: (event: VerifyEvent) => void;
  /** Capabilities to use instead of probing (tests). */
  caps?: Capabilities;
}

/** Progress events of {@link runVerify}. */
export type VerifyEvent =
  | {
      /** A group × version × cipher cell begins. */
      type: 'cell-start';
      /** Its group. */
      group: GroupName;
      /** Its TLS version. */
      version: TlsVersion;
      /** Its cipher. */
      cipher: CipherName;
      /** How many checks it holds. */
      checks: number;
    }
  | {
      /** A check finished. */
      type: 'check-done';
      /** Its outcome. */
      result: CheckResult;
    }
  | {
      /** A cell finished. */
      type: 'cell-done';
      /** Its summary. */
      cell: CellSummary;
    };

/** Outcome of one group × version × cipher cell. */
export interface CellSummary {
  /** Group. */
  group: GroupName;
  /** TLS version. */
  version: TlsVersion;
  /** Cipher. */
  cipher: CipherName;
  /** `fail` if any check failed; `unsupported` if none could run; else `pass`. */
  status: CheckStatus;
  /** Checks passed. */
  passed: number;
  /** Checks failed. */
  failed: number;
  /** Checks this kernel cannot do. */
  unsupported: number;
}

/** Everything one run found. */
export interface VerifyReport {
  /** `uname -r`. */
  kernel: string;
  /** Label of the kernel set by the harness (`KTLS_KERNEL_LABEL`), when there is one. */
  kernelLabel?: string;
  /** Node.js version. */
  node: string;
  /** Whether kTLS is usable on this kernel at all. */
  available: boolean;
  /** Why it is not, with what to do about it. */
  unavailableReason?: string;
  /** What `ktls.probe()` found. */
  probe: Capabilities;
  /** What was selected. */
  selection: {
    /** Groups that ran. */
    groups: GroupName[];
    /** TLS versions that ran. */
    versions: TlsVersion[];
    /** Ciphers that ran. */
    ciphers: CipherName[];
  };
  /** Per-check results, in run order. */
  results: CheckResult[];
  /** Per-cell summaries (the table). */
  cells: CellSummary[];
  /** Totals over all checks. */
  totals: {
    /** Checks that passed. */
    passed: number;
    /** Checks that failed. */
    failed: number;
    /** Checks this kernel cannot do (never counted as passed). */
    unsupported: number;
  };
  /** Wall time in milliseconds. */
  ms: number;
}

/** The hint given when the kernel has no kTLS. */
export const UNAVAILABLE_HINT =
  "load the kernel module with `modprobe tls` (CONFIG_TLS=m/y), or run the suite under the project's user-mode-linux kernel with `--uml`";

/** Whether the kernel installs `version` × `cipher` both ways, and if not why. */
function cellSupport(caps: Capabilities, version: TlsVersion, cipher: CipherName): string | null {
  const row = caps.ciphers.find((r) => r.version === version && r.cipher === cipher);
  if (!row) return `${version} ${cipher}: the probe did not try it`;
  if (row.tx && row.rx) return row.defect ? `${version} ${cipher}: ${row.defect}` : null;
  return `${version} ${cipher}: setsockopt(${row.tx ? 'TLS_RX' : 'TLS_TX'}) failed with ${row.error ?? 'an error'}: the kernel lacks this cipher/version`;
}

const DEFAULT_TIMEOUT = 30_000;
let current: ((err: unknown) => void) | null = null;
const onUncaught = (err: unknown): void => {
  if (current) current(err);
  else process.stderr.write(`ktls-verify: error outside any check: ${(err as Error)?.stack ?? String(err)}\n`);
};

/** Runs one check in one cell; never throws. */
async function runCheck(group: GroupName, check: Check, version: TlsVersion, cipher: CipherName, caps: Capabilities): Promise<CheckResult> {
  const observed: Record<string, Observed> = {};
  const cleanups: Array<() => void> = [];
  const abort = new AbortController();
  const fail = (message: string): never => {
    throw new CheckFailedError(message);
  };
  const ctx: CheckContext = {
    version,
    cipher,
    caps,
    signal: abort.signal,
    fail,
    observe: (key, value) => void (observed[key] = value),
    defer: (fn) => void cleanups.push(fn),
    ok(cond, message) {
      if (!cond) fail(message);
    },
    equal(actual, expected, message) {
      if (actual !== expected) fail(`${message}: expected ${String(expected)}, got ${String(actual)}`);
    },
    bytes(actual, expected, message) {
      if (actual.equals(expected)) return;
      let i = 0;
      while (i < actual.length && i < expected.length && actual[i] === expected[i]) i++;
      fail(`${message}: ${actual.length} bytes instead of ${expected.length}, first difference at byte ${i}`);
    },
    unsupported(reason) {
      throw new NotSupportedError(reason);
    },
  };
  const t0 = Date.now();
  const timeout = check.timeoutMs ?? DEFAULT_TIMEOUT;
  let timer: NodeJS.Timeout | undefined;
  let status: CheckStatus = 'pass';
  let reason: string | undefined;
  let code: string | undefined;
  try {
    const running = check.run(ctx);
    running.catch(() => undefined); // may reject after a timeout decided the race
    await Promise.race([
      running,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new CheckFailedError(`timed out after ${timeout} ms`)), timeout);
        current = reject;
      }),
    ]);
  } catch (err) {
    const e = err as Error & { code?: unknown };
    if (err instanceof NotSupportedError && check.needs) {
      status = 'unsupported';
      reason = `${check.needs}: ${e.message}`;
    } else {
      status = 'fail';
      reason = err instanceof NotSupportedError ? `reported "not supported" but needs no optional feature: ${e.message}` : (e.message ?? String(err));
      if (typeof e.code === 'string') code = e.code;
    }
  } finally {
    clearTimeout(timer);
    current = null;
    abort.abort();
    for (const fn of cleanups.reverse()) {
      try {
        fn();
      } catch {
        // cleanup is best effort
      }
    }
  }
  const result: CheckResult = { group, id: check.id, title: check.title, version, cipher, status, observed, ms: Date.now() - t0 };
  if (reason !== undefined) result.reason = reason;
  if (code !== undefined) result.code = code;
  return result;
}

function summarize(group: GroupName, version: TlsVersion, cipher: CipherName, results: CheckResult[]): CellSummary {
  const count = (s: CheckStatus): number => results.filter((r) => r.status === s).length;
  const [passed, failed, unsupported] = [count('pass'), count('fail'), count('unsupported')];
  const status: CheckStatus = failed > 0 ? 'fail' : passed === 0 && unsupported > 0 ? 'unsupported' : 'pass';
  return { group, version, cipher, status, passed, failed, unsupported };
}

/** The checks of `group` that apply to `version`, filtered by `only`. */
export function checksFor(group: GroupName, version: TlsVersion, only?: readonly string[]): Check[] {
  return SUITE[group].checks.filter((c) => (!c.versions || c.versions.includes(version)) && (!only || only.length === 0 || only.includes(c.id)));
}

/**
 * Runs the selected checks and returns the report. Never throws for a failing
 * check or a kernel without kTLS (then `available` is false and nothing runs).
 */
export async function runVerify(options: VerifyOptions = {}): Promise<VerifyReport> {
  const t0 = Date.now();
  const groups = options.groups?.length ? [...options.groups] : [...GROUPS];
  const versions = options.versions?.length ? [...options.versions] : [...VERSIONS];
  const ciphers = options.ciphers?.length ? [...options.ciphers] : [...CIPHER_NAMES];
  const caps = options.caps ?? (await probe());
  const report: VerifyReport = {
    kernel: os.release(),
    node: process.version,
    available: caps.ulp,
    probe: caps,
    selection: { groups, versions, ciphers },
    results: [],
    cells: [],
    totals: { passed: 0, failed: 0, unsupported: 0 },
    ms: 0,
  };
  if (process.env.KTLS_KERNEL_LABEL) report.kernelLabel = process.env.KTLS_KERNEL_LABEL;
  if (!caps.ulp) {
    report.unavailableReason = `this kernel (${caps.kernelRelease}) has no kTLS: setsockopt(TCP_ULP, "tls") failed with ${caps.ulpError ?? 'an error'}; ${UNAVAILABLE_HINT}`;
    report.ms = Date.now() - t0;
    return report;
  }
  const emit = options.onEvent ?? ((): void => undefined);
  process.on('uncaughtException', onUncaught);
  try {
    for (const group of groups) {
      for (const version of versions) {
        for (const cipher of ciphers) {
          const checks = checksFor(group, version, options.only);
          if (checks.length === 0) continue;
          emit({ type: 'cell-start', group, version, cipher, checks: checks.length });
          const missing = cellSupport(caps, version, cipher);
          const cell: CheckResult[] = [];
          for (const check of checks) {
            const result: CheckResult = missing
              ? { group, id: check.id, title: check.title, version, cipher, status: 'unsupported', reason: missing, observed: {}, ms: 0 }
              : await runCheck(group, check, version, cipher, caps);
            cell.push(result);
            report.results.push(result);
            emit({ type: 'check-done', result });
          }
          const summary = summarize(group, version, cipher, cell);
          report.cells.push(summary);
          emit({ type: 'cell-done', cell: summary });
        }
      }
    }
  } finally {
    process.off('uncaughtException', onUncaught);
  }
  for (const r of report.results) report.totals[r.status === 'pass' ? 'passed' : r.status === 'fail' ? 'failed' : 'unsupported']++;
  report.ms = Date.now() - t0;
  return report;
}

/** Exit status for a report: 0 all passed (some perhaps not supported), 1 a check failed, 3 no kTLS or nothing supported. */
export function exitCodeOf(report: VerifyReport): 0 | 1 | 3 {
  if (!report.available) return 3;
  if (report.totals.failed > 0) return 1;
  // Every selected check "not supported by this kernel" verified nothing: not a pass.
  return report.totals.passed > 0 ? 0 : 3;
}
