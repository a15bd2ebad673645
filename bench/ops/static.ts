// Static file serving ops: an HTTP(S) file server of each kind (ktls
// createHttpsServer + serveFile, node:https with a read stream or readFile, and
// their plain-HTTP counterparts), and a keep-alive client that requests a fixed
// mix of files over many connections and times each request.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as path from 'node:path';
import * as ktls from '../../lib/index.js';
import { cpuNow, cpuSince, nowNs, percentile, type Cpu } from '../common.js';
import { CERTS, listen } from './common.js';

export type StaticKind = 'ktls-serve' | 'https-stream' | 'https-readfile' | 'http-serve' | 'http-stream' | 'http-readfile' | 'adopt-serve';

interface StaticServer {
  close(): void;
  sockets: Set<{ destroy(): void }>;
  cpu0?: Cpu;
  errors: number;
}
const servers = new Map<number, StaticServer>();

/** Starts a file server of `kind` on `dir`; its CPU counts from `staticMark` to `staticStop`. */
export async function staticServe(a: { id: number; kind: StaticKind; dir: string }): Promise<{ port: number }> {
  const state: StaticServer = { close: () => undefined, sockets: new Set(), errors: 0 };
  const fail = (res: http.ServerResponse): void => {
    state.errors++;
    if (!res.headersSent) res.writeHead(500).end();
    else res.destroy();
  };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const name = path.basename(req.url ?? '/');
    const file = path.join(a.dir, name);
    if (a.kind === 'ktls-serve' || a.kind === 'http-serve' || a.kind === 'adopt-serve') {
      ktls.serveFile(res, name, { root: a.dir }).catch(() => fail(res));
    } else if (a.kind === 'https-stream' || a.kind === 'http-stream') {
      fs.stat(file, (err, st) => {
        if (err) return fail(res);
        res.writeHead(200, { 'Content-Length': st.size, 'Content-Type': 'application/octet-stream' });
        fs.createReadStream(file)
          .on('error', () => fail(res))
          .pipe(res);
      });
    } else {
      fs.promises.readFile(file).then(
        (body) => res.writeHead(200, { 'Content-Length': body.length, 'Content-Type': 'application/octet-stream' }).end(body),
        () => fail(res),
      );
    }
  };
  const tlsOpts = { key: CERTS.key, cert: CERTS.cert, minVersion: 'TLSv1.3' as const };
  const server =
    a.kind === 'ktls-serve'
      ? ktls.createHttpsServer({ ...tlsOpts, ktls: { fallback: 'error' } }, handler)
      : a.kind.startsWith('https')
        ? https.createServer(tlsOpts, handler)
        : http.createServer(handler);
  const connEvent = a.kind === 'ktls-serve' ? 'secureConnection' : a.kind.startsWith('https') ? 'secureConnection' : 'connection';
  (server as unknown as http.Server).on(connEvent, (s: { destroy(): void; once(e: 'close', f: () => void): void }) => {
    state.sockets.add(s);
    s.once('close', () => state.sockets.delete(s));
  });
  (server as unknown as http.Server).keepAliveTimeout = 60_000;
  // adopt-serve: a net.Server hands each connection, taken over by ktls.adopt(), to the http.Server.
  const front =
    a.kind === 'adopt-serve'
      ? net.createServer({ noDelay: true }, (sock) => {
          ktls.adopt(sock).then(
            (k) => (server as http.Server).emit('connection', k),
            () => (state.errors++, sock.destroy()),
          );
        })
      : null;
  const port = await listen(front ?? server);
  state.close = () => (front ?? (server as unknown as http.Server)).close();
  servers.set(a.id, state);
  return { port };
}

export function staticMark(a: { id: number }): void {
  servers.get(a.id)!.cpu0 = cpuNow();
}

export function staticStop(a: { id: number }): { cpu: Cpu; errors: number } {
  const s = servers.get(a.id)!;
  servers.delete(a.id);
  const cpu = cpuSince(s.cpu0 ?? cpuNow());
  s.close();
  for (const k of s.sockets) k.destroy();
  return { cpu, errors: s.errors };
}

/**
 * `conns` keep-alive connections, each requesting `paths` in turn (each
 * connection starting at its own offset) for `ms`; resolves with the count,
 * bytes and latency percentiles. Connections and handshakes are made before timing.
 */
export async function staticRun(a: {
  port: number;
  tls: boolean;
  conns: number;
  ms: number;
  paths: string[];
}): Promise<{ requests: number; bytes: number; seconds: number; p50: number; p99: number; errors: number }> {
  const mod = a.tls ? https : http;
  const agent = new mod.Agent({ keepAlive: true, maxSockets: a.conns });
  const opts = (p: string): https.RequestOptions => ({
    host: '127.0.0.1',
    port: a.port,
    path: `/${p}`,
    agent,
    ...(a.tls ? { ca: CERTS.ca, servername: 'localhost' } : {}),
  });
  const once = (p: string): Promise<number> =>
    new Promise((resolve, reject) => {
      mod
        .get(opts(p), (res) => {
          let n = 0;
          res.on('data', (c: Buffer) => (n += c.length));
          res.on('end', () => (res.statusCode === 200 ? resolve(n) : reject(new Error(`status ${res.statusCode}`))));
          res.on('error', reject);
        })
        .on('error', reject);
    });
  // Warm-up: every connection opened (and its handshake done) before the clock starts.
  await Promise.all(Array.from({ length: a.conns }, (_, i) => once(a.paths[i % a.paths.length])));
  const lat: number[] = [];
  let requests = 0;
  let bytes = 0;
  let errors = 0;
  const t0 = nowNs();
  const end = Date.now() + a.ms;
  await Promise.all(
    Array.from({ length: a.conns }, async (_, c) => {
      for (let i = c; Date.now() < end; i++) {
        const s = nowNs();
        try {
          const n = await once(a.paths[i % a.paths.length]); // awaited first: `bytes += await` would add to a stale total
          bytes += n;
          requests++;
          lat.push(Number(nowNs() - s) / 1e6);
        } catch {
          errors++;
        }
      }
    }),
  );
  const seconds = Number(nowNs() - t0) / 1e9;
  agent.destroy();
  return { requests, bytes, seconds, p50: percentile(lat, 50), p99: percentile(lat, 99), errors };
}
