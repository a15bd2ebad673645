// The userspace record layer: RFC 8448 known answers, hand-built TLS 1.2
// records, and round trips / failures for every version x cipher.
import * as crypto from 'node:crypto';
import t from 'tap';
import { loadBinding } from '../../lib/native/binding.js';
import { CIPHER_NAMES, VERSIONS, cipherSpec, type CipherName } from '../../lib/native/constants.js';
import { RecordOpener, RecordSealer, type DirectionKeys } from '../../lib/record/layer.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const U64 = (1n << 64n) - 1n;

// ---- RFC 8448 §3 "Simple 1-RTT Handshake" (TLS_AES_128_GCM_SHA256) ----
const SERVER_HS = { key: hex('3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc'), iv: hex('5d 31 3e b2 67 12 76 ee 13 00 0b 30') };
const CLIENT_HS = { key: hex('db fa a6 93 d1 76 2c 5b 66 6a f5 d9 50 25 8d 01'), iv: hex('5b d3 c7 1b 83 6e 0b 76 bb 73 26 5f') };
const SERVER_AP = { key: hex('9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56'), iv: hex('cf 78 2b 88 dd 83 54 9a ad f1 e9 84') };
const CLIENT_AP = { key: hex('17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51'), iv: hex('5b 78 92 3d ee 08 57 90 33 e5 23 d9') };

const ENCRYPTED_EXTENSIONS = hex(`08 00 00 24 00 22 00 0a 00 14 00 12 00 1d 00 17 00 18 00 19 01 00 01 01 01 02 01 03 01 04 00 1c
  00 02 40 01 00 00 00 00`);
const CERTIFICATE = hex(`0b 00 01 b9 00 00 01 b5 00 01 b0 30 82
  01 ac 30 82 01 15 a0 03 02 01 02 02 01 02 30 0d 06 09 2a 86 48 86 f7 0d 01 01 0b 05 00 30 0e 31 0c 30 0a 06 03 55 04 03 13 03
  72 73 61 30 1e 17 0d 31 36 30 37 33 30 30 31 32 33 35 39 5a 17 0d 32 36 30 37 33 30 30 31 32 33 35 39 5a 30 0e 31 0c 30 0a 06
  03 55 04 03 13 03 72 73 61 30 81 9f 30 0d 06 09 2a 86 48 86 f7 0d 01 01 01 05 00 03 81 8d 00 30 81 89 02 81 81 00 b4 bb 49 8f
  82 79 30 3d 98 08 36 39 9b 36 c6 98 8c 0c 68 de 55 e1 bd b8 26 d3 90 1a 24 61 ea fd 2d e4 9a 91 d0 15 ab bc 9a 95 13 7a ce 6c
  1a f1 9e aa 6a f9 8c 7c ed 43 12 09 98 e1 87 a8 0e e0 cc b0 52 4b 1b 01 8c 3e 0b 63 26 4d 44 9a 6d 38 e2 2a 5f da 43 08 46 74
  80 30 53 0e f0 46 1c 8c a9 d9 ef bf ae 8e a6 d1 d0 3e 2b d1 93 ef f0 ab 9a 80 02 c4 74 28 a6 d3 5a 8d 88 d7 9f 7f 1e 3f 02 03
  01 00 01 a3 1a 30 18 30 09 06 03 55 1d 13 04 02 30 00 30 0b 06 03 55 1d 0f 04 04 03 02 05 a0 30 0d 06 09 2a 86 48 86 f7 0d 01
  01 0b 05 00 03 81 81 00 85 aa d2 a0 e5 b9 27 6b 90 8c 65 f7 3a 72 67 17 06 18 a5 4c 5f 8a 7b 33 7d 2d f7 a5 94 36 54 17 f2 ea
  e8 f8 a5 8c 8f 81 72 f9 31 9c f3 6b 7f d6 c5 5b 80 f2 1a 03 01 51 56 72 60 96 fd 33 5e 5e 67 f2 db f1 02 70 2e 60 8c ca e6 be
  c1 fc 63 a4 2a 99 be 5c 3e b7 10 7c 3c 54 e9 b9 eb 2b d5 20 3b 1c 3b 84 e0 a8 b2 f7 59 40 9b a3 ea c9 d9 1d 40 2d cc 0c c8 f8
  96 12 29 ac 91 87 b4 2b 4d e1 00 00`);
const CERTIFICATE_VERIFY = hex(`0f 00 00 84 08 04 00 80 5a 74 7c
  5d 88 fa 9b d2 e5 5a b0 85 a6 10 15 b7 21 1f 82 4c d4 84 14 5a b3 ff 52 f1 fd a8 47 7b 0b 7a bc 90 db 78 e2 d3 3a 5c 14 1a 07
  86 53 fa 6b ef 78 0c 5e a2 48 ee aa a7 85 c4 f3 94 ca b6 d3 0b be 8d 48 59 ee 51 1f 60 29 57 b1 54 11 ac 02 76 71 45 9e 46 44
  5c 9e a5 8c 18 1e 81 8e 95 b8 c3 fb 0b f3 27 84 09 d3 be 15 2a 3d a5 04 3e 06 3d da 65 cd f5 ae a2 0d 53 df ac d4 2f 74 f3`);
const SERVER_FINISHED = hex('14 00 00 20 9b 9b 14 1d 90 63 37 fb d2 cb dc e7 1d f4 de da 4a b4 2c 30 95 72 cb 7f ff ee 54 54 b7 8f 07 18');
const CLIENT_FINISHED = hex('14 00 00 20 a8 ec 43 6d 67 76 34 ae 52 5a c1 fc eb e1 1a 03 9e c1 76 94 fa c6 e9 85 27 b6 42 f2 ed d5 ce 61');
const APP_PAYLOAD = Buffer.from(Array.from({ length: 50 }, (_, i) => i)); // 00 01 .. 31
const CLOSE_NOTIFY = hex('01 00');

// {server} send handshake record: complete record (679 octets)
const SERVER_FLIGHT_RECORD = hex(`17 03 03 02 a2 d1 ff 33 4a 56 f5 bf f6 59 4a 07 cc 87 b5 80 23 3f 50 0f
  45 e4 89 e7 f3 3a f3 5e df 78 69 fc f4 0a a4 0a a2 b8 ea 73 f8 48 a7 ca 07 61 2e f9 f9 45 cb 96 0b 40 68 90 51 23 ea 78 b1 11 b4 29 ba 91 91 cd
  05 d2 a3 89 28 0f 52 61 34 aa dc 7f c7 8c 4b 72 9d f8 28 b5 ec f7 b1 3b d9 ae fb 0e 57 f2 71 58 5b 8e a9 bb 35 5c 7c 79 02 07 16 cf b9 b1 18 3e
  f3 ab 20 e3 7d 57 a6 b9 d7 47 76 09 ae e6 e1 22 a4 cf 51 42 73 25 25 0c 7d 0e 50 92 89 44 4c 9b 3a 64 8f 1d 71 03 5d 2e d6 5b 0e 3c dd 0c ba e8
  bf 2d 0b 22 78 12 cb b3 60 98 72 55 cc 74 41 10 c4 53 ba a4 fc d6 10 92 8d 80 98 10 e4 b7 ed 1a 8f d9 91 f0 6a a6 24 82 04 79 7e 36 a6 a7 3b 70
  a2 55 9c 09 ea d6 86 94 5b a2 46 ab 66 e5 ed d8 04 4b 4c 6d e3 fc f2 a8 94 41 ac 66 27 2f d8 fb 33 0e f8 19 05 79 b3 68 45 96 c9 60 bd 59 6e ea
  52 0a 56 a8 d6 50 f5 63 aa d2 74 09 96 0d ca 63 d3 e6 88 61 1e a5 e2 2f 44 15 cf 95 38 d5 1a 20 0c 27 03 42 72 96 8a 26 4e d6 54 0c 84 83 8d 89
  f7 2c 24 46 1a ad 6d 26 f5 9e ca ba 9a cb bb 31 7b 66 d9 02 f4 f2 92 a3 6a c1 b6 39 c6 37 ce 34 31 17 b6 59 62 22 45 31 7b 49 ee da 0c 62 58 f1
  00 d7 d9 61 ff b1 38 64 7e 92 ea 33 0f ae ea 6d fa 31 c7 a8 4d c3 bd 7e 1b 7a 6c 71 78 af 36 87 90 18 e3 f2 52 10 7f 24 3d 24 3d c7 33 9d 56 84
  c8 b0 37 8b f3 02 44 da 8c 87 c8 43 f5 e5 6e b4 c5 e8 28 0a 2b 48 05 2c f9 3b 16 49 9a 66 db 7c ca 71 e4 59 94 26 f7 d4 61 e6 6f 99 88 2b d8 9f
  c5 08 00 be cc a6 2d 6c 74 11 6d bd 29 72 fd a1 fa 80 f8 5d f8 81 ed be 5a 37 66 89 36 b3 35 58 3b 59 91 86 dc 5c 69 18 a3 96 fa 48 a1 81 d6 b6
  fa 4f 9d 62 d5 13 af bb 99 2f 2b 99 2f 67 f8 af e6 7f 76 91 3f a3 88 cb 56 30 c8 ca 01 e0 c6 5d 11 c6 6a 1e 2a c4 c8 59 77 b7 c7 a6 99 9b bf 10
  dc 35 ae 69 f5 51 56 14 63 6c 0b 9b 68 c1 9e d2 e3 1c 0b 3b 66 76 30 38 eb ba 42 f3 b3 8e dc 03 99 f3 a9 f2 3f aa 63 97 8c 31 7f c9 fa 66 a7 3f
  60 f0 50 4d e9 3b 5b 84 5e 27 55 92 c1 23 35 ee 34 0b bc 4f dd d5 02 78 40 16 e4 b3 be 7e f0 4d da 49 f4 b4 40 a3 0c b5 d2 af 93 98 28 fd 4a e3
  79 4e 44 f9 4d f5 a6 31 ed e4 2c 17 19 bf da bf 02 53 fe 51 75 be 89 8e 75 0e dc 53 37 0d 2b`);
// {client} send handshake record: complete record (58 octets), the client Finished
const CLIENT_FINISHED_RECORD = hex(`17 03 03 00 35 75 ec 4d c2 38 cc e6 0b 29 80 44 a7 1e 21 9c 56 cc 77 b0
  51 7f e9 b9 3c 7a 4b fc 44 d8 7f 38 f8 03 38 ac 98 fc 46 de b3 84 bd 1c ae ac ab 68 67 d7 26 c4 05 46`);
// {server} send handshake record: complete record (227 octets), the NewSessionTicket (seq 0 of the server's application keys)
const SERVER_TICKET_RECORD = hex(`17 03 03 00 de 3a 6b 8f 90 41 4a 97 d6 95 9c 34 87 68 0d e5 13 4a 2b 24
  0e 6c ff ac 11 6e 95 d4 1d 6a f8 f6 b5 80 dc f3 d1 1d 63 c7 58 db 28 9a 01 59 40 25 2f 55 71 3e 06 1d c1 3e 07 88 91 a3 8e fb cf 57 53 ad 8e f1
  70 ad 3c 73 53 d1 6d 9d a7 73 b9 ca 7f 2b 9f a1 b6 c0 d4 a3 d0 3f 75 e0 9c 30 ba 1e 62 97 2a c4 6f 75 f7 b9 81 be 63 43 9b 29 99 ce 13 06 46 15
  13 98 91 d5 e4 c5 b4 06 f1 6e 3f c1 81 a7 7c a4 75 84 00 25 db 2f 0a 77 f8 1b 5a b0 5b 94 c0 13 46 75 5f 69 23 2c 86 51 9d 86 cb ee ac 87 aa c3
  47 d1 43 f9 60 5d 64 f6 50 db 4d 02 3e 70 e9 52 ca 49 fe 51 37 12 1c 74 bc 26 97 68 7e 24 87 46 d6 df 35 30 05 f3 bc e1 86 96 12 9c 81 53 55 6b
  3b 6c 67 79 b3 7b f1 59 85 68 4f`);
const CLIENT_APP_RECORD = hex(`17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe 82 28 ba 55 cb ef ac ea
  42 f9 14 aa 66 bc ab 3f 2b 98 19 a8 a5 b4 6b 39 5b d5 4a 9a 20 44 1e 2b 62 97 4e 1f 5a 62 92 a2 97 70 14 bd 1e 3d ea e6 3a ee bb 21 69 49 15 e4`);
const SERVER_APP_RECORD = hex(`17 03 03 00 43 2e 93 7e 11 ef 4a c7 40 e5 38 ad 36 00 5f c4 a4 69 32 fc
  32 25 d0 5f 82 aa 1b 36 e3 0e fa f9 7d 90 e6 df fc 60 2d cb 50 1a 59 a8 fc c4 9c 4b f2 e5 f0 a2 1c 00 47 c2 ab f3 32 54 0d d0 32 e1 67 c2 95 5d`);
const CLIENT_ALERT_RECORD = hex('17 03 03 00 13 c9 87 27 60 65 56 66 b7 4d 7f f1 15 3e fd 6d b6 d0 b0 e3');
const SERVER_ALERT_RECORD = hex('17 03 03 00 13 b5 8f d6 71 66 eb f5 99 d2 47 20 cf be 7e fa 7a 88 64 a9');

// ---- independent reference built on node:crypto directly ----
function aeadSeal(cipher: CipherName, key: Buffer, nonce: Buffer, aad: Buffer, plaintext: Buffer): Buffer {
  const opts = { authTagLength: 16 };
  const c =
    cipher === 'aes-128-ccm'
      ? crypto.createCipheriv(cipher, key, nonce, opts)
      : cipher === 'chacha20-poly1305'
        ? crypto.createCipheriv(cipher, key, nonce, opts)
        : crypto.createCipheriv(cipher, key, nonce, opts);
  c.setAAD(aad, { plaintextLength: plaintext.length });
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

function seqXorIv(iv: Buffer, seq: bigint): Buffer {
  const n = Buffer.from(iv);
  const s = Buffer.alloc(8);
  s.writeBigUInt64BE(seq);
  for (let i = 0; i < 8; i++) n[4 + i] ^= s[i];
  return n;
}

/** A TLS 1.3 record with arbitrary inner plaintext (content || type || padding). */
function tls13Record(cipher: CipherName, keys: DirectionKeys, inner: Buffer): Buffer {
  const header = Buffer.from([23, 3, 3, (inner.length + 16) >> 8, (inner.length + 16) & 0xff]);
  return Buffer.concat([header, aeadSeal(cipher, keys.key, seqXorIv(keys.iv, keys.seq), header, inner)]);
}

function keysFor(cipher: CipherName, seq = 0n): DirectionKeys {
  return { key: crypto.randomBytes(cipherSpec(cipher).keySize), iv: crypto.randomBytes(12), seq };
}

function openAll(opener: RecordOpener): { type: number; data: Buffer }[] {
  const out = [];
  for (let r = opener.next(); r !== null; r = opener.next()) out.push(r);
  return out;
}

const available = loadBinding().binding !== null;
if (!available) t.plan(0, 'the ktls addon (which names the cipher sizes) is not loadable here');

const VECTORS: { name: string; keys: { key: Buffer; iv: Buffer }; seq: bigint; record: Buffer; type: number; data: Buffer }[] = [
  {
    name: 'server handshake flight',
    keys: SERVER_HS,
    seq: 0n,
    record: SERVER_FLIGHT_RECORD,
    type: 22,
    data: Buffer.concat([ENCRYPTED_EXTENSIONS, CERTIFICATE, CERTIFICATE_VERIFY, SERVER_FINISHED]),
  },
  { name: 'client Finished', keys: CLIENT_HS, seq: 0n, record: CLIENT_FINISHED_RECORD, type: 22, data: CLIENT_FINISHED },
  { name: 'client application data', keys: CLIENT_AP, seq: 0n, record: CLIENT_APP_RECORD, type: 23, data: APP_PAYLOAD },
  { name: 'client close_notify', keys: CLIENT_AP, seq: 1n, record: CLIENT_ALERT_RECORD, type: 21, data: CLOSE_NOTIFY },
  { name: 'server application data', keys: SERVER_AP, seq: 1n, record: SERVER_APP_RECORD, type: 23, data: APP_PAYLOAD },
  { name: 'server close_notify', keys: SERVER_AP, seq: 2n, record: SERVER_ALERT_RECORD, type: 21, data: CLOSE_NOTIFY },
];

if (available) {
  t.test('RFC 8448 §3 records open to the trace plaintext and reseal to the exact bytes', async (t) => {
    for (const v of VECTORS) {
      const keys = { ...v.keys, seq: v.seq };
      const opener = new RecordOpener('TLSv1.3', 'aes-128-gcm', keys);
      opener.push(v.record);
      const rec = opener.next();
      t.same(rec && { type: rec.type, data: rec.data.toString('hex') }, { type: v.type, data: v.data.toString('hex') }, `${v.name}: plaintext`);
      t.equal(opener.seq, v.seq + 1n, `${v.name}: seq advanced`);
      const sealed = new RecordSealer('TLSv1.3', 'aes-128-gcm', keys).seal(v.type, v.data);
      t.equal(sealed.length, 1);
      t.equal(sealed[0].toString('hex'), v.record.toString('hex'), `${v.name}: sealer reproduces the record`);
    }
  });

  t.test('RFC 8448 server application stream opens in order from one buffer', async (t) => {
    const opener = new RecordOpener('TLSv1.3', 'aes-128-gcm', { ...SERVER_AP, seq: 0n });
    opener.push(Buffer.concat([SERVER_TICKET_RECORD, SERVER_APP_RECORD, SERVER_ALERT_RECORD]));
    const recs = openAll(opener);
    t.same(
      recs.map((r) => r.type),
      [22, 23, 21],
    );
    t.equal(recs[0].data[0], 4, 'NewSessionTicket handshake message');
    t.equal(recs[0].data.length, SERVER_TICKET_RECORD.length - 5 - 16 - 1);
    t.ok(recs[1].data.equals(APP_PAYLOAD));
    t.equal(opener.seq, 3n);
    t.equal(opener.buffered, 0);
    const sealer = new RecordSealer('TLSv1.3', 'aes-128-gcm', { ...SERVER_AP, seq: 0n });
    const again = recs.flatMap((r) => sealer.seal(r.type, r.data));
    t.ok(Buffer.concat(again).equals(Buffer.concat([SERVER_TICKET_RECORD, SERVER_APP_RECORD, SERVER_ALERT_RECORD])));
  });

  t.test('TLS 1.2 AES-GCM/CCM records carry the kernel explicit nonce (iv[4..12] + k), not seq', async (t) => {
    for (const cipher of ['aes-128-gcm', 'aes-256-gcm', 'aes-128-ccm'] as const) {
      const key = crypto.randomBytes(cipherSpec(cipher).keySize);
      const iv = hex('a1a2a3a4 0000000000000abc');
      const seq = 7n;
      const sealer = new RecordSealer('TLSv1.2', cipher, { key, iv, seq });
      const recs = [...sealer.seal(23, Buffer.from('first')), ...sealer.seal(21, Buffer.from([1, 0]))];
      const expect = (i: number, type: number, data: Buffer): Buffer => {
        const explicit = hex('0000000000000abc');
        explicit.writeBigUInt64BE(0xabcn + BigInt(i));
        const aad = Buffer.alloc(13);
        aad.writeBigUInt64BE(seq + BigInt(i));
        aad.writeUInt8(type, 8);
        aad.writeUInt16BE(0x0303, 9);
        aad.writeUInt16BE(data.length, 11);
        const body = aeadSeal(cipher, key, Buffer.concat([iv.subarray(0, 4), explicit]), aad, data);
        const header = Buffer.from([type, 3, 3, 0, 8 + body.length]);
        return Buffer.concat([header, explicit, body]);
      };
      t.equal(recs[0].toString('hex'), expect(0, 23, Buffer.from('first')).toString('hex'), `${cipher}: first record`);
      t.equal(recs[1].toString('hex'), expect(1, 21, Buffer.from([1, 0])).toString('hex'), `${cipher}: second record`);
      const opener = new RecordOpener('TLSv1.2', cipher, { key, iv, seq });
      opener.push(Buffer.concat(recs));
      t.same(
        openAll(opener).map((r) => [r.type, r.data.toString()]),
        [
          [23, 'first'],
          [21, '\x01\x00'],
        ],
      );
    }
  });

  t.test('TLS 1.2 explicit nonce wraps at 2^64 independently of seq', async (t) => {
    const keys = { key: crypto.randomBytes(16), iv: hex('01020304 ffffffffffffffff'), seq: 0n };
    const recs = new RecordSealer('TLSv1.2', 'aes-128-gcm', keys).seal(23, Buffer.alloc(3), 1);
    t.same(
      recs.map((r) => r.subarray(5, 13).toString('hex')),
      ['ffffffffffffffff', '0000000000000000', '0000000000000001'],
    );
    const opener = new RecordOpener('TLSv1.2', 'aes-128-gcm', keys);
    opener.push(Buffer.concat(recs));
    t.equal(openAll(opener).length, 3);
  });

  t.test('TLS 1.2 ChaCha20-Poly1305 has no explicit nonce and uses iv XOR seq', async (t) => {
    const keys = keysFor('chacha20-poly1305', 0x0102030405060708n);
    const data = Buffer.from('hello chacha');
    const [rec] = new RecordSealer('TLSv1.2', 'chacha20-poly1305', keys).seal(23, data);
    const aad = Buffer.concat([hex('0102030405060708'), Buffer.from([23, 3, 3, 0, data.length])]);
    const body = aeadSeal('chacha20-poly1305', keys.key, seqXorIv(keys.iv, keys.seq), aad, data);
    t.equal(rec.toString('hex'), Buffer.concat([Buffer.from([23, 3, 3, 0, body.length]), body]).toString('hex'));
  });

  for (const version of VERSIONS) {
    for (const cipher of CIPHER_NAMES) {
      t.test(`${version} ${cipher}`, async (t) => {
        const overhead = version === 'TLSv1.3' ? 17 : cipher === 'chacha20-poly1305' ? 16 : 24;

        t.test('round-trips 0 B, 1 B, 16384 B, 16385 B and 1 MiB', async (t) => {
          const keys = keysFor(cipher, 3n);
          const sealer = new RecordSealer(version, cipher, keys);
          const opener = new RecordOpener(version, cipher, keys);
          for (const [size, count] of [
            [0, 1],
            [1, 1],
            [16384, 1],
            [16385, 2],
            [1 << 20, 64],
          ]) {
            const data = crypto.randomBytes(size);
            const recs = sealer.seal(23, data);
            t.equal(recs.length, count, `${size} B -> ${count} record(s)`);
            t.ok(
              recs.every((r) => r.length - 5 === r.readUInt16BE(3) && r.length <= 5 + 16384 + overhead),
              'lengths consistent and within limit',
            );
            opener.push(Buffer.concat(recs));
            const out = openAll(opener);
            t.ok(out.every((r) => r.type === 23));
            t.ok(Buffer.concat(out.map((r) => r.data)).equals(data), `${size} B round-trip`);
          }
          t.equal(sealer.seq, 3n + 69n);
          t.equal(opener.seq, sealer.seq);
        });

        t.test('opens records pushed one byte at a time and in odd chunks', async (t) => {
          const keys = keysFor(cipher);
          const sealer = new RecordSealer(version, cipher, keys);
          const recs = [...sealer.seal(22, Buffer.from('handshake bytes')), ...sealer.seal(23, crypto.randomBytes(3000))];
          const wire = Buffer.concat(recs);
          const opener = new RecordOpener(version, cipher, keys);
          const got: number[] = [];
          for (let i = 0; i < recs[0].length; i++) {
            t.equal(opener.next(), null);
            opener.push(wire.subarray(i, i + 1));
          }
          for (let i = recs[0].length, step = 1; i < wire.length; i += step, step = step * 3 + 1) {
            for (let r = opener.next(); r !== null; r = opener.next()) got.push(r.type);
            opener.push(wire.subarray(i, i + step));
          }
          for (let r = opener.next(); r !== null; r = opener.next()) got.push(r.type);
          t.same(got, [22, 23]);
          t.equal(opener.buffered, 0);
        });

        t.test('needed() and buffered at boundaries, mid-header and mid-body', async (t) => {
          const keys = keysFor(cipher);
          const [rec] = new RecordSealer(version, cipher, keys).seal(23, Buffer.alloc(100, 1));
          const opener = new RecordOpener(version, cipher, keys);
          t.same([opener.needed(), opener.buffered], [0, 0], 'empty');
          opener.push(rec.subarray(0, 2));
          t.same([opener.needed(), opener.buffered], [3, 2], 'mid-header');
          opener.push(rec.subarray(2, 5));
          t.same([opener.needed(), opener.buffered], [rec.length - 5, 5], 'header complete');
          opener.push(rec.subarray(5, 50));
          t.same([opener.needed(), opener.buffered], [rec.length - 50, 50], 'mid-body');
          t.equal(opener.next(), null);
          opener.push(rec.subarray(50));
          t.same([opener.needed(), opener.buffered], [0, 0], 'a complete record held is at a boundary');
          opener.push(rec.subarray(0, 2));
          t.same([opener.needed(), opener.buffered], [3, 2], 'past a complete record, the next header started');
          opener.push(rec.subarray(2, 7));
          t.same([opener.needed(), opener.buffered], [rec.length - 7, 7], 'past a complete record, mid-body');
          t.equal(opener.next()?.data.length, 100);
          t.same([opener.needed(), opener.buffered], [rec.length - 7, 7], 'the same once the first is opened');
          t.equal(opener.next(), null);
        });

        t.test('a flipped ciphertext bit fails with bad_record_mac and the opener stays failed', async (t) => {
          const keys = keysFor(cipher);
          const [good, next] = new RecordSealer(version, cipher, keys).seal(23, Buffer.alloc(40, 7), 20);
          const bad = Buffer.from(good);
          bad[bad.length - 20] ^= 0x10;
          const opener = new RecordOpener(version, cipher, keys);
          opener.push(Buffer.concat([bad, next]));
          const want = { code: 'ERR_KTLS_BAD_RECORD', alert: 'bad_record_mac', local: true };
          t.throws(() => opener.next(), want);
          t.throws(() => opener.next(), want, 'still failed');
          opener.push(good);
          t.throws(() => opener.next(), want, 'still failed after more bytes');
          t.equal(opener.seq, 0n);
        });

        t.test('an empty record with a forged tag fails with bad_record_mac', async (t) => {
          // OpenSSL CCM accepts any tag for an empty payload passed as a NULL pointer.
          const keys = keysFor(cipher);
          const [rec] = new RecordSealer(version, cipher, keys).seal(23, Buffer.alloc(0));
          const forged = Buffer.from(rec);
          forged[forged.length - 1] ^= 1;
          const opener = new RecordOpener(version, cipher, keys);
          opener.push(forged);
          t.throws(() => opener.next(), { code: 'ERR_KTLS_BAD_RECORD', alert: 'bad_record_mac' });
        });

        t.test('a wrong seq fails with bad_record_mac', async (t) => {
          const keys = keysFor(cipher, 10n);
          const [rec] = new RecordSealer(version, cipher, keys).seal(23, Buffer.from('x'));
          const opener = new RecordOpener(version, cipher, { ...keys, seq: 11n });
          opener.push(rec);
          t.throws(() => opener.next(), { code: 'ERR_KTLS_BAD_RECORD', alert: 'bad_record_mac' });
        });

        t.test('starting at seq 2^48+5 works', async (t) => {
          const keys = keysFor(cipher, (1n << 48n) + 5n);
          const sealer = new RecordSealer(version, cipher, keys);
          const opener = new RecordOpener(version, cipher, keys);
          opener.push(Buffer.concat(sealer.seal(21, Buffer.from([1, 0]))));
          t.same(opener.next(), { type: 21, data: Buffer.from([1, 0]) });
          t.equal(opener.seq, (1n << 48n) + 6n);
          t.equal(sealer.seq, opener.seq);
        });

        t.test('a record longer than 2^14 plaintext bytes plus overhead is record_overflow', async (t) => {
          const opener = new RecordOpener(version, cipher, keysFor(cipher));
          opener.push(Buffer.from([23, 3, 3, (16384 + overhead + 1) >> 8, (16384 + overhead + 1) & 0xff]));
          t.throws(() => opener.next(), { code: 'ERR_KTLS_BAD_RECORD', alert: 'record_overflow' }, 'as soon as the header is in');
          const past = new RecordOpener(version, cipher, keysFor(cipher));
          past.push(Buffer.from([23, 3, 3, 0x41, 0x01])); // 2^14 + 257
          t.throws(() => past.next(), { code: 'ERR_KTLS_BAD_RECORD', alert: 'record_overflow' });
        });

        t.test('sequence exhaustion at 2^64 is ERR_KTLS_SEQ_EXHAUSTED', async (t) => {
          const keys = keysFor(cipher, U64);
          const sealer = new RecordSealer(version, cipher, keys);
          t.throws(() => sealer.seal(23, Buffer.alloc(2), 1), { code: 'ERR_KTLS_SEQ_EXHAUSTED' }, 'two records do not fit');
          t.equal(sealer.seq, U64, 'nothing sealed');
          const [last] = sealer.seal(23, Buffer.from('last'));
          t.throws(() => sealer.seal(23, Buffer.from('more')), { code: 'ERR_KTLS_SEQ_EXHAUSTED' });
          const opener = new RecordOpener(version, cipher, keys);
          opener.push(Buffer.concat([last, last]));
          t.equal(opener.next()?.data.toString(), 'last');
          t.throws(() => opener.next(), { code: 'ERR_KTLS_SEQ_EXHAUSTED' });
        });

        t.test('bad key, iv and seq are rejected with ERR_INVALID_ARG_VALUE', async (t) => {
          const good = keysFor(cipher);
          const size = cipherSpec(cipher).keySize;
          for (const C of [RecordSealer, RecordOpener]) {
            t.throws(() => new C(version, cipher, { ...good, key: Buffer.alloc(size - 1) }), { name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE' });
            t.throws(() => new C(version, cipher, { ...good, key: Buffer.alloc(size + 16) }), { name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE' });
            t.throws(() => new C(version, cipher, { ...good, iv: Buffer.alloc(8) }), { name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE' });
            t.throws(() => new C(version, cipher, { ...good, seq: -1n }), { name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE' });
            t.throws(() => new C(version, cipher, { ...good, seq: 1n << 64n }), { name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE' });
          }
        });
      });
    }
  }

  t.test('the key-size error names the expected size', async (t) => {
    t.throws(() => new RecordSealer('TLSv1.3', 'aes-128-gcm', { key: Buffer.alloc(15), iv: Buffer.alloc(12), seq: 0n }), {
      code: 'ERR_INVALID_ARG_VALUE',
      message: /16-byte Buffer for key but received 15 bytes/,
    });
  });

  t.test('TLS 1.3 opener strips zero padding and takes the last non-zero byte as the type', async (t) => {
    for (const cipher of CIPHER_NAMES) {
      const keys = keysFor(cipher, 5n);
      const opener = new RecordOpener('TLSv1.3', cipher, keys);
      opener.push(tls13Record(cipher, keys, Buffer.concat([Buffer.from('padded\0'), Buffer.from([22]), Buffer.alloc(300)])));
      opener.push(tls13Record(cipher, { ...keys, seq: 6n }, Buffer.from([21, ...Buffer.alloc(16384)])));
      t.same(
        openAll(opener),
        [
          { type: 22, data: Buffer.from('padded\0') },
          { type: 21, data: Buffer.alloc(0) },
        ],
        cipher,
      );
    }
  });

  t.test('TLS 1.3 all-zero inner plaintext is unexpected_message', async (t) => {
    const keys = keysFor('aes-128-gcm');
    const opener = new RecordOpener('TLSv1.3', 'aes-128-gcm', keys);
    opener.push(tls13Record('aes-128-gcm', keys, Buffer.alloc(32)));
    t.throws(() => opener.next(), { code: 'ERR_KTLS_BAD_RECORD', alert: 'unexpected_message' });
  });

  t.test('TLS 1.3 inner plaintext over 2^14 + 1 bytes is record_overflow', async (t) => {
    const keys = keysFor('aes-256-gcm');
    const opener = new RecordOpener('TLSv1.3', 'aes-256-gcm', keys);
    opener.push(tls13Record('aes-256-gcm', keys, Buffer.concat([Buffer.alloc(16384, 1), Buffer.from([23, 0])])));
    t.throws(() => opener.next(), { code: 'ERR_KTLS_BAD_RECORD', alert: 'record_overflow' });
  });

  t.test('TLS 1.3 passes the compatibility ChangeCipherSpec through and rejects other plaintext records', async (t) => {
    const keys = keysFor('aes-128-gcm');
    const [rec] = new RecordSealer('TLSv1.3', 'aes-128-gcm', keys).seal(23, Buffer.from('after ccs'));
    const opener = new RecordOpener('TLSv1.3', 'aes-128-gcm', keys);
    opener.push(Buffer.concat([hex('14 03 03 00 01 01'), rec]));
    t.same(openAll(opener), [
      { type: 20, data: Buffer.from([1]) },
      { type: 23, data: Buffer.from('after ccs') },
    ]);
    t.equal(opener.seq, 1n, 'the CCS does not use a sequence number');
    for (const bad of ['14 03 03 00 01 02', '14 03 03 00 02 01 01', '16 03 03 00 20']) {
      const o = new RecordOpener('TLSv1.3', 'aes-128-gcm', keys);
      o.push(hex(bad).length > 5 ? hex(bad) : Buffer.concat([hex(bad), Buffer.alloc(32)]));
      t.throws(() => o.next(), { code: 'ERR_KTLS_BAD_RECORD', alert: 'unexpected_message' }, bad);
    }
  });

  t.test('records shorter than the AEAD overhead fail with bad_record_mac', async (t) => {
    const opener = new RecordOpener('TLSv1.2', 'aes-128-gcm', keysFor('aes-128-gcm'));
    opener.push(hex('17 03 03 00 08 de ad be ef ba ad f0 0d'));
    t.throws(() => opener.next(), { code: 'ERR_KTLS_BAD_RECORD', alert: 'bad_record_mac' });
  });

  t.test('seal honours maxPlaintext and validates its arguments', async (t) => {
    const sealer = new RecordSealer('TLSv1.3', 'chacha20-poly1305', keysFor('chacha20-poly1305'));
    t.same(
      sealer.seal(23, Buffer.alloc(10), 4).map((r) => r.length),
      [5 + 4 + 17, 5 + 4 + 17, 5 + 2 + 17],
    );
    t.throws(() => sealer.seal(23, Buffer.alloc(1), 0), { code: 'ERR_INVALID_ARG_VALUE' });
    t.throws(() => sealer.seal(23, Buffer.alloc(1), 16385), { code: 'ERR_INVALID_ARG_VALUE' });
    t.throws(() => sealer.seal(24, Buffer.alloc(1)), { code: 'ERR_INVALID_ARG_VALUE' });
    t.throws(() => sealer.seal(20, Buffer.from([1])), { code: 'ERR_INVALID_ARG_VALUE' }, 'TLS 1.3 never protects a CCS');
    t.equal(sealer.seq, 3n);
  });

  t.test('the sealer keeps its own copy of the keys and refuses to work once wiped', async (t) => {
    const keys = keysFor('aes-128-gcm');
    const original = { key: Buffer.from(keys.key), iv: Buffer.from(keys.iv), seq: 0n };
    const sealer = new RecordSealer('TLSv1.3', 'aes-128-gcm', keys);
    keys.key.fill(0);
    keys.iv.fill(0);
    const opener = new RecordOpener('TLSv1.3', 'aes-128-gcm', original);
    opener.push(sealer.seal(23, Buffer.from('still works'))[0]);
    t.equal(opener.next()?.data.toString(), 'still works');
    sealer.wipe();
    opener.wipe();
    t.throws(() => sealer.seal(23, Buffer.from('x')), { code: 'ERR_KTLS_WIPED' });
    t.throws(() => opener.next(), { code: 'ERR_KTLS_WIPED' });
    t.equal(opener.buffered, 0);
  });
}
