// Reads TLS records off a raw socket and opens them with the userspace record layer.
import type * as net from 'node:net';
import type { CipherName, TlsVersion } from '../../lib/native/constants.js';
import { RecordOpener, type DirectionKeys } from '../../lib/record/layer.js';

/** Opens records from `raw` until `total` plaintext bytes arrived; returns each record's plaintext size and the data. */
export function recordSizesOnWire(
  raw: net.Socket,
  keys: DirectionKeys,
  version: TlsVersion,
  cipher: CipherName,
  total: number,
): Promise<{ plaintexts: number[]; opened: Buffer }> {
  const opener = new RecordOpener(version, cipher, { key: Buffer.from(keys.key), iv: Buffer.from(keys.iv), seq: keys.seq });
  const plaintexts: number[] = [];
  const parts: Buffer[] = [];
  let got = 0;
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      opener.push(chunk);
      try {
        for (let rec = opener.next(); rec !== null; rec = opener.next()) {
          plaintexts.push(rec.data.length);
          parts.push(rec.data);
          got += rec.data.length;
        }
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      if (got >= total) {
        raw.off('data', onData);
        resolve({ plaintexts, opened: Buffer.concat(parts) });
      }
    };
    raw.on('data', onData).once('error', reject);
  });
}
