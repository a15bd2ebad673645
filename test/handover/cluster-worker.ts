// A cluster worker for test/handover/cluster*.kernel.test.ts (run by
// cluster.setupPrimary({ exec })). CLUSTER_SERVER picks the server: 'tls'
// (ktls.createServer: reads a length-prefixed request, answers a JSON line,
// then the request, and ends) or 'https' (ktls.createHttpsServer: the same for a POST body).
// CLUSTER_PORT, CLUSTER_REUSEPORT=1, CLUSTER_FASTOPEN=<queue>, CLUSTER_SESSIONS=1
// (examples/session-cache.ts's store). It tells the primary { listening: port }
// and { warning: code, message } for each process warning.
import cluster from 'node:cluster';
import { createHash } from 'node:crypto';
import * as ktls from '../../lib/index.js';
import { ClusterSessionStore, SESSION_ID_OPTIONS, useSessionStore } from '../../examples/session-cache.js';
import { CERTS } from '../helpers/tls.js';

/** What a worker says about a connection it served. */
export interface Served {
  worker: number;
  kernel: boolean;
  reused: boolean;
  sha256: string;
  length: number;
}

const env = process.env;
process.on('warning', (w: Error & { code?: string }) => process.send?.({ warning: w.code, message: w.message }));
const options: ktls.KtlsServerOptions = {
  key: CERTS.key,
  cert: CERTS.cert,
  reusePort: env.CLUSTER_REUSEPORT === '1',
  ...(env.CLUSTER_FASTOPEN ? { fastOpen: Number(env.CLUSTER_FASTOPEN) } : {}),
  ...(env.CLUSTER_SESSIONS === '1' ? SESSION_ID_OPTIONS : {}),
};
const served = (socket: ktls.KtlsSocket, body: Buffer): Served => ({
  worker: cluster.worker?.id ?? 0,
  kernel: socket.kernel,
  reused: socket.isSessionReused(),
  sha256: createHash('sha256').update(body).digest('hex'),
  length: body.length,
});
const readBody = (s: NodeJS.ReadableStream): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.once('end', () => resolve(Buffer.concat(chunks)));
    s.once('error', reject);
  });

/** A 4-byte big-endian length, then that many bytes (the client keeps its side open: a FIN before the switch keeps the kernel from taking the socket). */
const readFramed = (s: ktls.KtlsSocket): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      got = Buffer.concat([got, d]);
      if (got.length >= 4 && got.length >= 4 + got.readUInt32BE(0)) {
        s.off('data', onData);
        resolve(got.subarray(4, 4 + got.readUInt32BE(0)));
      }
    };
    s.on('data', onData);
    s.once('error', reject);
  });

const server =
  env.CLUSTER_SERVER === 'https'
    ? ktls.createHttpsServer(options, (req, res) => {
        void readBody(req).then((body) => res.end(JSON.stringify(served(req.socket as unknown as ktls.KtlsSocket, body))));
      })
    : ktls.createServer({ ...options, ktls: { allowHalfOpen: true } }, (socket) => {
        socket.on('error', () => undefined);
        void readFramed(socket).then((body) => socket.end(Buffer.concat([Buffer.from(JSON.stringify(served(socket, body)) + '\n'), body])));
      });
if (server instanceof ktls.KtlsServer) server.on('tlsClientError', (e: Error) => process.send?.({ warning: 'tlsClientError', message: e.message }));
if (env.CLUSTER_SESSIONS === '1') useSessionStore(server, new ClusterSessionStore());
server.listen({ port: Number(env.CLUSTER_PORT ?? 0), host: '127.0.0.1' }, () => process.send?.({ listening: (server.address() as { port: number }).port }));
process.on('disconnect', () => process.exit(0));
