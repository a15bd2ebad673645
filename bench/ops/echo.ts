// Echo ops: an echo server of each kind, and clients that run
// request/response traffic over many connections (small messages) or send a
// bulk stream and read it back (splice-echo against an echo in JS).
import * as net from 'node:net';
import type { Readable, Writable } from 'node:stream';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { cpuNow, cpuSince, nowNs, percentile, type Cpu } from '../common.js';
import { plainKtlsSocket, zmod } from '../features.js';
import { CERTS, connectNet, connectTls, countTo, listen, secrets, tlsServerOptions, type WireKeys } from './common.js';

export type EchoKind = 'ktls' | 'tls' | 'net' | 'addon' | 'splice-echo' | 'js-echo';
interface EchoServer {
  close(): void;
  sockets: Set<{ destroy(): void }>;
  cpu0?: Cpu;
}
const echoServers = new Map<number, EchoServer>();

/** Starts an echo server; its CPU counts from `echoMark` to `echoStop`. */
export async function echoServe(a: { id: number; kind: EchoKind; keys?: WireKeys }): Promise<{ port: number }> {
  const sockets = new Set<{ destroy(): void }>();
  const track = (s: Readable & Writable & { destroy(): void }): void => {
    sockets.add(s);
    s.on('error', () => undefined).once('close', () => sockets.delete(s));
  };
  const echo = (s: Readable & Writable & { destroy(): void }): void => {
    track(s);
    // Both sides without Nagle, as the clients: otherwise delayed ACKs decide the tail latency.
    if ('setNoDelay' in s && typeof s.setNoDelay === 'function') (s as net.Socket).setNoDelay(true);
    s.on('data', (d: Buffer) => s.write(d));
  };
  let server: net.Server | tls.Server | ktls.KtlsServer;
  if (a.kind === 'ktls') {
    server = ktls.createServer({ ...tlsServerOptions(), ktls: { allowTruncation: true } }, echo);
    server.on('tlsClientError', () => undefined);
  } else if (a.kind === 'tls') {
    server = tls.createServer(tlsServerOptions(), echo);
  } else {
    server = net.createServer({ pauseOnConnect: a.kind === 'addon' }, (raw) => {
      const go = async (): Promise<void> => {
        if (a.kind === 'net') return echo(raw);
        if (a.kind === 'addon') return echo(await plainKtlsSocket(raw));
        const k = await ktls.upgrade(raw, secrets(a.keys!, 'b'), { allowTruncation: true });
        if (a.kind === 'js-echo') return echo(k);
        track(k);
        zmod.spliceEcho!(k).catch(() => undefined);
      };
      go().catch(() => raw.destroy());
    });
  }
  const port = await listen(server);
  echoServers.set(a.id, { close: () => server.close(), sockets });
  return { port };
}

export function echoMark(a: { id: number }): void {
  echoServers.get(a.id)!.cpu0 = cpuNow();
}

export function echoStop(a: { id: number }): { cpu: Cpu } {
  const s = echoServers.get(a.id)!;
  echoServers.delete(a.id);
  const cpu = cpuSince(s.cpu0 ?? cpuNow());
  s.close();
  for (const k of s.sockets) k.destroy();
  return { cpu };
}

type Duplexish = Readable & Writable & { destroy(): void };
let clients: Duplexish[] = [];

async function openClient(kind: EchoKind, port: number, keys?: WireKeys): Promise<Duplexish> {
  if (kind === 'ktls')
    return ktls.connectAsync({
      port,
      host: '127.0.0.1',
      ca: CERTS.ca,
      servername: 'localhost',
      minVersion: 'TLSv1.3',
      ciphers: 'TLS_AES_128_GCM_SHA256',
      ktls: { allowTruncation: true },
    });
  if (kind === 'tls') return connectTls(port);
  const raw = await connectNet(port);
  if (kind === 'net') return raw;
  if (kind === 'addon') return plainKtlsSocket(raw);
  return ktls.upgrade(raw, secrets(keys!, 'a'), { allowTruncation: true });
}

/** Opens the connections `echoRun` uses (handshakes are not timed). */
export async function echoConnect(a: { kind: EchoKind; port: number; conns: number; keys?: WireKeys }): Promise<void> {
  clients = [];
  for (let i = 0; i < a.conns; i++) {
    const c = await openClient(a.kind, a.port, a.keys);
    c.on('error', () => undefined);
    if ('setNoDelay' in c && typeof c.setNoDelay === 'function') (c as net.Socket).setNoDelay(true);
    clients.push(c);
  }
}

/** Every connection sends `size` bytes and waits for them to come back, for `ms` milliseconds. */
export async function echoRun(a: { size: number; ms: number }): Promise<{ requests: number; seconds: number; p50: number; p99: number; cpu: Cpu }> {
  const msg = Buffer.alloc(a.size, 0x61);
  const lat: number[] = [];
  const cpu0 = cpuNow();
  const t0 = nowNs();
  const end = t0 + BigInt(a.ms) * 1_000_000n;
  await Promise.all(
    clients.map(
      (c) =>
        new Promise<void>((resolve, reject) => {
          let got = 0;
          let sentAt = 0n;
          const fire = (): void => {
            sentAt = nowNs();
            c.write(msg);
          };
          const onData = (d: Buffer): void => {
            got += d.length;
            while (got >= a.size) {
              got -= a.size;
              const now = nowNs();
              lat.push(Number(now - sentAt) / 1e6);
              if (now >= end) {
                c.off('data', onData);
                resolve();
                return;
              }
              fire();
            }
          };
          c.on('data', onData);
          c.once('close', () => reject(new Error('echo connection closed')));
          fire();
        }),
    ),
  );
  const seconds = Number(nowNs() - t0) / 1e9;
  const cpu = cpuSince(cpu0);
  for (const c of clients) c.destroy();
  clients = [];
  return { requests: lat.length, seconds, p50: percentile(lat, 50), p99: percentile(lat, 99), cpu };
}

/** Bulk echo: sends `total` bytes and reads them back; for splice-echo vs JS echo. */
export async function bulkEcho(a: { kind: EchoKind; port: number; total: number; keys?: WireKeys }): Promise<{ seconds: number; cpu: Cpu }> {
  const c = await openClient(a.kind, a.port, a.keys);
  c.on('error', () => undefined);
  const chunk = Buffer.alloc(256 * 1024, 0x62);
  const cpu0 = cpuNow();
  const t0 = nowNs();
  const back = countTo(c, a.total);
  for (let sent = 0; sent < a.total; sent += chunk.length) {
    if (!c.write(sent + chunk.length > a.total ? chunk.subarray(0, a.total - sent) : chunk)) await new Promise((r) => c.once('drain', r));
  }
  const t1 = await back;
  return { seconds: Number(t1 - t0) / 1e9, cpu: cpuSince(cpu0) };
}
