// HTTP/2 ops: an h2 server of each kind (ktls.createSecureHttp2Server, whose
// sessions run on KtlsSockets, and node:http2's createSecureServer) answering
// every request with a small JSON body or a file (stream.respondWithFile), and
// an http2.connect client that keeps several streams in flight on each of a few
// sessions and times each request.
import * as http2 from 'node:http2';
import * as ktls from '../../lib/index.js';
import { cpuNow, cpuSince, nowNs, percentile, type Cpu } from '../common.js';
import { CERTS, listen, tlsServerOptions } from './common.js';

export type H2Kind = 'ktls' | 'node';
/** What every response carries: ~100 bytes of JSON, or the file at `file`. */
export type H2Body = { json: true } | { file: string };

/** The JSON body (~100 bytes), the same for every request. */
const JSON_BODY = Buffer.from(JSON.stringify({ id: 12345, name: 'ktls', ok: true, tags: ['kernel', 'tls', 'h2'], at: '2025-01-01T00:00:00.000Z' }));

interface H2Server {
  close(): void;
  sessions: Set<http2.ServerHttp2Session>;
  cpu0?: Cpu;
  errors: number;
}
const servers = new Map<number, H2Server>();

/** Starts an h2 server of `kind`; its CPU counts from `h2Mark` to `h2Stop`. */
export async function h2Serve(a: { id: number; kind: H2Kind; body: H2Body }): Promise<{ port: number }> {
  const state: H2Server = { close: () => undefined, sessions: new Set(), errors: 0 };
  const fail = (res: http2.Http2ServerResponse): void => {
    state.errors++;
    if (!res.headersSent) res.writeHead(500).end();
    else res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  };
  // The same compat-API handler on both servers: only the connection underneath differs.
  const handler = (_req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void => {
    if ('json' in a.body) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': JSON_BODY.length }).end(JSON_BODY);
      return;
    }
    res.stream.respondWithFile(a.body.file, { 'content-type': 'application/octet-stream' }, { onError: () => fail(res) });
  };
  const opts = { ...tlsServerOptions(), allowHTTP1: false };
  const server = a.kind === 'ktls' ? ktls.createSecureHttp2Server({ ...opts, ktls: { fallback: 'error' } }, handler) : http2.createSecureServer(opts, handler);
  const on = server.on.bind(server) as (ev: string, f: (...args: never[]) => void) => unknown;
  on('session', (s: http2.ServerHttp2Session) => {
    state.sessions.add(s);
    s.once('close', () => state.sessions.delete(s));
  });
  on('sessionError', () => state.errors++);
  const port = await listen(server);
  state.close = () => (server as unknown as { close(): void }).close();
  servers.set(a.id, state);
  return { port };
}

export function h2Mark(a: { id: number }): void {
  servers.get(a.id)!.cpu0 = cpuNow();
}

export function h2Stop(a: { id: number }): { cpu: Cpu; errors: number } {
  const s = servers.get(a.id)!;
  servers.delete(a.id);
  const cpu = cpuSince(s.cpu0 ?? cpuNow());
  s.close();
  for (const session of s.sessions) session.destroy();
  return { cpu, errors: s.errors };
}

/** The client's flow-control windows: a stream's (SETTINGS_INITIAL_WINDOW_SIZE) and the connection's. */
const STREAM_WINDOW = 4 * 1024 * 1024;

function connect(port: number, streams: number): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://localhost:${port}`, {
      host: '127.0.0.1',
      ca: CERTS.ca,
      servername: 'localhost',
      minVersion: 'TLSv1.3',
      ciphers: 'TLS_AES_128_GCM_SHA256',
      settings: { initialWindowSize: STREAM_WINDOW },
      maxSessionMemory: 256,
    });
    session.once('error', reject);
    session.once('connect', () => {
      session.setLocalWindowSize(STREAM_WINDOW * streams);
      session.off('error', reject);
      resolve(session);
    });
  });
}

/** One GET on `session`: resolves with the body's bytes once it has all arrived. */
function get(session: http2.ClientHttp2Session, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':path': path }, { endStream: true });
    let status = 0;
    let n = 0;
    req.once('response', (h) => (status = Number(h[':status'])));
    req.on('data', (c: Buffer) => (n += c.length));
    req.once('end', () => (status === 200 ? resolve(n) : reject(new Error(`status ${status}`))));
    req.once('error', reject);
  });
}

/**
 * `sessions` HTTP/2 sessions, each with `streams` requests of `path` in flight
 * (each stream starting the next request when its last one ends) for `ms`;
 * resolves with the count, bytes and latency percentiles. Sessions and
 * handshakes are made, and one request answered on each, before timing.
 */
export async function h2Run(a: {
  port: number;
  sessions: number;
  streams: number;
  ms: number;
  path: string;
}): Promise<{ requests: number; bytes: number; seconds: number; p50: number; p99: number; errors: number }> {
  const sessions: http2.ClientHttp2Session[] = [];
  let errors = 0;
  try {
    for (let i = 0; i < a.sessions; i++) sessions.push(await connect(a.port, a.streams));
    for (const s of sessions) s.on('error', () => errors++);
    await Promise.all(sessions.map((s) => get(s, a.path)));
    const lat: number[] = [];
    let requests = 0;
    let bytes = 0;
    const t0 = nowNs();
    const end = Date.now() + a.ms;
    await Promise.all(
      sessions.flatMap((s) =>
        Array.from({ length: a.streams }, async () => {
          while (Date.now() < end) {
            const t = nowNs();
            try {
              const n = await get(s, a.path); // awaited first: `bytes += await` would add to a stale total
              bytes += n;
              requests++;
              lat.push(Number(nowNs() - t) / 1e6);
            } catch {
              errors++;
              if (s.destroyed || s.closed) return;
            }
          }
        }),
      ),
    );
    const seconds = Number(nowNs() - t0) / 1e9;
    return { requests, bytes, seconds, p50: percentile(lat, 50), p99: percentile(lat, 99), errors };
  } finally {
    await Promise.all(
      sessions.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.destroyed) return resolve();
            s.once('close', resolve);
            s.close();
          }),
      ),
    );
  }
}
