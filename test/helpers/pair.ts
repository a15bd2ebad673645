// Shared test fixtures: loopback pairs, random keys, and reading streams to the end.
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import * as ktls from '../../lib/index.js';
import { cipherSpec, type CipherName, type TlsVersion } from '../../lib/constants.js';
import { loopbackPair } from '../../lib/probe.js';
import type { TlsSecrets } from '../../lib/secrets.js';

interface Keys { key: Buffer; iv: Buffer; seq: bigint }

export { loopbackPair };

/** Random keys for both directions; `a` and `b` are the two ends' views of one session. */
export function sessionKeys(version: TlsVersion, cipher: CipherName, seq: { ab?: bigint; ba?: bigint } = {}): { a: TlsSecrets; b: TlsSecrets; ab: Keys; ba: Keys } {
  const spec = cipherSpec(cipher);
  const ab = { key: randomBytes(spec.keySize), iv: randomBytes(spec.nonceSize), seq: seq.ab ?? 0n };
  const ba = { key: randomBytes(spec.keySize), iv: randomBytes(spec.nonceSize), seq: seq.ba ?? 0n };
  const copy = (d: Keys): Keys => ({ key: Buffer.from(d.key), iv: Buffer.from(d.iv), seq: d.seq });
  return { a: { version, cipher, tx: copy(ab), rx: copy(ba) }, b: { version, cipher, tx: copy(ba), rx: copy(ab) }, ab: copy(ab), ba: copy(ba) };
}

/** Two KtlsSockets talking to each other over loopback. */
export async function upgradedPair(version: TlsVersion, cipher: CipherName, options: ktls.UpgradeOptions = {}): Promise<[ktls.KtlsSocket, ktls.KtlsSocket]> {
  const [c, s] = await loopbackPair();
  const keys = sessionKeys(version, cipher);
  return Promise.all([ktls.upgrade(c, keys.a, options), ktls.upgrade(s, keys.b, options)]);
}

/** Everything a stream yields until it ends. Unlike `for await`, this does not destroy the stream at the end. */
export function readAll(stream: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c)).once('end', () => resolve(Buffer.concat(chunks))).once('error', reject);
  });
}

/** Resolves with the first `n` bytes a raw socket receives. */
export function readBytes(stream: Readable, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (c: Buffer): void => {
      chunks.push(c);
      got += c.length;
      if (got >= n) {
        stream.off('data', onData);
        stream.pause(); // flowing with no listener would drop what comes next
        const all = Buffer.concat(chunks);
        if (all.length > n) stream.unshift(all.subarray(n));
        resolve(all.subarray(0, n));
      }
    };
    stream.on('data', onData).once('error', reject).once('end', () => got < n && reject(new Error(`stream ended after ${got} of ${n} bytes`)));
    stream.resume(); // an earlier readBytes paused it
  });
}

/** Resolves with the error a stream is destroyed with. */
export function errorOf(stream: Readable): Promise<Error & { code?: string; alert?: string; errno?: number; syscall?: string }> {
  return new Promise((resolve) => stream.once('error', resolve));
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
