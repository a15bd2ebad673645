/**
 * Connections whose cipher suite neither kTLS nor the userspace record layer
 * can carry (TLS 1.2 CBC suites such as AES128-SHA, which node:tls offers by
 * default) stay on node:tls: it goes on sealing and opening their records,
 * and a socketpair joins it to a KtlsSocket, so a server serves every client
 * node:tls serves, behind the same API (`kernel === false`, `cipher === null`).
 * @packageDocumentation
 */
import * as net from 'node:net';
import type * as tls from 'node:tls';
import { requireBinding, type NativeHandle } from '../native/binding.js';
import { KtlsSystemError } from '../native/errors.js';
import type { TlsInfo } from '../socket/base.js';
import { handleFd } from '../native/net-handle.js';
import type { RecordPaths } from '../socket/paths.js';
import type { KtlsSocketOptions } from '../socket/options.js';
import { KtlsSocket } from '../socket/socket.js';
import { isTcpFd } from '../socket/validate.js';

/**
 * A KtlsSocket over `t`, which keeps the connection (`raw`, under its wire
 * tap) and its record protection. Destroying either side destroys the other.
 * @internal
 */
export function bridgeToNodeTls(t: tls.TLSSocket, raw: net.Socket, info: TlsInfo, options: KtlsSocketOptions, reason: string, into?: KtlsSocket): KtlsSocket {
  const b = requireBinding();
  const pair = b.socketPair();
  if (typeof pair === 'number') throw new KtlsSystemError(pair, 'socketpair');
  const [ours, theirs] = pair;
  const holder: { value?: KtlsSocket } = {};
  const out = new Int32Array(1);
  let handle: NativeHandle;
  let bridge: net.Socket;
  try {
    handle = new b.Handle(ours, KtlsSocket.pollCallback(holder), out);
  } catch (err) {
    b.closeFd(ours);
    b.closeFd(theirs);
    throw err;
  }
  try {
    bridge = new net.Socket({ fd: theirs, readable: true, writable: true, allowHalfOpen: true });
  } catch (err) {
    handle.close();
    b.closeFd(theirs);
    throw err;
  }
  const protocol = t.getProtocol() ?? 'unknown';
  const paths: RecordPaths = {
    binding: b,
    handle,
    out,
    // Unused for records (node:tls carries them); the socket reports `nodeTls.protocol` and a null cipher.
    version: protocol === 'TLSv1.3' ? 'TLSv1.3' : 'TLSv1.2',
    cipher: 'aes-128-gcm',
    tx: 'plain',
    rx: null,
    early: [],
    remote: { address: raw.remoteAddress, port: raw.remotePort, family: raw.remoteFamily },
    local: { address: raw.localAddress, port: raw.localPort },
    // No TCP under a Unix-domain socket or a stream: the TCP options are then no-ops, as net.Socket's are over a pipe.
    tcpFd: isTcpFd(b, handleFd(raw)) ? handleFd(raw) : -1,
    nodeTls: { protocol },
    // Why node:tls keeps the records (the KTLS_NODE_TLS warning's words): socket.offload.reason.
    fallbackReason: reason,
  };
  // A socket destroyed while connecting gets a new one here, which its caller destroys.
  const sock = into && !into.destroyed ? into.attach(paths) : new KtlsSocket(paths, options);
  holder.value = sock;
  sock.attachTlsInfo(info);
  t.pipe(bridge);
  bridge.pipe(t);
  // An alert or reset on the TLS side is the socket's error; its own side reports its own.
  t.on('error', (err: Error) => sock.destroy(err));
  bridge.on('error', () => t.destroy());
  t.on('session', (s: Buffer) => sock.emit('session', s));
  // A clean close lets what is still in the socketpair reach node:tls (the bridge then sees EOF and ends it); an error ends all at once.
  sock.once('close', () => {
    if (!sock.errored) return;
    t.destroy();
    bridge.destroy();
  });
  t.once('close', () => bridge.end());
  return sock;
}
