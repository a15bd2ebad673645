// Shared test fixtures: loopback pairs, random keys, and reading streams to the end.
import { createHash, randomBytes } from 'node:crypto';
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

// One implementation for the verify suite and the tests.
export { errorOf, readAll, readBytes } from '../../lib/verify/util.js';

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
