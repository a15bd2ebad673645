// TLS_RX_EXPECT_NO_PAD (kernel 6.0+), on by default for TLS 1.3 under kernel
// RX: a peer that pads its records still gets every byte delivered, and the
// kernel's own counters (/proc/net/tls_stat) show it noticed: one
// TlsRxNoPadViolation and one TlsDecryptRetry per padded record. With the
// option off, or from a peer that does not pad, they do not move.
import t, { type Test } from 'tap';
import * as ktls from '../../lib/index.js';
import { detectDefect } from '../../lib/native/defects.js';
import { capabilities, requireKtls } from '../helpers/kernel.js';
import { paddedRecord } from '../helpers/padded.js';
import { loopbackPair, readBytes, sessionKeys } from '../helpers/pair.js';

const RECORDS = 12;

/** A KtlsSocket reading what a raw peer sends: `RECORDS` records of 1000 bytes, each padded by `pad` bytes. */
async function receive(
  t: Test,
  pad: number,
  options: ktls.UpgradeOptions,
): Promise<{ got: Buffer; sent: Buffer; noPad: boolean; stats: Record<string, number> }> {
  const [raw, other] = await loopbackPair();
  const keys = sessionKeys('TLSv1.3', 'aes-128-gcm');
  const sock = await ktls.upgrade(other, keys.b, options);
  t.equal(sock.kernelDirections.rx, true, 'the kernel opens the records');
  const noPad = sock.offload.rxExpectNoPad;
  const before = (await ktls.stats()).host ?? {};
  const sent = Buffer.concat(Array.from({ length: RECORDS }, (_, i) => Buffer.alloc(1000, 65 + i)));
  const wire = Buffer.concat(Array.from({ length: RECORDS }, (_, i) => paddedRecord(keys.ab, BigInt(i), sent.subarray(i * 1000, (i + 1) * 1000), pad)));
  raw.write(wire);
  const got = await readBytes(sock, sent.length);
  const after = (await ktls.stats()).host ?? {};
  const moved: Record<string, number> = {};
  for (const k of ['TlsRxNoPadViolation', 'TlsDecryptRetry', 'TlsDecryptError']) moved[k] = (after[k] ?? 0) - (before[k] ?? 0);
  sock.destroy();
  raw.destroy();
  return { got, sent, noPad, stats: moved };
}

void t.test('TLS_RX_EXPECT_NO_PAD: on by default where the kernel has it; a padding peer still gets its data through', async (t) => {
  await requireKtls(t);
  const caps = await capabilities();
  const padded = await receive(t, 37, {});
  t.equal(padded.got.equals(padded.sent), true, 'every byte of the padded records arrived, in order');
  t.equal(padded.stats.TlsDecryptError, 0, 'no record failed');
  if (!caps.rxExpectNoPad) {
    t.equal(padded.noPad, false, `this kernel (${caps.kernelRelease}) has no TLS_RX_EXPECT_NO_PAD: offload.rxExpectNoPad is false`);
    return;
  }
  const defect = caps.defects.find((d) => d.id === 'rx-no-pad-retry');
  if (defect) {
    t.equal(padded.noPad, false, `this kernel reads padded records wrong with the option on (${defect.observed}): ktls leaves it off`);
    t.same(padded.stats, { TlsRxNoPadViolation: 0, TlsDecryptRetry: 0, TlsDecryptError: 0 }, 'so no record is decrypted twice');
    t.equal((await detectDefect('rx-no-pad-retry', 'TLSv1.3', 'aes-128-gcm')) !== null, true, 'the detector still sees the defect when asked again');
    return;
  }
  t.equal(padded.noPad, true, 'offload.rxExpectNoPad is on by default (TLS 1.3, kernel RX)');
  t.equal(padded.stats.TlsRxNoPadViolation, RECORDS, 'the kernel counted each padded record as a no-pad violation');
  t.equal(padded.stats.TlsDecryptRetry, RECORDS, 'and decrypted each one again');

  const plain = await receive(t, 0, {});
  t.equal(plain.got.equals(plain.sent), true, 'records without padding arrive');
  t.same(plain.stats, { TlsRxNoPadViolation: 0, TlsDecryptRetry: 0, TlsDecryptError: 0 }, 'and cost no retry');

  const off = await receive(t, 37, { rxExpectNoPad: false });
  t.equal(off.noPad, false, 'rxExpectNoPad: false leaves it off');
  t.equal(off.got.equals(off.sent), true, 'padded records arrive');
  t.same(off.stats, { TlsRxNoPadViolation: 0, TlsDecryptRetry: 0, TlsDecryptError: 0 }, 'with no violation counted');
});

void t.test('TLS 1.2 never sets TLS_RX_EXPECT_NO_PAD (it has no padding)', async (t) => {
  await requireKtls(t);
  const [a, b] = await loopbackPair();
  const keys = sessionKeys('TLSv1.2', 'aes-128-gcm');
  const [x, y] = await Promise.all([ktls.upgrade(a, keys.a), ktls.upgrade(b, keys.b)]);
  t.equal(y.offload.rxExpectNoPad, false);
  x.destroy();
  y.destroy();
});

void t.test('options.rxExpectNoPad must be a boolean', async (t) => {
  const [a, b] = await loopbackPair();
  await t.rejects(ktls.upgrade(a, sessionKeys('TLSv1.3', 'aes-128-gcm').a, { rxExpectNoPad: 1 as unknown as boolean }), { code: 'ERR_INVALID_ARG_TYPE' });
  a.destroy();
  b.destroy();
});
