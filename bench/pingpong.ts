// Round-trip latency of small request/response messages over one upgraded pair,
// side by side in one run: kernel TX with upgrade()'s default TCP_NODELAY, kernel
// TX with Nagle left on (noDelay: false), userspace records, and node:tls.
//
//   npm run bench:pingpong [-- --size 1024 --n 2000]
//
// Runs under a kernel with kTLS (natively where ktls.probe() finds it, else the
// UML harness). A "stall" is a round trip over 20 ms; with Nagle on kTLS showed
// ~45 ms stalls waiting for the peer's delayed ACK (the reason for the default).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { pathToFileURL } from 'node:url';
import * as ktls from '../lib/index.js';
import { loopbackPair } from '../lib/native/probe.js';
import { sessionKeys } from '../lib/verify/util.js';

const ROOT = path.resolve(__dirname, '..', '..');
const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const SIZE = arg('size', 1024);
const N = arg('n', 2000);
const STALL_MS = 20;

type Duplex = NodeJS.ReadWriteStream & { write(b: Buffer): boolean; destroy(): void };

async function rounds(a: Duplex, b: Duplex): Promise<number[]> {
  b.on('data', (d: Buffer) => b.write(d));
  const msg = Buffer.alloc(SIZE, 7);
  const lat: number[] = [];
  let got = 0;
  let done: () => void = () => undefined;
  a.on('data', (d: Buffer) => {
    got += d.length;
    if (got >= SIZE) {
      got -= SIZE;
      done();
    }
  });
  for (let i = 0; i < N; i++) {
    const t0 = process.hrtime.bigint();
    await new Promise<void>((r) => {
      done = r;
      a.write(msg);
    });
    lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  a.destroy();
  b.destroy();
  return lat;
}

async function ktlsPair(options: ktls.UpgradeOptions): Promise<number[]> {
  const [c, s] = await loopbackPair();
  const keys = sessionKeys('TLSv1.3', 'aes-128-gcm');
  const [a, b] = await Promise.all([ktls.upgrade(c, keys.a, options), ktls.upgrade(s, keys.b, options)]);
  for (const x of [a, b]) x.on('error', () => undefined);
  return rounds(a, b);
}

async function nodeTls(): Promise<number[]> {
  const fx = (f: string): Buffer => fs.readFileSync(path.join(ROOT, 'test', 'fixtures', f));
  let serverSide: tls.TLSSocket | undefined;
  const server = tls.createServer({ key: fx('server.key'), cert: fx('server.pem') }, (s) => (serverSide = s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const a = tls.connect({ port, host: '127.0.0.1', ca: fx('ca.pem'), servername: 'localhost' });
  await new Promise((r) => a.once('secureConnect', r));
  while (!serverSide) await new Promise((r) => setImmediate(r));
  serverSide.on('error', () => undefined);
  const lat = await rounds(a, serverSide);
  server.close();
  return lat;
}

function row(name: string, lat: number[]): string {
  const s = [...lat].sort((x, y) => x - y);
  const q = (p: number): string => s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(2);
  const stalls = lat.filter((x) => x > STALL_MS).length;
  return `| ${name} | ${q(0.5)} | ${q(0.99)} | ${s[s.length - 1].toFixed(2)} | ${stalls} (${((100 * stalls) / lat.length).toFixed(1)}%) |`;
}

async function inner(): Promise<void> {
  const lines = [
    `${N} round trips of ${SIZE} B, one connection, TLS 1.3 AES-128-GCM, kernel ${process.env.KTLS_KERNEL_LABEL ?? (await ktls.probe()).kernelRelease}`,
    '',
    `| path | p50 ms | p99 ms | max ms | round trips > ${STALL_MS} ms |`,
    '|---|---:|---:|---:|---:|',
    row('kTLS, upgrade() default (TCP_NODELAY)', await ktlsPair({})),
    row('kTLS, noDelay: false (Nagle on)', await ktlsPair({ noDelay: false })),
    row('userspace records (kernel: false)', await ktlsPair({ kernel: false })),
    row('node:tls', await nodeTls()),
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

async function main(): Promise<void> {
  const caps = await ktls.probe();
  if (process.argv.includes('--inner') || caps.ulp) return inner();
  const uml = (await import(pathToFileURL(path.join(ROOT, 'scripts', 'uml.mjs')).href)) as {
    runInUml: (cmd: string[], o: object) => Promise<{ status: number }>;
  };
  process.stderr.write(`# pingpong: this kernel has no kTLS (${caps.ulpError ?? 'no tls ULP'}): running under user-mode-linux\n`);
  const r = await uml.runInUml([process.execPath, __filename, '--inner', '--size', String(SIZE), '--n', String(N)], {
    cwd: ROOT,
    timeout: 600,
    output: process.stdout,
  });
  process.exitCode = r.status;
}

void main();
