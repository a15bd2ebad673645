/**
 * The TCP Fast Open client connection of `connect({ fastOpen: true })`: the
 * name resolved as `net.connect()` does (`lookup`, `family`, `hints`), each
 * answer tried in turn on a `TCP_FASTOPEN_CONNECT` socket (bound to
 * `localAddress`/`localPort` where asked) until one connects.
 * @packageDocumentation
 */
import * as dns from 'node:dns';
import * as net from 'node:net';
import { loadBinding, type Binding } from '../native/binding.js';
import { KtlsError, KtlsSystemError } from '../native/errors.js';

/** Where and how to connect: the `net.connect()` options the Fast Open path honours. */
export interface FastOpenTarget {
  host: string;
  port: number;
  family?: number;
  hints?: number;
  lookup?: net.LookupFunction;
  localAddress?: string;
  localPort?: number;
  /** `false`: only the first answer, as `net.connect()`. */
  autoSelectFamily?: boolean;
  /** Milliseconds an attempt may take before the next answer is tried (not the last one's). */
  autoSelectFamilyAttemptTimeout?: number;
}

/** One answer of a lookup. */
export interface Address {
  address: string;
  family: 4 | 6;
}

/**
 * Every address `host` resolves to, as `net.connect()` orders them with
 * `autoSelectFamily`: duplicates dropped, the two families alternating,
 * starting with the family of the first answer.
 */
export function resolveAll(target: FastOpenTarget): Promise<Address[]> {
  const literal = net.isIP(target.host);
  if (literal) return Promise.resolve([{ address: target.host, family: literal === 6 ? 6 : 4 }]);
  const lookup = target.lookup ?? dns.lookup;
  const options: dns.LookupAllOptions = { all: true, family: target.family ?? 0, ...(target.hints !== undefined ? { hints: target.hints } : {}) };
  return new Promise((resolve, reject) => {
    lookup(target.host, options, (err, answer, family) => {
      if (err) return reject(err);
      const list = Array.isArray(answer) ? answer : [{ address: answer, family: family ?? net.isIP(answer) }];
      const groups: [Address[], Address[]] = [[], []];
      let first: number | undefined;
      for (const { address, family: f } of list) {
        if (!net.isIP(address) || (f !== 4 && f !== 6)) continue;
        first ??= f;
        const g = groups[f === first ? 0 : 1];
        if (!g.some((a) => a.address === address)) g.push({ address, family: f });
      }
      const out: Address[] = [];
      for (let i = 0; i < Math.max(groups[0].length, groups[1].length); i++) out.push(...[groups[0][i], groups[1][i]].filter((a) => a !== undefined));
      if (out.length === 0) {
        const bad = list[0]?.address ?? '';
        return reject(Object.assign(new TypeError(`Invalid IP address: ${String(bad)}`), { code: 'ERR_INVALID_IP_ADDRESS' }));
      }
      resolve(target.autoSelectFamily === false ? out.slice(0, 1) : out);
    });
  });
}

/** Connects one Fast Open socket to `a`; rejects (with the socket destroyed) on its error, `stop`, or after `timeout` ms. */
function attempt(b: Binding, fd: number, a: Address, target: FastOpenTarget, stop: AbortSignal, timeout: number | undefined): Promise<net.Socket> {
  // node:net binds localAddress and connects this fd (a connect that, with a
  // cookie, defers the SYN to the first write: the ClientHello). Half-open: a
  // peer's early FIN must not make node:net end the socket we are about to take.
  let sock: net.Socket;
  try {
    sock = new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
  } catch (err) {
    b.closeFd(fd);
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
  return new Promise<net.Socket>((resolve, reject) => {
    const timer =
      timeout === undefined ? undefined : setTimeout(() => done(new KtlsError('ERR_SOCKET_CONNECTION_TIMEOUT', 'connection attempt timed out')), timeout);
    const onStop = (): void => done(stop.reason instanceof Error ? stop.reason : new KtlsError('ABORT_ERR', 'aborted'));
    const done = (err?: Error): void => {
      clearTimeout(timer);
      stop.removeEventListener('abort', onStop);
      sock.off('connect', ok).off('error', done);
      if (!err) return resolve(sock);
      sock.destroy();
      reject(err);
    };
    const ok = (): void => done();
    sock.once('connect', ok).once('error', done);
    stop.addEventListener('abort', onStop, { once: true });
    const { localAddress, localPort } = target;
    sock.connect({ host: a.address, port: target.port, family: a.family, ...(localAddress ? { localAddress } : {}), ...(localPort ? { localPort } : {}) });
  });
}

/**
 * Connects with `TCP_FASTOPEN_CONNECT`, trying every answer of the lookup in
 * turn as `net.connect()` does; undefined when this kernel or platform has no
 * Fast Open client (the caller then connects the ordinary way). Fails with the
 * one attempt's error, or an `AggregateError` of all of them (`code`: the first's).
 *
 * With a cookie the kernel reports the connection at once and sends the SYN
 * with the first write, so an address that then fails, fails the handshake,
 * not this: only refusals and errors before that move on to the next answer.
 */
export async function fastOpenConnect(target: FastOpenTarget, stop: AbortSignal): Promise<net.Socket | undefined> {
  const b = loadBinding().binding;
  if (!b) return undefined;
  const addresses = await resolveAll(target);
  const errors: Error[] = [];
  for (const [i, a] of addresses.entries()) {
    if (stop.aborted) break;
    const fd = b.fastOpenSocket(a.family === 6 ? b.constants.AF_INET6 : b.constants.AF_INET);
    if (fd < 0) {
      // No Fast Open client here (ENOPROTOOPT before Linux 4.11, or not Linux): the ordinary path.
      if (i === 0) return undefined;
      errors.push(new KtlsSystemError(fd, 'socket'));
      continue;
    }
    const last = i === addresses.length - 1;
    try {
      return await attempt(
        b,
        fd,
        a,
        target,
        stop,
        last ? undefined : Math.max(10, target.autoSelectFamilyAttemptTimeout ?? net.getDefaultAutoSelectFamilyAttemptTimeout()),
      );
    } catch (err) {
      if (stop.aborted) throw err;
      errors.push(err as Error);
    }
  }
  if (stop.aborted) throw stop.reason;
  if (errors.length === 1) throw errors[0];
  const first = errors[0] as (Error & { code?: string }) | undefined;
  throw Object.assign(new AggregateError(errors, `connect failed for every address of ${target.host}`), {
    code: first?.code ?? 'ERR_SOCKET_CONNECTION_TIMEOUT',
  });
}
