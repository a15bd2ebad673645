/**
 * Shared shapes of the verify suite: checks, their context, and their results.
 * @packageDocumentation
 */
import type { Capabilities } from '../native/probe.js';
import type { CipherName, TlsVersion } from '../native/constants.js';
import { KtlsError } from '../native/errors.js';

/** The suite's groups, in the order `--all` runs them. */
export const GROUPS = ['transmission', 'handling', 'sendpage', 'splice-read'] as const;
/** One group of checks. */
export type GroupName = (typeof GROUPS)[number];

/** How a check ended. `unsupported` never counts as passed. */
export type CheckStatus = 'pass' | 'fail' | 'unsupported';

/** A value a check saw the kernel produce (an errno name, a byte count, a record type...). */
export type Observed = string | number | boolean | null;

/** What one check did in one version × cipher cell. */
export interface CheckResult {
  /** Group of the check. */
  group: GroupName;
  /** Short stable id, e.g. `record-16k+1`. */
  id: string;
  /** What the check verifies, in words. */
  title: string;
  /** TLS version of the cell. */
  version: TlsVersion;
  /** Cipher of the cell. */
  cipher: CipherName;
  /** Outcome. */
  status: CheckStatus;
  /** Why it failed, or why the kernel cannot do it. */
  reason?: string;
  /** Error code (`code`) of the failure, when an error caused it. */
  code?: string;
  /** Values observed from the kernel, e.g. `{ secondRecv: 'EBADMSG' }`; these differ between kernels. */
  observed: Record<string, Observed>;
  /** Wall time of the check in milliseconds. */
  ms: number;
}

/**
 * Thrown by a check when this kernel lacks what it needs. Only checks that
 * declare {@link Check.needs} may end this way; anywhere else it is a failure.
 */
export class NotSupportedError extends KtlsError {
  constructor(reason: string) {
    super('ERR_KTLS_VERIFY_UNSUPPORTED', reason);
  }
}

/** Thrown by a check's assertions. */
export class CheckFailedError extends KtlsError {
  constructor(message: string) {
    super('ERR_KTLS_VERIFY_FAILED', message);
  }
}

/** What a check gets: its cell, the kernel's capabilities, assertions, and cleanup. */
export interface CheckContext {
  /** TLS version of the cell. */
  readonly version: TlsVersion;
  /** Cipher of the cell. */
  readonly cipher: CipherName;
  /** What `ktls.probe()` found on this kernel. */
  readonly caps: Capabilities;
  /** Aborted when the check times out; long loops should stop on it. */
  readonly signal: AbortSignal;
  /** Records a value observed from the kernel (reported in the JSON). */
  observe(key: string, value: Observed): void;
  /** Registers something to destroy/close when the check ends, pass or fail. */
  defer(cleanup: () => void): void;
  /** Fails the check unless `cond` holds. */
  ok(cond: unknown, message: string): void;
  /** Fails the check unless `actual === expected` (bigints and strings included). */
  equal<T>(actual: T, expected: T, message: string): void;
  /** Fails unless the buffers hold the same bytes; reports the first difference. */
  bytes(actual: Buffer, expected: Buffer, message: string): void;
  /** Fails the check. */
  fail(message: string): never;
  /** Ends the check as "not supported by this kernel". */
  unsupported(reason: string): never;
}

/** One check of the suite. */
export interface Check {
  /** Short stable id, unique within the group. */
  id: string;
  /** What it verifies. */
  title: string;
  /**
   * The kernel feature the check depends on beyond basic kTLS (e.g. `TLS 1.3
   * rekey`). Only such checks may report "not supported by this kernel".
   */
  needs?: string;
  /** Restricts the check to one version (e.g. KeyUpdate exists only in TLS 1.3). */
  versions?: readonly TlsVersion[];
  /** Per-check time limit in ms (default 30 s). */
  timeoutMs?: number;
  /** Runs the check; throws to fail it. */
  run(ctx: CheckContext): Promise<void>;
}

/** A group: its checks, in order. */
export interface CheckGroup {
  /** Group name. */
  name: GroupName;
  /** What the group covers. */
  description: string;
  /** Its checks. */
  checks: readonly Check[];
}
