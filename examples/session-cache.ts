/**
 * TLS 1.2 session-ID resumption across the workers of a `node:cluster` server.
 * Each worker has its own OpenSSL session cache, so a client that comes back
 * to another worker would pay a full handshake; with an external store every
 * worker can resume every session. The store here is an interface that fits
 * Redis or memcached (async get, set with a TTL); {@link MemorySessionStore}
 * lives in the primary and {@link ClusterSessionStore} reaches it over the
 * cluster IPC channel. Resumed connections move to kTLS like any other.
 *
 * ```sh
 * npm run example:session-cache -- --port 8443 --workers 4
 * openssl s_client -connect 127.0.0.1:8443 -tls1_2 -no_ticket -sess_out /tmp/s -CAfile test/fixtures/ca.pem </dev/null
 * openssl s_client -connect 127.0.0.1:8443 -tls1_2 -no_ticket -sess_in /tmp/s -CAfile test/fixtures/ca.pem </dev/null | grep Reused
 * ```
 *
 * Session tickets (TLS 1.2 tickets, TLS 1.3 PSKs) need no store: give every
 * worker the same key with `server.setTicketKeys()` instead.
 * @packageDocumentation
 */
import cluster from 'node:cluster';
import { constants } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as ktls from '../lib/index.js';

/** A shared TLS session store: what a Redis client gives (`GET`, `SET … PX ttl`). */
export interface SessionStore {
  /** The session saved under `id`, or undefined (unknown or expired). */
  get(id: Buffer): Promise<Buffer | undefined>;
  /** Saves `data` under `id` for `ttlMs` milliseconds. */
  set(id: Buffer, data: Buffer, ttlMs: number): Promise<void>;
}

/** An in-memory {@link SessionStore} with expiry and a size bound (the oldest goes first). */
export class MemorySessionStore implements SessionStore {
  readonly #entries = new Map<string, { data: Buffer; expires: number }>();
  /** @param maxEntries - sessions kept at most. */
  constructor(readonly maxEntries = 100_000) {}

  /** See {@link SessionStore.get}. */
  get(id: Buffer): Promise<Buffer | undefined> {
    const key = id.toString('hex');
    const e = this.#entries.get(key);
    if (e && e.expires <= Date.now()) this.#entries.delete(key);
    return Promise.resolve(e && e.expires > Date.now() ? e.data : undefined);
  }

  /** See {@link SessionStore.set}. */
  set(id: Buffer, data: Buffer, ttlMs: number): Promise<void> {
    const key = id.toString('hex');
    this.#entries.delete(key);
    this.#entries.set(key, { data: Buffer.from(data), expires: Date.now() + ttlMs });
    while (this.#entries.size > this.maxEntries) this.#entries.delete(this.#entries.keys().next().value as string);
    return Promise.resolve();
  }
}

/** The IPC messages between {@link ClusterSessionStore} and {@link serveSessions}. */
interface SessionMessage {
  ktlsSession: 'get' | 'set' | 'got';
  seq?: number;
  id?: string;
  data?: string | null;
  ttl?: number;
}

const isSessionMessage = (m: unknown): m is SessionMessage => typeof m === 'object' && m !== null && 'ktlsSession' in m;

/**
 * A worker's view of the primary's store, over the cluster IPC channel. A
 * lookup that gets no answer within `timeoutMs` is a miss (a full handshake).
 */
export class ClusterSessionStore implements SessionStore {
  #seq = 0;
  readonly #waiting = new Map<number, (data: Buffer | undefined) => void>();
  /** @param timeoutMs - how long a lookup waits for the primary. */
  constructor(readonly timeoutMs = 1000) {
    if (!process.send) throw new Error('ClusterSessionStore needs an IPC channel to the primary (a cluster worker)');
    process.on('message', (m: unknown) => {
      if (!isSessionMessage(m) || m.ktlsSession !== 'got' || m.seq === undefined) return;
      this.#waiting.get(m.seq)?.(m.data ? Buffer.from(m.data, 'base64') : undefined);
    });
  }

  /** See {@link SessionStore.get}. */
  get(id: Buffer): Promise<Buffer | undefined> {
    const seq = ++this.#seq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), this.timeoutMs);
      const done = (data: Buffer | undefined): void => {
        clearTimeout(timer);
        this.#waiting.delete(seq);
        resolve(data);
      };
      this.#waiting.set(seq, done);
      process.send?.({ ktlsSession: 'get', seq, id: id.toString('hex') } satisfies SessionMessage);
    });
  }

  /** See {@link SessionStore.set}. */
  set(id: Buffer, data: Buffer, ttlMs: number): Promise<void> {
    process.send?.({ ktlsSession: 'set', id: id.toString('hex'), data: data.toString('base64'), ttl: ttlMs } satisfies SessionMessage);
    return Promise.resolve();
  }
}

/** In the primary: answers every worker's {@link ClusterSessionStore} from `store`. */
export function serveSessions(store: SessionStore = new MemorySessionStore()): SessionStore {
  cluster.on('message', (worker, m: unknown) => {
    if (!isSessionMessage(m) || !m.id) return;
    const id = Buffer.from(m.id, 'hex');
    if (m.ktlsSession === 'set' && m.data) void store.set(id, Buffer.from(m.data, 'base64'), m.ttl ?? 300_000);
    else if (m.ktlsSession === 'get')
      void store.get(id).then(
        (data) => worker.isConnected() && worker.send({ ktlsSession: 'got', seq: m.seq, data: data ? data.toString('base64') : null } satisfies SessionMessage),
        () => worker.isConnected() && worker.send({ ktlsSession: 'got', seq: m.seq, data: null } satisfies SessionMessage),
      );
  });
  return store;
}

/** A server with `'newSession'`/`'resumeSession'` (a {@link ktls.KtlsServer} or {@link ktls.KtlsHttpsServer}). */
export interface SessionServer {
  on(event: 'newSession', listener: (id: Buffer, data: Buffer, done: () => void) => void): unknown;
  on(event: 'resumeSession', listener: (id: Buffer, done: (err: Error | null, data: Buffer | null) => void) => void): unknown;
}

/**
 * Keeps `server`'s TLS 1.2 sessions in `store`: new sessions are saved, and a
 * client that offers a session ID is looked up there (a miss or a store error
 * is a full handshake). Use with `secureOptions: SSL_OP_NO_TICKET` so clients
 * get session IDs rather than tickets, and the same `sessionIdContext` everywhere.
 */
export function useSessionStore(server: SessionServer, store: SessionStore, ttlMs = 300_000): void {
  server.on('newSession', (id, data, done) => {
    store.set(id, data, ttlMs).then(done, done);
  });
  server.on('resumeSession', (id, done) => {
    store.get(id).then(
      (data) => done(null, data ?? null),
      () => done(null, null),
    );
  });
}

/** Server options for session-ID resumption across processes: no tickets, one session ID context. */
export const SESSION_ID_OPTIONS = { secureOptions: constants.SSL_OP_NO_TICKET, sessionIdContext: 'ktls-session-cache' } as const;

function main(): void {
  const FIXTURES = path.resolve(__dirname, '..', '..', 'test', 'fixtures');
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: process.env.PORT ?? '8443' },
      host: { type: 'string', default: process.env.HOST ?? '127.0.0.1' },
      workers: { type: 'string', default: String(Math.min(4, os.availableParallelism())) },
    },
  });
  if (cluster.isPrimary) {
    serveSessions(new MemorySessionStore());
    for (let i = 0; i < Number(values.workers); i++) cluster.fork();
    return;
  }
  const server = ktls.createServer(
    { key: fs.readFileSync(path.join(FIXTURES, 'server.key')), cert: fs.readFileSync(path.join(FIXTURES, 'server.pem')), ...SESSION_ID_OPTIONS },
    (socket) => {
      socket.on('error', () => undefined);
      socket.end(`worker ${cluster.worker?.id ?? 0}: ${socket.isSessionReused() ? 'resumed' : 'new'} session, kernel TLS ${String(socket.kernel)}\n`);
    },
  );
  useSessionStore(server, new ClusterSessionStore());
  server.on('tlsClientError', () => undefined);
  server.listen(Number(values.port), values.host);
}

if (require.main === module) main();
