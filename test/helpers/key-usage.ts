// Key usage limits, shared by the host suite (userspace records) and the kTLS
// suite: sockets whose sequence numbers start just below a cipher's limit.
import type { Test } from 'tap';
import { randomBytes } from 'node:crypto';
import * as ktls from '../../lib/index.js';
import { constants } from '../../lib/native/constants.js';
import { RecordOpener } from '../../lib/record/layer.js';
import { hashOf, hashSize, tls13Keys } from '../../lib/record/derive.js';
import { CLOSE_MARGIN, KEY_USAGE_LIMITS, REKEY_MARGIN } from '../../lib/socket/key-usage.js';
import { loopbackPair, sessionKeys } from './pair.js';
import { openAll } from '../../lib/verify/util.js';

const CIPHER = 'aes-128-gcm';
export const LIMIT = KEY_USAGE_LIMITS[CIPHER] ?? 0;

/** A TLS 1.3 pair with traffic secrets whose a→b sequence starts at `seq`. */
async function pair13(seq: bigint, options: ktls.UpgradeOptions): Promise<[ktls.KtlsSocket, ktls.KtlsSocket]> {
  const hash = hashOf(CIPHER);
  const ab = randomBytes(hashSize(hash));
  const ba = randomBytes(hashSize(hash));
  const side = (tx: Buffer, rx: Buffer, txSeq: bigint, rxSeq: bigint): ktls.TlsSecrets => ({
    version: 'TLSv1.3',
    cipher: CIPHER,
    tx: { ...tls13Keys(CIPHER, hash, tx), seq: txSeq },
    rx: { ...tls13Keys(CIPHER, hash, rx), seq: rxSeq },
  });
  const [c, s] = await loopbackPair();
  return Promise.all([
    ktls.upgrade(c, side(ab, ba, seq, 0n), { ...options, trafficSecrets: { tx: Buffer.from(ab), rx: Buffer.from(ba) } }),
    ktls.upgrade(s, side(ba, ab, 0n, seq), { ...options, trafficSecrets: { tx: Buffer.from(ba), rx: Buffer.from(ab) } }),
  ]);
}

const warnings = (): { seen: string[]; stop: () => void } => {
  const seen: string[] = [];
  const on = (w: Error & { code?: string }): void => void (w.code === 'KTLS_KEY_USAGE' && seen.push(w.message));
  process.on('warning', on);
  return { seen, stop: () => process.off('warning', on) };
};

/** TLS 1.3 where the socket can rekey: its TX key is replaced before the limit, on its own, and data flows on. */
export async function rekeysBeforeLimit(t: Test, options: ktls.UpgradeOptions, offset = 2, writes = 40): Promise<void> {
  const start = BigInt(LIMIT - REKEY_MARGIN + offset);
  const [a, b] = await pair13(start, options);
  const own = new Promise<void>((resolve) => a.on('keyUpdate', (u: { direction: string }) => u.direction === 'tx' && resolve()));
  let text = '';
  const got = new Promise<void>((resolve) => b.on('data', (d: Buffer) => (text += d.toString()).length >= writes && resolve()));
  for (let i = 0; i < writes; i++) {
    a.write('x');
    await new Promise((r) => setImmediate(r));
  }
  await own;
  await got;
  t.equal(text, 'x'.repeat(writes), 'every byte arrived, across the KeyUpdate');
  const tx = a.getSequenceNumbers().tx ?? 0n;
  t.ok(tx < BigInt(writes), `a's TX sequence restarted with the new key (${tx}, was ${start})`);
  a.destroy();
  b.destroy();
}

/** RX near the limit (TLS 1.3, rekey possible): the socket asks its peer for a KeyUpdate. */
export async function asksPeerBeforeLimit(t: Test, options: ktls.UpgradeOptions): Promise<void> {
  const [a, b] = await pair13(BigInt(LIMIT - REKEY_MARGIN + 2), { ...options });
  // a is the peer here: whatever its own check does, b must ask; a answers the request.
  const asked = new Promise<boolean>((resolve) =>
    a.on('keyUpdate', (u: { direction: string; requested: boolean }) => u.direction === 'rx' && resolve(u.requested)),
  );
  b.on('data', () => undefined);
  a.resume();
  for (let i = 0; i < 40; i++) a.write('y');
  t.equal(await asked, true, "b's KeyUpdate asked a to update too (update_requested)");
  a.destroy();
  b.destroy();
}

/**
 * No rekey possible (TLS 1.2, or a kernel without rekey): a warning
 * (KTLS_KEY_USAGE) between the two margins, then, at the close margin, a
 * close_notify and ERR_KTLS_KEY_LIMIT.
 */
export async function closesBeforeLimit(t: Test, version: 'TLSv1.2' | 'TLSv1.3', options: ktls.UpgradeOptions): Promise<void> {
  const w = warnings();
  t.teardown(w.stop);
  // The peer is a plain socket that only collects records: only our side counts.
  const withRawPeer = async (seq: number) => {
    const keys = sessionKeys(version, CIPHER, { ab: BigInt(seq) });
    const [c, s] = await loopbackPair();
    const a = await ktls.upgrade(c, keys.a, options);
    const wire: Buffer[] = [];
    s.on('data', (d: Buffer) => wire.push(d));
    const records = (): Array<{ type: number; data: Buffer }> => {
      const opener = new RecordOpener(version, CIPHER, keys.ab);
      opener.push(Buffer.concat(wire));
      return openAll(opener);
    };
    return { a, s, records };
  };
  {
    const { a, s } = await withRawPeer(LIMIT - REKEY_MARGIN + 1);
    a.write('still open');
    for (let i = 0; i < 500 && w.seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    t.ok(w.seen.length >= 1, `a KTLS_KEY_USAGE warning in advance (${w.seen[0] ?? 'none'})`);
    t.equal(a.destroyed, false, 'between the margins: still open');
    a.destroy();
    s.destroy();
  }
  const { a, s, records } = await withRawPeer(LIMIT - CLOSE_MARGIN + 1);
  const err = new Promise<Error & { code?: string }>((resolve) => a.once('error', resolve));
  const closed = new Promise((resolve) => s.once('close', resolve));
  a.write('last');
  t.equal((await err).code, 'ERR_KTLS_KEY_LIMIT', 'at the close margin: ERR_KTLS_KEY_LIMIT');
  await closed;
  const got = records();
  t.same(
    got.map((r) => [r.type, ...r.data].slice(0, 3)),
    [
      [constants().RECORD_APPLICATION_DATA, ...Buffer.from('la')],
      [constants().RECORD_ALERT, 1, 0],
    ],
    'the peer got the data, then a close_notify (a clean end, not a truncation)',
  );
}
