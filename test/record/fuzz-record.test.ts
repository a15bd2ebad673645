// Fuzzes the userspace record opener with mutated records: it must throw only
// typed record alerts, never hang, and (AEAD) never open a mutated stream to
// anything but the original records, in order. Seeded; see helpers/fuzz.ts.
import t from 'tap';
import { CIPHER_NAMES, VERSIONS, cipherSpec, type CipherName, type TlsVersion } from '../../lib/native/constants.js';
import { KtlsAlertError, KtlsError } from '../../lib/native/errors.js';
import { RecordOpener, RecordSealer, type OpenedRecord } from '../../lib/record/layer.js';
import { FUZZ_SEED, check, envInt, fuzz, mutate, reportRun, tally, type Gen, type RecordShape } from '../helpers/fuzz.js';

const FILE = 'record/fuzz-record.test.js';
const RECORDS = envInt('KTLS_FUZZ_RECORDS', 100_000); // mutated byte strings, over all cells
const MUTANTS_PER_ORIGINAL = 4; // sealing is as costly as opening: each sealed stream is mutated several times
const MAX_PLAINTEXT = 16384;
const U64_END = 1n << 64n;

// What RecordOpener documents it throws for a bad record, per version (TLS 1.2's
// version mismatch is protocol_version, TLS 1.3's decode_error, as the kernel).
const ALERTS: Record<TlsVersion, readonly string[]> = {
  'TLSv1.2': ['bad_record_mac', 'record_overflow', 'unexpected_message', 'protocol_version'],
  'TLSv1.3': ['bad_record_mac', 'record_overflow', 'unexpected_message', 'decode_error'],
};

interface Original {
  type: number;
  data: Buffer;
}

interface Fed {
  opened: OpenedRecord[];
  error: unknown;
}

const describeRecords = (rs: readonly Original[]): string => rs.map((r) => `${r.type}/${r.data.length}B`).join(' ');

function plaintextLength(g: Gen): number {
  return g.weighted<() => number>([
    [2, () => 0],
    [6, () => g.range(1, 64)],
    [4, () => g.range(65, 1500)],
    [1, () => g.range(1501, MAX_PLAINTEXT - 1)],
    [1, () => MAX_PLAINTEXT],
  ])();
}

/** Pushes `bytes` in `chunks`, calling next() after each push until it returns null or throws; bounded. */
function feed(opener: RecordOpener, bytes: Buffer, chunks: readonly number[]): Fed {
  const opened: OpenedRecord[] = [];
  // Every record consumes at least its 5-byte header: more results than that is a loop.
  const bound = Math.floor(bytes.length / 5) + chunks.length + 1;
  let calls = 0;
  let off = 0;
  for (const size of chunks) {
    opener.push(bytes.subarray(off, off + size));
    off += size;
    const needed = opener.needed();
    const buffered = opener.buffered;
    check(Number.isInteger(needed) && needed >= 0 && needed <= 5 + 0xffff, `needed() = ${needed}`);
    check(Number.isInteger(buffered) && buffered >= 0 && buffered <= off, `buffered = ${buffered} after ${off} bytes`);
    for (;;) {
      check(++calls <= bound, `next() was called ${calls} times on ${bytes.length} bytes without settling`);
      let rec: OpenedRecord | null;
      try {
        rec = opener.next();
      } catch (error) {
        return { opened, error };
      }
      if (rec === null) break;
      opened.push(rec);
    }
  }
  return { opened, error: null };
}

function cell(version: TlsVersion, cipher: CipherName, mutants: number, totals: Record<string, number>): void {
  const target = `record/${version}/${cipher}`;
  t.test(`${version} ${cipher}: mutated records fail with a typed record alert or open only to the original records`, async (t) => {
    const spec = cipherSpec(cipher);
    const tls13 = version === 'TLSv1.3';
    const overhead = (tls13 || cipher === 'chacha20-poly1305' ? 0 : spec.ivSize) + spec.tagSize;
    const maxLength = MAX_PLAINTEXT + overhead + (tls13 ? 1 : 0);
    const lengths = [0, 1, overhead - 1, overhead, overhead + 1, maxLength - 1, maxLength, maxLength + 1, MAX_PLAINTEXT + 256, 0xffff];
    const types = tls13 ? [21, 22, 23] : [20, 21, 22, 23];
    const allowed = new Set(ALERTS[version]);
    const counts: Record<string, number> = {};

    const run = await fuzz(FILE, target, Math.ceil(mutants / MUTANTS_PER_ORIGINAL), (g, i) => {
      const count = g.weighted([
        [7, 1],
        [2, 2],
        [1, 3],
      ] as const);
      const seq = g.weighted<() => bigint>([
        [5, () => 0n],
        [2, () => BigInt(g.range(1, 1000))],
        [2, () => g.u64() % (U64_END - BigInt(count))],
        [1, () => U64_END - BigInt(count)], // the last record uses seq 2^64 - 1
      ])();
      const keys = { key: g.bytes(spec.keySize), iv: g.bytes(spec.nonceSize), seq };
      const sealer = new RecordSealer(version, cipher, keys);
      const originals: Original[] = Array.from({ length: count }, () => ({ type: g.pick(types), data: g.bytes(plaintextLength(g)) }));
      const sealed = originals.map((r) => {
        const out = sealer.seal(r.type, r.data);
        check(out.length === 1, `seal(${r.data.length} B) gave ${out.length} records`);
        return out[0];
      });
      const wire = Buffer.concat(sealed);
      const headers = sealed.reduce<number[]>((hs, r, k) => [...hs, k === 0 ? 0 : hs[k - 1] + sealed[k - 1].length], []);
      const shape: RecordShape = { headers, lengths };
      const about = (): string => `seq ${seq}, records ${describeRecords(originals)}, wire ${wire.length} B`;

      // The unmutated stream opens to exactly what was sealed, in any chunking.
      const clean = new RecordOpener(version, cipher, keys);
      const chunks = g.chunking(wire.length);
      const ok = feed(clean, wire, chunks);
      check(ok.error === null, `unmutated records failed: ${String(ok.error)}`, about);
      check(ok.opened.length === count, `unmutated: opened ${ok.opened.length} of ${count}`, about);
      ok.opened.forEach((rec, k) =>
        check(
          rec.type === originals[k].type && rec.data.equals(originals[k].data),
          `unmutated record ${k} opened to type ${rec.type}, ${rec.data.length} B`,
          about,
        ),
      );
      check(clean.needed() === 0 && clean.buffered === 0 && clean.seq === seq + BigInt(count), 'unmutated: bytes or seq left over', about);
      tally(counts, 'originals');
      tally(counts, 'records sealed', count);

      for (let m = 0; m < Math.min(MUTANTS_PER_ORIGINAL, mutants - i * MUTANTS_PER_ORIGINAL); m++) {
        const { bytes, ops } = mutate(g, wire, shape);
        const split = g.chunking(bytes.length);
        const detail = (): string => `${about()}; mutant ${m}: ${ops.join(', ')} -> ${bytes.length} B, chunks ${split.length}`;
        const opener = new RecordOpener(version, cipher, keys);
        const fed = feed(opener, bytes, split);
        tally(counts, 'mutants');

        // Opened records are a prefix of the originals; TLS 1.3 also passes the
        // unprotected compatibility ChangeCipherSpec (14 03 03 00 01 01) through, by design.
        let next = 0;
        for (const rec of fed.opened) {
          if (tls13 && rec.type === 20 && rec.data.length === 1 && rec.data[0] === 1) {
            tally(counts, 'compat CCS passed');
            continue;
          }
          const want = originals[next];
          check(
            want !== undefined && rec.type === want.type && rec.data.equals(want.data),
            `mutant opened record ${next} to type ${rec.type}, ${rec.data.length} B: not the original`,
            detail,
          );
          next++;
        }

        if (bytes.equals(wire)) {
          tally(counts, 'no-op mutants');
          check(fed.error === null && next === count, `a no-op mutant did not open in full (error ${String(fed.error)})`, detail);
          continue;
        }
        if (fed.error === null) {
          tally(counts, next === count ? 'opened in full (bytes after the records)' : next > 0 ? 'opened in part, rest incomplete' : 'incomplete');
          continue;
        }
        const err = fed.error;
        if (err instanceof KtlsAlertError) {
          check(
            err.code === 'ERR_KTLS_BAD_RECORD' && err.local && allowed.has(err.alert),
            `unexpected alert ${err.code}/${err.alert}/local=${err.local}`,
            detail,
          );
          tally(counts, `alert ${err.alert}`);
        } else if (err instanceof KtlsError) {
          check(err.code === 'ERR_KTLS_SEQ_EXHAUSTED' && seq + BigInt(next) === U64_END, `unexpected KtlsError ${err.code}`, detail);
          tally(counts, 'ERR_KTLS_SEQ_EXHAUSTED');
        } else {
          check(false, `next() threw a non-KtlsError: ${(err as Error)?.stack ?? String(err)}`, detail);
        }
        if (next > 0) tally(counts, 'failed after opening some');
        // A failed opener stays failed, with the same error, whatever comes next.
        let again: unknown = null;
        try {
          opener.push(wire);
          opener.next();
        } catch (e) {
          again = e;
        }
        check(again === err, 'the opener did not stay failed with the same error', detail);
      }
    });

    reportRun(t, run, 'every mutant failed with a typed alert, stayed incomplete, or opened only to original records');
    const failed = Object.entries(counts).filter(([k]) => k.startsWith('alert ') || k === 'ERR_KTLS_SEQ_EXHAUSTED');
    t.comment(
      `${target}: ${Object.entries(counts)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
    for (const [k, v] of Object.entries(counts)) tally(totals, `${version} ${k}`, v);
    if (run.failure || process.env.KTLS_FUZZ_ONLY) return;
    t.equal(counts.mutants ?? 0, mutants, 'every mutant was fed to an opener');
    if (mutants >= 1000) t.ok(failed.length > 0, 'mutants do fail (the fuzzer reaches the checks)');
  });
}

// Sized for npm test's 240 s per file (under user-mode-linux too); tap's own default of 30 s is too close.
t.setTimeout(240_000);

const totals: Record<string, number> = {};
const cells = VERSIONS.flatMap((v) => CIPHER_NAMES.map((c) => [v, c] as const));
const started = performance.now();
cells.forEach(([version, cipher], k) => cell(version, cipher, Math.floor(RECORDS / cells.length) + (k < RECORDS % cells.length ? 1 : 0), totals));

t.test('every record alert the opener documents is reached by the mutations', async (t) => {
  t.comment(`${RECORDS} mutated records, seed ${FUZZ_SEED}, ${((performance.now() - started) / 1000).toFixed(1)} s in all`);
  for (const [k, v] of Object.entries(totals)) t.comment(`  ${k}: ${v}`);
  // Only a full-size run is sure to reach each one; a small replay run is not.
  if (RECORDS < 20_000 || process.env.KTLS_FUZZ_ONLY) {
    t.pass(`coverage of every alert is checked on runs of 20000 records or more, not on this one (${RECORDS})`);
    return;
  }
  for (const version of VERSIONS) for (const alert of ALERTS[version]) t.ok((totals[`${version} alert ${alert}`] ?? 0) > 0, `${version}: ${alert}`);
});
