/**
 * Typed access to the native addon. The addon only exists on Linux; elsewhere
 * {@link loadBinding} returns the load error and every kTLS call rejects with
 * `ERR_KTLS_UNAVAILABLE` instead of crashing at import.
 * @packageDocumentation
 */
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { KtlsUnavailableError, registerErrnoName } from './errors.js';

/** Sizes of one cipher's kernel crypto_info fields, as `<linux/tls.h>` defines them. */
export interface NativeCipher {
  readonly id: number;
  readonly keySize: number;
  readonly saltSize: number;
  readonly ivSize: number;
  readonly tagSize: number;
  readonly recSeqSize: number;
}

/** Numeric constants exported by the addon (socket options, versions, record types). */
export interface NativeConstants {
  readonly SOL_TLS: number;
  readonly TCP_ULP: number;
  readonly TLS_TX: number;
  readonly TLS_RX: number;
  readonly TLS_TX_ZEROCOPY_RO: number;
  readonly TLS_CONF_BASE: number;
  readonly TLS_CONF_SW: number;
  readonly TLS_CONF_HW: number;
  readonly TLS_CONF_HW_RECORD: number;
  readonly TLS_RX_EXPECT_NO_PAD: number;
  readonly TLS_TX_MAX_PAYLOAD_LEN: number;
  readonly TLS_SET_RECORD_TYPE: number;
  readonly TLS_GET_RECORD_TYPE: number;
  readonly TLS_1_2_VERSION: number;
  readonly TLS_1_3_VERSION: number;
  readonly RECORD_CHANGE_CIPHER_SPEC: number;
  readonly RECORD_ALERT: number;
  readonly RECORD_HANDSHAKE: number;
  readonly RECORD_APPLICATION_DATA: number;
  readonly MAX_PLAINTEXT: number;
  /** Buffers one sendmsg takes (IOV_MAX). */
  readonly MAX_IOV: number;
  readonly NONCE_SIZE: number;
  readonly SOL_SOCKET: number;
  readonly SO_TYPE: number;
  readonly SO_ERROR: number;
  readonly SO_DOMAIN: number;
  readonly SO_PROTOCOL: number;
  readonly SOCK_STREAM: number;
  readonly IPPROTO_TCP: number;
  readonly SOL_TCP: number;
  readonly TCP_NODELAY: number;
  readonly AF_INET: number;
  readonly AF_INET6: number;
  readonly SHUT_WR: number;
  readonly SHUT_RDWR: number;
  readonly SPLICE_F_MOVE: number;
  readonly O_NONBLOCK: number;
  readonly SPLICE_F_NONBLOCK: number;
  readonly SPLICE_F_MORE: number;
  readonly TCP_CORK: number;
  readonly SO_KEEPALIVE: number;
  readonly SO_SNDBUF: number;
  readonly TCP_KEEPIDLE: number;
  readonly TCP_INFO: number;
  readonly TCP_FASTOPEN: number;
  readonly TCP_FASTOPEN_CONNECT: number;
  readonly TCPI_OPT_SYN_DATA: number;
  readonly EINPROGRESS: number;
  readonly SO_REUSEPORT: number;
  readonly EKEYEXPIRED: number;
}

/** `getsockopt(TCP_INFO)` fields the addon reads; counters a kernel does not fill are -1. */
export interface NativeTcpInfo {
  /** `tcpi_state` (1: ESTABLISHED). */
  readonly state: number;
  /** `tcpi_options`: `TCPI_OPT_*` bits (`TCPI_OPT_SYN_DATA` for Fast Open). */
  readonly options: number;
  /** Smoothed round-trip time, µs. */
  readonly rtt: number;
  /** Sender maximum segment size, bytes. */
  readonly sndMss: number;
  /** Congestion window, segments. */
  readonly sndCwnd: number;
  /** Segments retransmitted over the connection's life. */
  readonly totalRetrans: number;
  /** Bytes the peer acknowledged. */
  readonly bytesAcked: number;
  /** Bytes received. */
  readonly bytesReceived: number;
  /** Segments sent, pure ACKs included. */
  readonly segsOut: number;
  /** Segments received. */
  readonly segsIn: number;
  /** Segments received that carried data. */
  readonly dataSegsIn: number;
  /** Segments sent that carried data. */
  readonly dataSegsOut: number;
  /** Bytes sent, retransmissions included. */
  readonly bytesSent: number;
}

/** The native socket handle: owns one fd; every method is one syscall returning bytes or -errno. */
export interface NativeHandle {
  readonly fd: number;
  poll(events: number): number;
  recv(buf: Buffer, offset: number, length: number): number;
  send(buffers: Buffer[], recordType: number): number;
  shutdown(how: number): number;
  close(): number;
  ref(): void;
  unref(): void;
}

/** The addon's exports. */
export interface Binding {
  readonly constants: NativeConstants;
  readonly ciphers: Readonly<Record<string, NativeCipher>>;
  readonly Handle: new (fd: number, onPoll: (status: number, events: number) => void, out: Int32Array) => NativeHandle;
  setUlp(fd: number): number;
  getUlp(fd: number): string | number;
  setKeys(fd: number, direction: number, version: number, cipher: number, key: Buffer, nonce: Buffer, seq: Buffer): number;
  getSeq(fd: number, direction: number): bigint | number;
  adopt(fd: number, nonBlocking?: number): number;
  setRecordSize(fd: number, size: number): number;
  getRecordSize(fd: number): number;
  sendfile(outFd: number, inFd: number, offset: number, count: number): number;
  splice(inFd: number, outFd: number, count: number, flags: number): number;
  pipe(nonBlocking: number, size: number): [number, number] | number;
  socketPair(): [number, number] | number;
  ready(fd: number, events: number): number;
  fdKind(fd: number): number;
  /** fcntl(fd, F_GETFL) → the file status flags | -errno. */
  fdFlags(fd: number): number;
  /** open(path, O_RDONLY | O_CLOEXEC) → fd | -errno. */
  openFile(path: string): number;
  /** fstat(fd) into `out` (see {@link STAT}) → 0 | -errno. */
  statFd(fd: number, out: Float64Array): number;
  /** stat(path) into `out` (see {@link STAT}) → 0 | -errno. */
  statPath(path: string, out: Float64Array): number;
  readFd(fd: number, buf: Buffer, offset: number, length: number): number;
  writeFd(fd: number, buf: Buffer, offset: number, length: number): number;
  tcpInfo(fd: number): NativeTcpInfo | number;
  /** sock_diag's answer for one TCP socket: its ULP's name and the TLS ULP's `TLS_INFO` (0/false where the kernel did not say), or -errno. */
  tlsDiag(fd: number): NativeTlsDiag | number;
  fastOpenSocket(family: number): number;
  connectFd(fd: number, address: string, port: number): number;
  /** socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP) → fd | -errno. */
  tcpSocket(family: number): number;
  /** bind(fd, numeric address, port) → 0 | -errno. */
  bindFd(fd: number, address: string, port: number): number;
  closeFd(fd: number): number;
  getsockoptInt(fd: number, level: number, name: number): number;
  setsockoptInt(fd: number, level: number, name: number, value: number): number;
  peerConnected(fd: number): number;
  /** setsockopt(SO_LINGER, { l_onoff: onoff, l_linger: seconds }) → 0 | -errno. `(fd, 1, 0)`: close() resets the connection. */
  setLinger(fd: number, onoff: number, seconds: number): number;
  tcpEntered(fd: number): number;
}

/** Indexes of the fields `statFd`/`statPath` write into their Float64Array (length {@link STAT.LENGTH}). */
/** What `tlsDiag()` read (sock_diag `INET_DIAG_ULP_INFO`). */
export interface NativeTlsDiag {
  ulp: string;
  version: number;
  cipher: number;
  txConf: number;
  rxConf: number;
  zeroCopyTx: boolean;
  rxNoPad: boolean;
}

export const STAT = { KIND: 0, SIZE: 1, DEV: 2, INO: 3, MTIME_S: 4, MTIME_NS: 5, CTIME_S: 6, CTIME_NS: 7, LENGTH: 8 } as const;
/** `STAT.KIND` of a regular file (as `fdKind`). */
export const KIND_FILE = 3;

/** Poll event bits understood by {@link NativeHandle.poll}. */
export const POLL_READABLE = 1;
/** Poll event bit: wait until the socket is writable. */
export const POLL_WRITABLE = 2;

let cached: { binding: Binding | null; error: Error | null } | undefined;

/** Loads the addon once (prebuild or source build, through node-gyp-build). */
export function loadBinding(): { binding: Binding | null; error: Error | null } {
  if (cached) return cached;
  try {
    if (process.platform !== 'linux') throw new Error(`kernel TLS needs Linux; this is ${process.platform}`);
    const require = createRequire(__filename);
    const load = require('node-gyp-build') as (dir: string) => Binding;
    // dist/lib/native/binding.js -> package root
    const binding = load(path.resolve(__dirname, '..', '..', '..'));
    registerErrnoName('EKEYEXPIRED', binding.constants.EKEYEXPIRED);
    cached = { binding, error: null };
  } catch (err) {
    cached = { binding: null, error: err as Error };
  }
  return cached;
}

/** The addon, or `ERR_KTLS_UNAVAILABLE` saying why it did not load (not Linux, no build, no prebuild). */
export function requireBinding(): Binding {
  const { binding, error } = loadBinding();
  if (!binding) throw new KtlsUnavailableError(`the ktls native addon is not available (${error?.message ?? 'unknown error'})`, { cause: error });
  return binding;
}
