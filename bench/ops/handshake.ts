// Handshake ops: a server that answers a 1-byte request, and a client that
// times full or resumed handshakes (optionally with TCP Fast Open) to the
// first response byte and reads TCP_INFO for the segments they took.
import type { EventEmitter } from 'node:events';
import * as net from 'node:net';
import type { Readable, Writable } from 'node:stream';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { nowNs } from '../common.js';
import { segments, synData, zmod, type TcpInfoLike } from '../features.js';
import { CERTS, listen } from './common.js';

export type HsKind = 'ktls' | 'tls';
let hsServer: net.Server | tls.Server | ktls.KtlsServer | undefined;

export async function hsServe(a: { kind: HsKind; version: 'TLSv1.2' | 'TLSv1.3'; fastOpen: boolean; coalesce: boolean }): Promise<{ port: number }> {
  const opts: tls.TlsOptions = { key: CERTS.key, cert: CERTS.cert, minVersion: a.version, maxVersion: a.version };
  const respond = (s: Readable & Writable): void => {
    s.on('error', () => undefined);
    s.once('data', () => s.end('r'));
  };
  hsServer =
    a.kind === 'ktls'
      ? ktls.createServer({ ...opts, ...(a.fastOpen ? { fastOpen: 64 } : {}), ktls: { allowTruncation: true, coalesce: a.coalesce } }, respond)
      : tls.createServer(opts, respond);
  (hsServer as EventEmitter).on('tlsClientError', () => undefined);
  return { port: await listen(hsServer) };
}

export function hsStop(): void {
  hsServer?.close();
  hsServer = undefined;
}

interface HsSample {
  ms: number;
  segments: number | null;
  synData: boolean | null;
  resumed: boolean;
}

function tcpInfoOf(s: unknown): TcpInfoLike | undefined {
  try {
    return zmod.tcpInfo ? zmod.tcpInfo(s) : undefined;
  } catch {
    return undefined;
  }
}

/** One handshake: connect, send a 1-byte request, time to the first response byte. */
async function hsOnce(a: {
  kind: HsKind;
  port: number;
  version: 'TLSv1.2' | 'TLSv1.3';
  fastOpen: boolean;
  coalesce: boolean;
  session?: Buffer;
  prime?: boolean;
}): Promise<HsSample & { session?: Buffer }> {
  const base: tls.ConnectionOptions = {
    port: a.port,
    host: '127.0.0.1',
    ca: CERTS.ca,
    servername: 'localhost',
    minVersion: a.version,
    maxVersion: a.version,
    ...(a.session ? { session: a.session } : {}),
  };
  const t0 = nowNs();
  if (a.kind === 'ktls') {
    const s = await ktls.connectAsync({
      ...base,
      ...(a.fastOpen ? { fastOpen: true } : {}),
      ktls: { allowTruncation: true, coalesce: a.coalesce, ...(a.prime && a.version === 'TLSv1.3' ? { waitForTicket: 2000 } : {}) },
    });
    s.on('error', () => undefined);
    // TCP_INFO is read in the 'data' handler: the server's end() follows its byte, and the socket closes soon after.
    let info: TcpInfoLike | undefined;
    let t1 = 0n;
    const first = new Promise<void>((r) => s.once('data', () => ((t1 = nowNs()), (info = tcpInfoOf(s)), r())));
    s.write('q');
    await first;
    const ms = Number(t1 - t0) / 1e6;
    const out = { ms, segments: segments(info), synData: synData(info), resumed: s.isSessionReused(), session: s.getSession() };
    s.destroy();
    return out;
  }
  const raw = net.connect(a.port, '127.0.0.1');
  let session: Buffer | undefined;
  const t = tls.connect({ ...base, socket: raw });
  t.on('session', (sess: Buffer) => (session = sess));
  t.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => t.once('secureConnect', resolve).once('error', reject));
  let info: TcpInfoLike | undefined;
  let t1 = 0n;
  const first = new Promise<void>((r) => t.once('data', () => ((t1 = nowNs()), (info = tcpInfoOf(raw)), r())));
  t.write('q');
  await first;
  const ms = Number(t1 - t0) / 1e6;
  const out = { ms, segments: segments(info), synData: synData(info), resumed: t.isSessionReused(), session: session ?? t.getSession() };
  t.destroy();
  return out;
}

/** `n` timed handshakes after one untimed priming connection. */
export async function hsClient(a: {
  kind: HsKind;
  port: number;
  version: 'TLSv1.2' | 'TLSv1.3';
  fastOpen: boolean;
  coalesce: boolean;
  resumed: boolean;
  n: number;
}): Promise<HsSample[]> {
  let session: Buffer | undefined;
  // An untimed first connection: primes the session (resumed runs) and the TFO cookie.
  const prime = await hsOnce({ ...a, prime: true });
  if (a.resumed) session = prime.session;
  const samples: HsSample[] = [];
  for (let i = 0; i < a.n; i++) {
    const r = await hsOnce({ ...a, ...(session ? { session } : {}) });
    samples.push({ ms: r.ms, segments: r.segments, synData: r.synData, resumed: r.resumed });
  }
  return samples;
}
