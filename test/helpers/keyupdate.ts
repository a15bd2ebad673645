// A TLS 1.3 pair upgraded with traffic secrets, so both ends can follow KeyUpdates.
import { randomBytes } from 'node:crypto';
import * as ktls from '../../lib/index.js';
import type { CipherName } from '../../lib/constants.js';
import { tls13Keys } from '../../lib/derive.js';
import { loopbackPair } from './pair.js';

export async function rekeyablePair(cipher: CipherName, options: ktls.UpgradeOptions = {}): Promise<[ktls.KtlsSocket, ktls.KtlsSocket]> {
  const hash = cipher === 'aes-256-gcm' ? 'sha384' : 'sha256';
  const size = hash === 'sha384' ? 48 : 32;
  const ab = randomBytes(size);
  const ba = randomBytes(size);
  const side = (tx: Buffer, rx: Buffer): ktls.TlsSecrets => ({ version: 'TLSv1.3', cipher, tx: { ...tls13Keys(cipher, hash, tx), seq: 0n }, rx: { ...tls13Keys(cipher, hash, rx), seq: 0n } });
  const [c, s] = await loopbackPair();
  return Promise.all([
    ktls.upgrade(c, side(ab, ba), { ...options, trafficSecrets: { tx: Buffer.from(ab), rx: Buffer.from(ba) } }),
    ktls.upgrade(s, side(ba, ab), { ...options, trafficSecrets: { tx: Buffer.from(ba), rx: Buffer.from(ab) } }),
  ]);
}
