// Chunk isolation, shared by the host suite (userspace records) and the kTLS
// suite (kernel records): what a consumer can reach from a received chunk.
import type { Test } from 'tap';
import * as ktls from '../../lib/index.js';
import type { CipherName, TlsVersion } from '../../lib/native/constants.js';
import { upgradedPair } from './pair.js';

const count = (hay: string, needle: string): number => hay.split(needle).length - 1;

/**
 * Two connections on one thread, each sending its own numbered markers at the
 * same time. Every chunk the receivers get is checked for what its
 * `.buffer` holds beyond the chunk itself.
 */
export async function twoConnections(t: Test, version: TlsVersion, cipher: CipherName, options: ktls.UpgradeOptions): Promise<void> {
  const [a1, a2] = await upgradedPair(version, cipher, options);
  const [b1, b2] = await upgradedPair(version, cipher, options);
  const rounds = 100;
  const mark = (who: string, i: number): string => `<${who}:${String(i).padStart(4, '0')}>`;
  const stats = { chunks: 0, foreign: 0, past: 0 };
  const receive = (sock: ktls.KtlsSocket, self: string, other: string): Promise<string> => {
    let text = '';
    return new Promise((resolve, reject) => {
      sock.on('data', (chunk: Buffer) => {
        stats.chunks++;
        const whole = Buffer.from(chunk.buffer).toString('latin1');
        const own = chunk.toString('latin1');
        if (whole.includes(`<${other}:`)) stats.foreign++;
        if (count(whole, `<${self}:`) > count(own, `<${self}:`)) stats.past++;
        text += own;
        if (text.length >= rounds * 8) resolve(text);
      });
      sock.on('error', reject);
    });
  };
  const gotA = receive(a2, 'A', 'B');
  const gotB = receive(b2, 'B', 'A');
  for (let i = 0; i < rounds; i++) {
    a1.write(mark('A', i));
    b1.write(mark('B', i));
    // Let each write go out on its own, so the receivers interleave their reads.
    await new Promise((resolve) => setImmediate(resolve));
  }
  const [ta, tb] = await Promise.all([gotA, gotB]);
  t.equal(ta, Array.from({ length: rounds }, (_, i) => mark('A', i)).join(''), 'connection A received its bytes, in order');
  t.equal(tb, Array.from({ length: rounds }, (_, i) => mark('B', i)).join(''), 'connection B received its bytes, in order');
  t.ok(stats.chunks >= 2, `chunks received (${stats.chunks})`);
  t.equal(stats.foreign, 0, `no chunk's .buffer holds the other connection's plaintext (${stats.chunks} chunks)`);
  t.equal(stats.past, 0, `no chunk's .buffer holds earlier bytes of its own connection (${stats.chunks} chunks)`);
  for (const s of [a1, a2, b1, b2]) s.destroy();
}

/**
 * Transferring one chunk's ArrayBuffer (as postMessage would) leaves every
 * other chunk intact: the other connection's bytes, already buffered and not
 * yet read, still arrive.
 */
export async function transferOneChunk(t: Test, version: TlsVersion, cipher: CipherName, options: ktls.UpgradeOptions): Promise<void> {
  const [a1, a2] = await upgradedPair(version, cipher, options);
  const [b1, b2] = await upgradedPair(version, cipher, options);
  const early = Buffer.alloc(1000, 0x62);
  // B's bytes are read into B's readable buffer, and wait there unread.
  const buffered = new Promise<void>((resolve) => b2.once('readable', resolve));
  b1.write(early);
  await buffered;
  t.equal(b2.readableLength, early.length, "the other connection's bytes wait in its readable buffer");
  const first = new Promise<Buffer>((resolve) => a2.once('data', resolve));
  a1.write('a-first');
  const chunk = await first;
  const moved = structuredClone(chunk.buffer, { transfer: [chunk.buffer] });
  t.equal(chunk.length, 0, 'the transferred chunk is detached');
  t.ok(Buffer.from(moved).toString('latin1').includes('a-first'), 'the transferred ArrayBuffer holds the chunk');
  const size = early.length + 200_000;
  const all = new Promise<Buffer>((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    b2.on('data', (d: Buffer) => {
      parts.push(d);
      if ((n += d.length) >= size) resolve(Buffer.concat(parts));
    });
    b2.on('error', reject);
  });
  const allA = new Promise<string>((resolve) => {
    let s = '';
    a2.on('data', (d: Buffer) => (s += d.toString()).length >= 7 && resolve(s));
  });
  b1.write(Buffer.alloc(size - early.length, 0x62));
  a1.write('a-again');
  const got = await Promise.race([all, new Promise<null>((resolve) => setTimeout(() => resolve(null), 5000))]);
  t.equal(got?.length, size, 'the other connection receives every byte, the ones buffered before the transfer too');
  t.ok(
    got?.every((b) => b === 0x62),
    'and they are its bytes',
  );
  t.equal(await allA, 'a-again', 'the connection whose chunk moved goes on reading');
  for (const s of [a1, a2, b1, b2]) s.destroy();
}
