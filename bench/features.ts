// What the library offers right now. Contenders that need an API that has not
// landed report "not available" with the reason instead of failing the run.
import * as net from 'node:net';
import * as ktls from '../lib/index.js';
import { requireBinding } from '../lib/native/binding.js';
import { holdReads, uvHandle } from '../lib/native/net-handle.js';
import type { RecordPaths } from '../lib/socket/paths.js';
import { KtlsSocket } from '../lib/socket/socket.js';

/** The zero-copy part of KtlsSocket, typed locally with optional members: a contender whose method is missing reports "not available". */
export interface ZeroCopySocket {
  sendFile?(file: string | number, options?: { offset?: number; length?: number }): Promise<number>;
  spliceTo?(fd: number, options?: { length?: number }): Promise<number>;
  spliceFrom?(fd: number, options?: { length?: number }): Promise<number>;
  getTcpInfo?(): TcpInfoLike;
}

/** The TCP_INFO fields the bench reads (KtlsSocket#getTcpInfo names; tolerant of the kernel spelling too). */
export interface TcpInfoLike {
  segsOut?: number;
  segsIn?: number;
  segs_out?: number;
  segs_in?: number;
  options?: number;
  synData?: boolean | number;
  [k: string]: unknown;
}

interface ZeroCopyModule {
  spliceEcho?: (socket: KtlsSocket) => Promise<number>;
  tcpInfo?: (socket: unknown) => TcpInfoLike;
  pipe?: () => [number, number];
}

export const zc = (s: KtlsSocket): ZeroCopySocket => s as unknown as ZeroCopySocket;
export const zmod = ktls as unknown as ZeroCopyModule;

const proto = KtlsSocket.prototype as unknown as ZeroCopySocket;

/** Reason a feature is missing, or null when present. */
export const FEATURES = {
  sendFile: (): string | null => (typeof proto.sendFile === 'function' ? null : 'KtlsSocket#sendFile has not landed yet'),
  spliceTo: (): string | null => (typeof proto.spliceTo === 'function' ? null : 'KtlsSocket#spliceTo has not landed yet'),
  spliceEcho: (): string | null => (typeof zmod.spliceEcho === 'function' ? null : 'ktls.spliceEcho has not landed yet'),
  tcpInfo: (): string | null => (typeof zmod.tcpInfo === 'function' ? null : 'ktls.tcpInfo (TCP_INFO) has not landed yet'),
  // connect({ fastOpen }) lands with the zero-copy/TCP API; its presence is judged by tcpInfo, and each
  // connection's TCP_INFO then says whether SYN data was really sent.
  fastOpen: (): string | null =>
    typeof zmod.tcpInfo === 'function' && typeof proto.getTcpInfo === 'function' ? null : 'connect({ fastOpen }) has not landed yet',
  // ktls: { coalesce } (default true) gathers each handshake flight into one write.
  coalesce: (): string | null => null,
};

/** Total segments (in + out) from a TCP_INFO object. */
export function segments(info: TcpInfoLike | undefined): number | null {
  if (!info) return null;
  const out = info.segsOut ?? info.segs_out;
  const inn = info.segsIn ?? info.segs_in;
  return typeof out === 'number' && typeof inn === 'number' ? out + inn : null;
}

/** Whether a connection's SYN carried data (TCPI_OPT_SYN_DATA = 32). */
export function synData(info: TcpInfoLike | undefined): boolean | null {
  if (!info) return null;
  if (typeof info.synData === 'boolean') return info.synData;
  if (typeof info.synData === 'number') return info.synData !== 0;
  if (typeof info.options === 'number') return (info.options & 32) !== 0;
  return null;
}

let plainMode: 'upgrade' | 'internal' | undefined;

/** How the bench got a key-less (plain TCP) KtlsSocket: through upgrade(), or by building one from lib internals. */
export function plainSocketMode(): string {
  return plainMode === 'upgrade'
    ? 'upgrade(socket, { version, cipher }) without keys'
    : 'built from lib internals (upgrade() refuses secrets with neither tx nor rx)';
}

/**
 * A KtlsSocket on a plain TCP connection (no ULP, no keys): the addon's own
 * recvmsg/sendmsg/sendfile machinery with nothing else. Uses the public
 * `upgrade()` once it accepts secrets without tx/rx and then can write; until
 * then it assembles the socket from lib/ internals the way upgrade() does.
 */
export async function plainKtlsSocket(sock: net.Socket): Promise<KtlsSocket> {
  if (plainMode !== 'internal') {
    try {
      const s = await ktls.upgrade(sock, { version: 'TLSv1.3', cipher: 'aes-128-gcm' }, { allowTruncation: true });
      const dirs = s.kernelDirections;
      // A keyless socket that refuses writes (current lib) is no use for the bench.
      if (!dirs.tx && !dirs.rx && (await canWrite(s))) {
        plainMode = 'upgrade';
        return s;
      }
      throw new Error('keyless upgrade() cannot write');
    } catch (err) {
      if (sock.destroyed) throw err;
      plainMode = 'internal';
    }
  }
  const b = requireBinding();
  const uv = uvHandle(sock);
  if (!uv) throw new Error('the socket has no handle');
  const { buffered } = holdReads(sock, uv);
  const early: RecordPaths['early'] = buffered.length > 0 ? [{ type: b.constants.RECORD_APPLICATION_DATA, data: buffered }] : [];
  const fd = b.adopt(uv.fd);
  if (fd < 0) throw new Error(`adopt failed: ${fd}`);
  const holder: { value?: KtlsSocket } = {};
  const out = new Int32Array(1);
  const handle = new b.Handle(fd, KtlsSocket.pollCallback(holder), out);
  // 'kernel' both ways on a socket without the ULP: sendmsg/recvmsg/sendfile go straight to TCP,
  // and no record-type cmsg is ever set for application data. Never end() such a socket (that
  // would send a close_notify as two plaintext bytes): the bench destroys it.
  const paths: RecordPaths = {
    binding: b,
    handle,
    out,
    version: 'TLSv1.3',
    cipher: 'aes-128-gcm',
    tx: 'kernel',
    rx: 'kernel',
    plainTcp: true,
    early,
    remote: { address: sock.remoteAddress, port: sock.remotePort, family: sock.remoteFamily },
    local: { address: sock.localAddress, port: sock.localPort },
  };
  sock.destroy();
  const s = new KtlsSocket(paths, { allowTruncation: true });
  holder.value = s;
  return s;
}

function canWrite(s: KtlsSocket): Promise<boolean> {
  return new Promise((resolve) => s.write(Buffer.alloc(0), (err) => resolve(!err)));
}
