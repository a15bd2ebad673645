// A server in its own process for the soak's memory-per-connection figure:
// `node soak-server.js ktls|node-tls` (spawned with --expose-gc and an IPC
// channel). Echoes every connection; answers 'measure' with its memory after
// a full collection and its open fd count.
import * as fs from 'node:fs';
import * as tls from 'node:tls';
import * as ktls from '../lib/index.js';

const kind = process.argv[2];
const key = fs.readFileSync(process.argv[3]);
const cert = fs.readFileSync(process.argv[4]);
const sockets = new Set<NodeJS.ReadWriteStream & { destroy(): void }>();
const track = (s: NodeJS.ReadWriteStream & { destroy(): void; once(ev: 'close', cb: () => void): unknown; on(ev: 'error', cb: () => void): unknown }): void => {
  sockets.add(s);
  s.on('error', () => undefined);
  s.once('close', () => sockets.delete(s));
  s.pipe(s);
};
const server = kind === 'ktls' ? ktls.createServer({ key, cert, ktls: { fallback: 'error' } }, track) : tls.createServer({ key, cert }, track);
server.on('tlsClientError', () => undefined);
server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as { port: number }).port }));

process.on('message', (m: { op: string }) => {
  if (m.op !== 'measure') return;
  for (let i = 0; i < 3; i++) (globalThis as { gc?: () => void }).gc?.();
  const u = process.memoryUsage();
  const kernel = [...sockets].filter((s) => s instanceof ktls.KtlsSocket && s.kernel).length;
  process.send!({
    rss: u.rss,
    external: u.external,
    arrayBuffers: u.arrayBuffers,
    heapUsed: u.heapUsed,
    fds: fs.readdirSync('/proc/self/fd').length,
    sockets: sockets.size,
    kernel,
  });
});
process.on('disconnect', () => process.exit(0));
