// Where a connection's secrets can be found after the switch: Node's shared
// Buffer pool, the V8 heap (as strings), and the key-log lines node:tls
// emitted. Shared by the host suite (userspace records) and the kTLS suite.
import type { Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import * as v8 from 'node:v8';
import * as ktls from '../../lib/index.js';
import { tls13Keys } from '../../lib/record/derive.js';
import { Collected, collect } from './gc.js';
import { CERTS, listening, portOf } from './tls.js';

const SUITES = 'TLS_AES_128_GCM_SHA256:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256';

/** Hex to bytes without ever making the secret a string or a pooled Buffer. */
function hexOf(line: Buffer, start: number, end: number): Buffer {
  const out = Buffer.alloc((end - start) >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(String.fromCharCode(line[start + 2 * i], line[start + 2 * i + 1]), 16);
  return out;
}

/**
 * One connection through `ktls.createServer` (our side) from a node:tls
 * client, with Node's pool made one 64 MiB slab first, so everything pooled
 * meanwhile can be scanned. Returns what the secrets' searches found.
 */
export async function secretsAfterSwitch(t: Test, version: 'TLSv1.2' | 'TLSv1.3', ktlsOptions: ktls.KtlsHandoverOptions): Promise<void> {
  const poolSize = Buffer.poolSize;
  Buffer.poolSize = 64 << 20;
  for (let i = 0; i < 3; i++) Buffer.allocUnsafe(4000); // the 8 KiB pool overflows: the next one is 64 MiB
  t.teardown(() => void (Buffer.poolSize = poolSize));
  const slab = Buffer.allocUnsafe(1).buffer;

  const lines = new Collected();
  const secrets: Array<{ name: string; bytes: Buffer }> = [];
  const server = ktls.createServer({ key: CERTS.key, cert: CERTS.cert, minVersion: version, maxVersion: version, ciphers: SUITES, ktls: ktlsOptions }, (s) =>
    s.pipe(s),
  );
  server.on('keylog', (line: Buffer) => {
    lines.track(line);
    const sp1 = line.indexOf(0x20);
    const sp2 = line.indexOf(0x20, sp1 + 1);
    const end = line[line.length - 1] === 0x0a ? line.length - 1 : line.length;
    secrets.push({ name: line.toString('latin1', 0, sp1), bytes: hexOf(line, sp2 + 1, end) });
  });
  server.listen(0, '127.0.0.1');
  await listening(server);
  const serverSide = new Promise<ktls.KtlsSocket>((resolve) => server.once('secureConnection', resolve));
  const client = tls.connect({ port: portOf(server), host: '127.0.0.1', servername: 'localhost', ca: CERTS.ca });
  await new Promise((resolve) => client.once('secureConnect', resolve));
  const sock = await serverSide;
  client.write('ping');
  await new Promise((resolve) => client.once('data', resolve));
  t.ok(secrets.length >= (version === 'TLSv1.3' ? 5 : 1), `node:tls logged ${secrets.length} secrets`);

  // The keys derived from them, as the kernel or the record layer got them.
  const derived: Array<{ name: string; bytes: Buffer }> = [];
  const cipher = 'aes-128-gcm';
  for (const s of secrets) {
    if (version === 'TLSv1.3' && s.name.endsWith('TRAFFIC_SECRET_0') && !s.name.includes('HANDSHAKE')) {
      const k = tls13Keys(cipher, 'sha256', s.bytes);
      derived.push({ name: `${s.name} key`, bytes: k.key }, { name: `${s.name} iv`, bytes: k.iv });
    }
  }
  t.equal(
    sock.getCipher()?.standardName,
    version === 'TLSv1.3' ? 'TLS_AES_128_GCM_SHA256' : sock.getCipher()?.standardName,
    'the suite the keys are derived for',
  );
  if (version === 'TLSv1.2')
    t.ok(
      secrets.find((s) => s.name === 'CLIENT_RANDOM'),
      'the master secret was logged (TLS 1.2 is checked through it)',
    );
  const needles = [...secrets.filter((s) => !s.name.includes('HANDSHAKE') && s.name !== 'CLIENT_EARLY_TRAFFIC_SECRET'), ...derived];

  const pooled = Buffer.from(slab);
  for (const n of needles) t.equal(pooled.indexOf(n.bytes), -1, `${n.name}: not in Node's shared Buffer pool`);

  await collect(lines);
  t.equal(lines.finalized, lines.tracked, `the ${lines.tracked} key-log lines node:tls emitted are garbage once parsed`);

  // Under AddressSanitizer (libasan preloaded into an uninstrumented node) V8 dies writing a heap
  // snapshot (SIGSEGV, UML 7.2): that run checks the pool and the key-log lines; the plain runs all three.
  if (/libasan/.test(process.env.LD_PRELOAD ?? '')) t.comment('heap snapshot not taken under AddressSanitizer');
  else {
    const file = path.join(os.tmpdir(), `ktls-heap-${process.pid}-${Date.now()}.heapsnapshot`);
    v8.writeHeapSnapshot(file);
    const heap = fs.readFileSync(file, 'latin1');
    fs.rmSync(file, { force: true });
    for (const n of needles) {
      const hex = n.bytes.toString('hex');
      t.notOk(heap.includes(hex) || heap.includes(hex.toUpperCase()), `${n.name}: not in the V8 heap as text`);
    }
  }
  sock.destroy();
  client.destroy();
  server.close();
  for (const s of [...secrets, ...derived]) s.bytes.fill(0);
}
