// TLS fixtures for hand-over tests: certificates, servers on loopback, and a
// proxy that re-chunks and delays the byte stream.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';

const dir = path.resolve(__dirname, '..', '..', '..', 'test', 'fixtures');
const read = (f: string): Buffer => fs.readFileSync(path.join(dir, f));
export const CERTS = { ca: read('ca.pem'), key: read('server.key'), cert: read('server.pem'), clientKey: read('client.key'), clientCert: read('client.pem') };
export const FIXTURES = dir;

/** node:tls cipher names per version for each kTLS cipher (the fixture key is ECDSA). */
export const SUITES = {
  'TLSv1.2': {
    'aes-128-gcm': 'ECDHE-ECDSA-AES128-GCM-SHA256',
    'aes-256-gcm': 'ECDHE-ECDSA-AES256-GCM-SHA384',
    'chacha20-poly1305': 'ECDHE-ECDSA-CHACHA20-POLY1305',
  },
  'TLSv1.3': { 'aes-128-gcm': 'TLS_AES_128_GCM_SHA256', 'aes-256-gcm': 'TLS_AES_256_GCM_SHA384', 'chacha20-poly1305': 'TLS_CHACHA20_POLY1305_SHA256' },
} as const;

/** Port of a listening server. */
export function portOf(server: { address(): ReturnType<net.Server['address']> }): number {
  return (server.address() as net.AddressInfo).port;
}

/** Waits for 'listening'. */
export function listening(server: { once(ev: 'listening', cb: () => void): unknown }): Promise<void> {
  return new Promise((resolve) => server.once('listening', resolve));
}

/**
 * A TCP proxy on loopback that forwards each direction in random-sized chunks
 * with random delays, so records split and merge differently on every run.
 */
export async function chaosProxy(targetPort: number, rand: () => number): Promise<net.Server> {
  // Half-open both ways: one side's FIN must not cut off what the other still sends.
  const server = net.createServer({ allowHalfOpen: true }, (a) => {
    const b = net.connect({ port: targetPort, host: '127.0.0.1', allowHalfOpen: true });
    const pump = (from: net.Socket, to: net.Socket): void => {
      let queue = Promise.resolve();
      from.on('data', (chunk: Buffer) => {
        queue = queue.then(async () => {
          for (let off = 0; off < chunk.length;) {
            const n = 1 + Math.floor(rand() * Math.min(chunk.length - off, 3000));
            to.write(chunk.subarray(off, off + n));
            off += n;
            if (rand() < 0.3) await sleep(Math.floor(rand() * 4));
          }
        });
      });
      from.on('end', () => void queue.then(() => to.end()));
      from.on('error', () => to.destroy());
    };
    pump(a, b);
    pump(b, a);
  });
  server.listen(0, '127.0.0.1');
  await listening(server);
  return server;
}

/** A small deterministic PRNG, so failures can be replayed from the seed (one definition, with the benchmarks). */
export { prng } from '../../bench/common.js';

export type TlsServer = tls.Server;
