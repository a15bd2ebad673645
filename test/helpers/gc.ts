// Garbage-collection probes: force full collections and count which tracked
// objects were finalized, to prove that closed sockets release their memory.
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { setImmediate as turn, setTimeout as sleep } from 'node:timers/promises';
import type * as net from 'node:net';
import * as tls from 'node:tls';
import * as ktls from '../../lib/index.js';
import { readBytes, upgradedPair } from './pair.js';
import { CERTS, listening, portOf } from './tls.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Counts finalized objects among those tracked. */
export class Collected {
  tracked = 0;
  finalized = 0;
  #registry = new FinalizationRegistry<null>(() => void this.finalized++);

  track(o: object): void {
    this.tracked++;
    this.#registry.register(o, null);
  }
}

/** Full collections until finalizers stop arriving (finalization callbacks run after GC, on later turns). */
export async function collect(c?: Collected): Promise<void> {
  let last = -1;
  for (let i = 0; i < 20; i++) {
    gc();
    await turn();
    await sleep(10);
    if (c && c.finalized === last && i >= 4) return;
    last = c?.finalized ?? 0;
  }
}

/** process.memoryUsage().arrayBuffers after full collections. */
export async function arrayBuffers(c?: Collected): Promise<number> {
  await collect(c);
  return process.memoryUsage().arrayBuffers;
}

/** `n` upgrade → write → read → destroy cycles of a loopback pair, tracking every socket; arrayBuffers growth over them. */
export async function socketCycles(n: number, options: ktls.UpgradeOptions): Promise<{ collected: Collected; growth: number }> {
  const collected = new Collected();
  const once = async (): Promise<void> => {
    const [a, b] = await upgradedPair('TLSv1.3', 'aes-128-gcm', options);
    a.write('ping');
    await readBytes(b, 4);
    collected.track(a);
    collected.track(b);
    a.destroy();
    b.destroy();
    await new Promise((resolve) => b.once('close', resolve));
  };
  for (let i = 0; i < 20; i++) await once(); // warm up caches and JIT before the baseline
  const before = await arrayBuffers();
  const warm = collected.tracked;
  for (let i = 0; i < n; i++) await once();
  const growth = (await arrayBuffers(collected)) - before;
  collected.tracked -= warm;
  collected.finalized -= Math.min(warm, collected.finalized);
  return { collected, growth };
}

/**
 * `n` connections to a ktls server, switched and left open (echoing): the
 * node:tls sockets of their handshakes and their net.Sockets are tracked. The
 * KtlsSockets are returned live, so what they keep reachable is not collected.
 */
export async function liveServerConnections(
  n: number,
  options: ktls.KtlsHandoverOptions,
): Promise<{ collected: Collected; live: ktls.KtlsSocket[]; close: () => void }> {
  const collected = new Collected();
  const live: ktls.KtlsSocket[] = [];
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert, ktls: options }, (s) => {
    live.push(s);
    s.on('error', () => undefined);
    s.pipe(s);
  });
  server.on('connection', (raw: net.Socket) => collected.track(raw));
  server.tlsServer.on('secureConnection', (t: tls.TLSSocket) => collected.track(t));
  server.listen(0, '127.0.0.1');
  await listening(server);
  const clients: tls.TLSSocket[] = [];
  for (let i = 0; i < n; i++) {
    const c = tls.connect({ port: portOf(server), host: '127.0.0.1', ca: CERTS.ca, servername: 'localhost' });
    c.on('error', () => undefined);
    clients.push(c);
    await new Promise((resolve) => c.once('secureConnect', resolve));
    c.write('x');
    await new Promise((resolve) => c.once('data', resolve));
  }
  await collect(collected);
  return {
    collected,
    live,
    close: () => {
      for (const c of clients) c.destroy();
      server.close();
    },
  };
}
