// Shared test fixtures: loopback pairs, random keys, and reading streams to the end.
import { createHash } from 'node:crypto';
import * as ktls from '../../lib/index.js';
import type { CipherName, TlsVersion } from '../../lib/native/constants.js';
import { loopbackPair } from '../../lib/native/probe.js';
import { sessionKeys } from '../../lib/verify/util.js';

export { loopbackPair, sessionKeys };

/** Two KtlsSockets talking to each other over loopback. */
export async function upgradedPair(version: TlsVersion, cipher: CipherName, options: ktls.UpgradeOptions = {}): Promise<[ktls.KtlsSocket, ktls.KtlsSocket]> {
  const [c, s] = await loopbackPair();
  const keys = sessionKeys(version, cipher);
  return Promise.all([ktls.upgrade(c, keys.a, options), ktls.upgrade(s, keys.b, options)]);
}

// One implementation for the verify suite and the tests.
export { errorOf, readAll, readBytes } from '../../lib/verify/util.js';

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
