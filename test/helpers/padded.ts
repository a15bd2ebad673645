// TLS 1.3 records sealed with zero padding after the content type (RFC 8446
// §5.4), as a peer that pads sends them: ktls's record layer never pads, as
// OpenSSL and the kernel don't, so the tests seal these themselves.
import { createCipheriv } from 'node:crypto';
import type { DirectionKeys } from '../../lib/index.js';

/** One TLS 1.3 AES-GCM application-data record of `data` with `pad` zero bytes of padding, at sequence number `seq`. */
export function paddedRecord(keys: DirectionKeys, seq: bigint, data: Buffer, pad: number): Buffer {
  const nonce = Buffer.from(keys.iv);
  for (let i = 0; i < 8; i++) nonce[nonce.length - 1 - i] ^= Number((seq >> BigInt(8 * i)) & 0xffn);
  const inner = Buffer.concat([data, Buffer.of(23), Buffer.alloc(pad)]);
  const header = Buffer.from([23, 3, 3, 0, 0]);
  header.writeUInt16BE(inner.length + 16, 3);
  const algo = keys.key.length === 16 ? 'aes-128-gcm' : 'aes-256-gcm';
  const c = createCipheriv(algo, keys.key, nonce);
  c.setAAD(header);
  return Buffer.concat([header, c.update(inner), c.final(), c.getAuthTag()]);
}
