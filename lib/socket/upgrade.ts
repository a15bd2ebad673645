/**
 * `upgrade()`: take a connected `net.Socket` and the keys of its TLS session,
 * install them in the kernel, and return a {@link KtlsSocket} that owns the fd.
 * On failure the `net.Socket` is left as it was, bytes it had buffered included.
 * @packageDocumentation
 */
import * as net from 'node:net';
import * as os from 'node:os';
import { requireBinding, type Binding } from '../native/binding.js';
import { countConnection, kindOf } from './counters.js';
import { versionNumber, cipherSpec } from '../native/constants.js';
import {
  KtlsAlertError,
  KtlsError,
  KtlsRekeyError,
  KtlsSystemError,
  KtlsUnavailableError,
  errnoName,
  invalidArgType,
  invalidArgValue,
} from '../native/errors.js';
import { RecordOpener, RecordSealer, checkRecordSize, type OpenedRecord } from '../record/layer.js';
import { normalizeSecrets, seqBytes, wipeDirection, type NormalizedDirection, type NormalizedSecrets, type TlsSecrets } from '../record/secrets.js';
import type { EarlyRecord, RecordPaths } from './paths.js';
import type { KtlsSocketOptions } from './options.js';
import { KtlsSocket } from './socket.js';
import { hashOf, hashSize, nextTrafficSecret, tls13Keys } from '../record/derive.js';
import { trailingKeyUpdate } from '../record/post-handshake.js';
import { holdReads, type uvHandle } from '../native/net-handle.js';
import { checkTcp, validateSocket } from './validate.js';
import { checkPeerLimits } from './peer-limits.js';
import { completeRecord } from './record-boundary.js';
import { DEFECT_HINT, describeDefect, kernelDefect, type ConfirmedDefect } from '../native/defects.js';
import { unpooled } from '../record/unpooled.js';

const E = os.constants.errno;

/** Options of {@link upgrade}. */
export interface UpgradeOptions extends KtlsSocketOptions {
  /**
   * What to do where the kernel lacks kTLS or the cipher: `'error'` (default)
   * rejects with `ERR_KTLS_UNAVAILABLE`; `'userspace'` seals and opens records
   * with `node:crypto` behind the same API (`socket.kernel === false`).
   */
  fallback?: 'error' | 'userspace';
  /**
   * `false` never installs keys in the kernel: records are sealed and opened in
   * userspace even where kTLS works (for comparisons and debugging). Default true.
   */
  kernel?: boolean;
  /**
   * TLS 1.3 only: the current application traffic secrets (client/server
   * `*_TRAFFIC_SECRET_N`, hash-length Buffers), so the socket can follow and
   * initiate KeyUpdates. They are copied and kept in private fields until the socket closes.
   */
  trafficSecrets?: {
    /** Our current application traffic secret (32 or 48 bytes: the suite's hash size). */
    tx?: Buffer;
    /** The peer's current application traffic secret. */
    rx?: Buffer;
  };
  /**
   * Milliseconds to wait for the rest of a record the peer has started (the
   * kernel's RX keys go in on a record boundary). Default 120 000, node:tls's
   * handshake timeout; past it `upgrade()` rejects with `ERR_TLS_HANDSHAKE_TIMEOUT`.
   */
  handshakeTimeout?: number;
  /**
   * Under kernel TX, turn Nagle's algorithm off (`TCP_NODELAY`). Default true:
   * with Nagle on, about 1 in 15 small request/response round trips over kTLS
   * waited ~45 ms for the peer's delayed ACK (UML 7.2; none with userspace
   * records or node:tls). `false` leaves the socket's setting as it is, as does
   * a socket that ends up on userspace records.
   */
  noDelay?: boolean;
}

function install(b: Binding, fd: number, dir: 'TLS_TX' | 'TLS_RX', s: NormalizedSecrets, d: NormalizedDirection): number {
  const k = b.constants;
  // setKeys wipes the key and nonce buffers it is given, so give it copies.
  return b.setKeys(fd, k[dir], versionNumber(s.version), cipherSpec(s.cipher).id, unpooled(d.key), unpooled(d.iv), seqBytes(d.seq));
}

/**
 * The handle's poll callback: to the switch while it waits for a record's
 * rest, then to the socket. Made out here so that it closes over these two
 * only: the native handle keeps it for the connection's whole life, and a
 * closure made inside upgrade would keep all of upgrade's state with it (the
 * net.Socket, the bytes it had buffered, the handshake's records).
 */
function pollRouter(waiters: { wake?: (s: number) => void }, holder: { value?: KtlsSocket }): (status: number, events: number) => void {
  const poll = KtlsSocket.pollCallback(holder);
  return (status, events) => (waiters.wake ? waiters.wake(status) : poll(status, events));
}

/** True for the errnos that mean "this kernel cannot do that cipher/version in kTLS". */
function unsupported(rc: number): boolean {
  return rc === -E.ENOENT || rc === -E.EINVAL || rc === -E.ENOPROTOOPT || rc === -E.EOPNOTSUPP;
}

/**
 * Hands a connected TCP socket and its TLS session keys to the kernel.
 *
 * @param socket - a connected `net.Socket` (TCP, IPv4 or IPv6). On success it is
 *   detached (destroyed without closing the connection) and the returned socket owns the fd.
 * @param secrets - the session's version, cipher, and per-direction key/iv/seq.
 * @param options - see {@link UpgradeOptions}.
 * @throws `KtlsUnavailableError` (`ERR_KTLS_UNAVAILABLE`) where the kernel lacks kTLS and
 *   no fallback is allowed; `TypeError`/`RangeError` for bad arguments; `KtlsSystemError`
 *   (with `errno`, `syscall`) for syscall failures. On any failure the `net.Socket` is left as it was.
 */
export async function upgrade(socket: net.Socket, secrets: TlsSecrets, options: UpgradeOptions = {}): Promise<KtlsSocket> {
  return upgradeWith(socket, secrets, options, {});
}

/**
 * What a handshake layer hands over with the socket: wire bytes to open before
 * anything the socket still buffers, and how much of their application data
 * the user already read through node:tls.
 * @internal
 */
export interface Handover {
  /** Received records already opened (by the hand-over), delivered before anything else. */
  early?: OpenedRecord[];
  /** Wire bytes to open before anything the socket still buffers. */
  prefix?: Buffer;
  /** Application bytes at the front of `early` that the user already read through node:tls. */
  skip?: number;
  /** Absolute time (ms) by which the switch must be done; default `options.handshakeTimeout` from now. */
  deadline?: number;
  /** Our side of the handshake. */
  role?: 'client' | 'server';
  /** The socket `connect()` returned, which takes the connection (else a new one is made). */
  into?: KtlsSocket;
}

/** `upgrade()` with hand-over state. @internal */
export async function upgradeWith(socket: net.Socket, secrets: TlsSecrets, options: UpgradeOptions, handover: Handover): Promise<KtlsSocket> {
  const b = requireBinding();
  const { handle: uv } = validateSocket(socket);
  const s = normalizeSecrets(secrets);
  const fallback = options.fallback ?? 'error';
  if (fallback !== 'error' && fallback !== 'userspace')
    throw invalidArgType(`Expected options.fallback to be 'error' or 'userspace' but received ${String(fallback)}`);
  if (options.maxRecordSize !== undefined) checkRecordSize(options.maxRecordSize, 'options.maxRecordSize');
  checkPeerLimits(options.peerLimits);
  if (options.keyUsageLimits !== undefined && typeof options.keyUsageLimits !== 'boolean')
    throw invalidArgType(`Expected a boolean for options.keyUsageLimits but received ${typeof options.keyUsageLimits}`);
  if (options.rxExpectNoPad !== undefined && typeof options.rxExpectNoPad !== 'boolean')
    throw invalidArgType(`Expected a boolean for options.rxExpectNoPad but received ${typeof options.rxExpectNoPad}`);
  if (options.noDelay !== undefined && typeof options.noDelay !== 'boolean')
    throw invalidArgType(`Expected a boolean for options.noDelay but received ${typeof options.noDelay}`);
  const hto = options.handshakeTimeout;
  if (hto !== undefined && (typeof hto !== 'number' || !(hto >= 0) || !Number.isFinite(hto)))
    throw invalidArgValue(`Expected a non-negative number of milliseconds for options.handshakeTimeout but received ${String(hto)}`);
  for (const dir of ['tx', 'rx'] as const) {
    const v: unknown = options.trafficSecrets?.[dir];
    if (v === undefined) continue;
    if (s.version !== 'TLSv1.3') throw invalidArgValue('options.trafficSecrets is for TLS 1.3 (KeyUpdate) only');
    const size = hashSize(hashOf(s.cipher));
    if (!Buffer.isBuffer(v) || v.length !== size)
      throw invalidArgValue(
        `Expected a ${size}-byte Buffer for options.trafficSecrets.${dir} but received ${Buffer.isBuffer(v) ? `${v.length} bytes` : typeof v}`,
      );
  }
  try {
    // A hand-over delivers what node:tls had received even from a peer that has reset since (as node:tls does).
    checkTcp(b, uv.fd, handover.role === undefined);
    // Let anything node:net still has queued reach the kernel before records start.
    if (socket.writableLength > 0) await new Promise<void>((resolve) => socket.write(Buffer.alloc(0), () => resolve()));
    // A suite this kernel installs but is known to carry wrongly stays in userspace.
    const defect = options.kernel === false ? null : await kernelDefect('records', s.version, s.cipher);
    if (socket.destroyed) throw new KtlsError('ERR_SOCKET_CLOSED', 'the socket was destroyed during upgrade');
    // TLS_RX_EXPECT_NO_PAD where asked for and the kernel reads padded records right with it on (one check per process: any cipher).
    const noPad =
      options.kernel !== false &&
      s.version === 'TLSv1.3' &&
      options.rxExpectNoPad !== false &&
      (await kernelDefect('rx-no-pad', 'TLSv1.3', 'aes-128-gcm')) === null;
    return await takeOver(b, socket, uv, s, options.kernel === false ? 'never' : fallback, { ...options, rxExpectNoPad: noPad }, handover, defect);
  } finally {
    wipeDirection(s.tx);
    wipeDirection(s.rx);
  }
}

async function takeOver(
  b: Binding,
  socket: net.Socket,
  uv: NonNullable<ReturnType<typeof uvHandle>>,
  s: NormalizedSecrets,
  fallback: 'error' | 'userspace' | 'never',
  options: UpgradeOptions,
  handover: Handover,
  defect: ConfirmedDefect | null,
): Promise<KtlsSocket> {
  // Addresses first: some kernels (5.10.46; fixed by 5.10.223 and 6.1) give an IPv6 socket IPv4's proto_ops at TLS_RX, and getpeername() turns to 0.0.0.0.
  const remote = { address: socket.remoteAddress, port: socket.remotePort, family: socket.remoteFamily };
  const local = { address: socket.localAddress, port: socket.localPort };
  const q = holdReads(socket, uv);
  const buffered = handover.prefix && handover.prefix.length > 0 ? Buffer.concat([handover.prefix, q.buffered]) : q.buffered;
  const restore = (back: Buffer): void => q.release(back);
  const raw: Buffer[] = [buffered];
  const fd = b.adopt(uv.fd);
  if (fd < 0) {
    restore(buffered);
    throw new KtlsSystemError(fd, 'fcntl(F_DUPFD_CLOEXEC)');
  }
  const holder: { value?: KtlsSocket } = {};
  const waiters: { wake?: (s: number) => void } = {};
  const out = new Int32Array(1);
  const handle = new b.Handle(fd, pollRouter(waiters, holder), out);
  let tx: RecordPaths['tx'] = null;
  let rx: RecordPaths['rx'] = null;
  let txStart: RecordPaths['txStart'];
  const early: EarlyRecord[] = [...(handover.early ?? [])];
  const giveBack = (err: unknown): never => {
    handle.close(); // our duplicate only; libuv's fd keeps the connection
    restore(Buffer.concat(raw));
    throw err;
  };

  // Why records are not (wholly) the kernel's, when they are not.
  let fallbackReason: string | undefined;
  if (defect) {
    if (fallback === 'error')
      giveBack(new KtlsUnavailableError(`this kernel cannot carry ${s.version} ${s.cipher}: ${describeDefect(defect)}`, { hint: DEFECT_HINT }));
    fallbackReason = describeDefect(defect);
  }
  let ulp = fallback === 'never' || defect ? -E.ENOENT : b.setUlp(fd);
  if (ulp === -E.EEXIST && b.getUlp(fd) === 'tls') ulp = 0; // ULP attached earlier (e.g. a failed attempt)
  let kernelOk = ulp === 0;
  if (fallback === 'never') fallbackReason = 'options.kernel is false';
  else if (!kernelOk && !defect) fallbackReason = `this kernel has no TLS upper-layer protocol (setsockopt(TCP_ULP, "tls"): ${errnoName(ulp)})`;
  // ENOTCONN: the kernel attaches TLS only to ESTABLISHED sockets, and the peer has already sent its FIN.
  const peerClosed = ulp === -E.ENOTCONN;
  if (peerClosed && fallback === 'error')
    giveBack(
      new KtlsSystemError(ulp, 'setsockopt(TCP_ULP)', 'the peer already closed its side (CLOSE_WAIT); the kernel installs TLS only on established connections'),
    );
  if (!kernelOk && !peerClosed && !(ulp === -E.ENOENT || unsupported(ulp))) giveBack(new KtlsSystemError(ulp, 'setsockopt(TCP_ULP)'));
  if (!kernelOk && fallback === 'error') {
    giveBack(
      new KtlsUnavailableError(`this kernel has no TLS upper-layer protocol (setsockopt(TCP_ULP, "tls"): ${ulp === -E.ENOENT ? 'ENOENT' : ulp})`, {
        errno: ulp,
        syscall: 'setsockopt(TCP_ULP)',
      }),
    );
  }

  // TX first: nothing has been read yet, so a failure here can still give everything back.
  if (s.tx && kernelOk) {
    const rc = install(b, fd, 'TLS_TX', s, s.tx);
    if (rc === 0) {
      tx = 'kernel';
      if (options.noDelay !== false) {
        const nd = b.setsockoptInt(fd, b.constants.SOL_TCP, b.constants.TCP_NODELAY, 1);
        if (nd < 0) {
          // TX keys are in the kernel: the connection cannot go back to plain TCP.
          handle.close();
          socket.destroy();
          throw new KtlsSystemError(nd, 'setsockopt(TCP_NODELAY)');
        }
      }
      const entered = b.tcpEntered(fd);
      if (entered >= 0) txStart = { entered, seq: s.tx.seq };
    } else if (!unsupported(rc)) giveBack(new KtlsSystemError(rc, 'setsockopt(TLS_TX)'));
    else if (fallback === 'error')
      giveBack(new KtlsUnavailableError(`this kernel cannot install ${s.version} ${s.cipher} keys`, { errno: rc, syscall: 'setsockopt(TLS_TX)' }));
    else {
      kernelOk = false;
      fallbackReason = `this kernel cannot install ${s.version} ${s.cipher} keys (setsockopt(TLS_TX): ${errnoName(rc)})`;
    }
  }
  if (s.tx && tx === null) tx = new RecordSealer(s.version, s.cipher, { key: s.tx.key, iv: s.tx.iv, seq: s.tx.seq });

  let rxSecret: Buffer | undefined = s.version === 'TLSv1.3' && options.trafficSecrets?.rx ? unpooled(options.trafficSecrets.rx) : undefined;
  if (s.rx) {
    const opener = new RecordOpener(s.version, s.cipher, { key: s.rx.key, iv: s.rx.iv, seq: s.rx.seq });
    let rxKeys: { key: Buffer; iv: Buffer } = { key: unpooled(s.rx.key), iv: unpooled(s.rx.iv) };
    opener.push(buffered);
    // Opens the complete records held (following a KeyUpdate among them); throws at the first bad one, or a bad header.
    const openComplete = (): void => {
      for (let rec = opener.next(); rec !== null; rec = opener.next()) {
        const update = s.version === 'TLSv1.3' && rec.type === b.constants.RECORD_HANDSHAKE ? trailingKeyUpdate(rec.data) : null;
        if (update === null) {
          early.push(rec);
          continue;
        }
        // The peer moved to its next keys before the switch: follow here, so the kernel
        // gets the keys in force (a first install, which every kernel takes).
        if (!rxSecret)
          throw new KtlsRekeyError(
            'ERR_KTLS_REKEY_NO_SECRET',
            'the peer updated its keys (TLS 1.3 KeyUpdate) but the rx traffic secret is unknown (upgrade() was given keys, not options.trafficSecrets)',
          );
        const next = nextTrafficSecret(hashOf(s.cipher), rxSecret);
        rxSecret.fill(0);
        rxSecret = next;
        rxKeys.key.fill(0);
        rxKeys = tls13Keys(s.cipher, hashOf(s.cipher), next);
        opener.rekey({ ...rxKeys, seq: 0n });
        early.push({ ...rec, keyUpdateFollowed: true });
      }
    };
    try {
      if (kernelOk)
        await completeRecord(b, handle, opener, raw, waiters, handover.deadline ?? Date.now() + (options.handshakeTimeout ?? 120_000), openComplete);
      openComplete();
    } catch (err) {
      opener.wipe();
      if (tx === 'kernel') {
        // Keys are in the kernel already; the connection cannot go back to plain TCP. A record
        // that failed gets its alert (kernel TX seals it), then the close.
        if (err instanceof KtlsAlertError && err.local) err.alertSent = handle.send([Buffer.from([2, err.alertCode])], b.constants.RECORD_ALERT) === 2;
        handle.close();
        socket.destroy();
        throw err;
      }
      giveBack(err);
    }
    if (kernelOk) {
      const rc = install(b, fd, 'TLS_RX', s, { ...rxKeys, seq: opener.seq });
      rxKeys.key.fill(0);
      if (rc === 0) {
        rx = 'kernel';
        opener.wipe();
        // An optimisation the kernel may lack (before 6.0: ENOPROTOOPT) or refuse; socket.offload says whether it is on.
        if (s.version === 'TLSv1.3' && options.rxExpectNoPad !== false) b.setsockoptInt(fd, b.constants.SOL_TLS, b.constants.TLS_RX_EXPECT_NO_PAD, 1);
      } else if (tx === 'kernel' && !(fallback === 'userspace' && unsupported(rc))) {
        handle.close();
        socket.destroy();
        throw unsupported(rc)
          ? new KtlsUnavailableError(`this kernel installed ${s.version} ${s.cipher} keys for sending but not for receiving`, {
              errno: rc,
              syscall: 'setsockopt(TLS_RX)',
            })
          : new KtlsSystemError(rc, 'setsockopt(TLS_RX)');
      } else if (!unsupported(rc)) {
        giveBack(new KtlsSystemError(rc, 'setsockopt(TLS_RX)'));
      } else if (fallback === 'error') {
        giveBack(new KtlsUnavailableError(`this kernel cannot install ${s.version} ${s.cipher} keys`, { errno: rc, syscall: 'setsockopt(TLS_RX)' }));
      } else {
        fallbackReason = `this kernel cannot install ${s.version} ${s.cipher} keys (setsockopt(TLS_RX): ${errnoName(rc)})`;
      }
    }
    if (rx === null) rx = opener;
  }

  // Plaintext node:tls already gave the user is not delivered again.
  let skip = handover.skip ?? 0;
  for (let i = 0; skip > 0 && i < early.length; i++) {
    const rec = early[i];
    if (rec.type !== b.constants.RECORD_APPLICATION_DATA) continue;
    const n = Math.min(skip, rec.data.length);
    early[i] = { type: rec.type, data: rec.data.subarray(n) };
    skip -= n;
  }
  // Without rx keys reads are raw bytes, so what node:net had buffered comes first as-is.
  if (!s.rx && buffered.length > 0) early.push({ type: b.constants.RECORD_APPLICATION_DATA, data: buffered });

  const paths: RecordPaths = {
    binding: b,
    handle,
    out,
    version: s.version,
    cipher: s.cipher,
    tx,
    rx,
    early,
    ...(txStart ? { txStart } : {}),
    ...(handover.role ? { role: handover.role } : {}),
    ...(options.trafficSecrets ? { trafficSecrets: { tx: options.trafficSecrets.tx, rx: rxSecret } } : {}),
    ...(fallbackReason !== undefined ? { fallbackReason } : {}),
    ...(options.keyUsageLimits === false ? { keyUsageLimits: false } : {}),
    remote,
    local,
  };
  // The net.Socket lets go of its own fd; ours keeps the connection open.
  socket.destroy();
  // A socket destroyed while connecting gets a new one here, which its caller destroys.
  const ktls = handover.into && !handover.into.destroyed ? handover.into.attach(paths) : new KtlsSocket(paths, options);
  holder.value = ktls;
  // One sock_diag request per connection (next to its handshake, little): the counters say software or NIC.
  countConnection(ktls, kindOf(ktls.offload), fallbackReason);
  if (options.maxRecordSize !== undefined) {
    try {
      ktls.setMaxRecordSize(options.maxRecordSize);
    } catch (err) {
      // The connection is already ours (keys installed): it cannot be handed back.
      ktls.destroy();
      throw err;
    }
  }
  return ktls;
}
