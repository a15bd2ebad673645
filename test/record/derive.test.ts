// Key derivations against published vectors: RFC 8448 §3 (TLS 1.3) and the
// IETF TLS WG's TLS 1.2 PRF (SHA-256) vector.
import t from 'tap';
import { hkdfExpandLabel, prf12, suiteOf, tls13Keys } from '../../lib/record/derive.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

t.test('RFC 8448: handshake secret -> traffic secrets -> server key and iv', async (t) => {
  const handshakeSecret = hex('1d c8 26 e9 36 06 aa 6f dc 0a ad c1 2f 74 1b 01 04 6a a6 b9 9f 69 1e d2 21 a9 f0 ca 04 3f be ac');
  const helloHash = hex('86 0c 06 ed c0 78 58 ee 8e 78 f0 e7 42 8c 58 ed d6 b4 3f 2c a3 e6 e9 5f 02 ed 06 3c f0 e1 ca d8');
  t.same(
    hkdfExpandLabel('sha256', handshakeSecret, 'c hs traffic', helloHash, 32),
    hex('b3 ed db 12 6e 06 7f 35 a7 80 b3 ab f4 5e 2d 8f 3b 1a 95 07 38 f5 2e 96 00 74 6a 0e 27 a5 5a 21'),
  );
  const serverHs = hkdfExpandLabel('sha256', handshakeSecret, 's hs traffic', helloHash, 32);
  t.same(serverHs, hex('b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38'));
  const keys = tls13Keys('aes-128-gcm', 'sha256', serverHs);
  t.same(keys.key, hex('3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc'));
  t.same(keys.iv, hex('5d 31 3e b2 67 12 76 ee 13 00 0b 30'));
});

t.test('RFC 8448: master secret -> application traffic secrets', async (t) => {
  const master = hex('18 df 06 84 3d 13 a0 8b f2 a4 49 84 4c 5f 8a 47 80 01 bc 4d 4c 62 79 84 d5 a4 1d a8 d0 40 29 19');
  const hash = hex('96 08 10 2a 0f 1c cc 6d b6 25 0b 7b 7e 41 7b 1a 00 0e aa da 3d aa e4 77 7a 76 86 c9 ff 83 df 13');
  t.same(
    hkdfExpandLabel('sha256', master, 'c ap traffic', hash, 32),
    hex('9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5'),
  );
  t.same(
    hkdfExpandLabel('sha256', master, 's ap traffic', hash, 32),
    hex('a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43'),
  );
});

t.test('TLS 1.2 PRF (SHA-256) matches the IETF TLS WG vector', async (t) => {
  const out = prf12(
    'sha256',
    hex('9b be 43 6b a9 40 f0 17 b1 76 52 84 9a 71 db 35'),
    'test label',
    hex('a0 ba 9f 93 6c da 31 18 27 a6 f7 96 ff d5 19 8c'),
    100,
  );
  t.same(
    out,
    hex(`e3 f2 29 ba 72 7b e1 7b 8d 12 26 20 55 7c d4 53 c2 aa b2 1d 07 c3 d4 95 32 9b 52 d4 e6 1e db 5a
    6b 30 17 91 e9 0d 35 c9 c9 a4 6b 4e 14 ba f9 af 0f a0 22 f7 07 7d ef 17 ab fd 37 97 c0 56 4b ab
    4f bc 91 66 6e 9d ef 9b 97 fc e3 4f 79 67 89 ba a4 80 82 d1 22 ee 42 c5 a7 2e 5a 51 10 ff f7 01 87 34 7b 66`),
  );
});

t.test('suite names map to kernel ciphers and hashes', async (t) => {
  t.same(suiteOf('TLS_AES_256_GCM_SHA384'), { cipher: 'aes-256-gcm', hash: 'sha384' });
  t.same(suiteOf('TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256'), { cipher: 'aes-128-gcm', hash: 'sha256' });
  t.same(suiteOf('TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256'), { cipher: 'chacha20-poly1305', hash: 'sha256' });
  t.same(suiteOf('TLS_AES_128_CCM_SHA256'), { cipher: 'aes-128-ccm', hash: 'sha256' });
  t.equal(suiteOf('TLS_AES_128_CCM_8_SHA256'), null, 'CCM_8 (8-byte tag) has no kTLS cipher');
  t.equal(suiteOf('TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA'), null);
});
