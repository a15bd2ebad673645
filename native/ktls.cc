// Kernel TLS: the ULP and the crypto_info structs (their layouts in kabi.h).
#include "common.h"
#include "kabi.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <string>

namespace ktls {
namespace {

constexpr size_t kNonceSize = 12;  // salt + iv as TLS uses them: the API's "iv"
constexpr size_t kSeqSize = KTLS_REC_SEQ_SIZE;

union CryptoInfo {
  ktls_crypto_info base;
  ktls_aes_gcm_128 gcm128;
  ktls_aes_gcm_256 gcm256;
  ktls_aes_ccm_128 ccm128;
  ktls_chacha20_poly1305 chacha;
};

// Fills one crypto_info. Returns its size, or 0 when cipher/key size do not match
// (lib/ has validated, so 0 means a bug; setsockopt then reports EINVAL).
template <typename T>
size_t Fill(T* s, uint16_t version, uint16_t cipher, const uint8_t* key, size_t key_len, const uint8_t* nonce, const uint8_t* seq) {
  if (key_len != sizeof(s->key) || sizeof(s->salt) + sizeof(s->iv) != kNonceSize) return 0;
  s->info.version = version;
  s->info.cipher_type = cipher;
  std::memcpy(s->key, key, sizeof(s->key));
  std::memcpy(s->salt, nonce, sizeof(s->salt));
  std::memcpy(s->iv, nonce + sizeof(s->salt), sizeof(s->iv));
  std::memcpy(s->rec_seq, seq, sizeof(s->rec_seq));
  return sizeof(T);
}

// chacha20-poly1305 has no salt member at all.
template <>
size_t Fill(ktls_chacha20_poly1305* s, uint16_t version, uint16_t cipher, const uint8_t* key, size_t key_len, const uint8_t* nonce,
            const uint8_t* seq) {
  if (key_len != sizeof(s->key) || sizeof(s->iv) != kNonceSize) return 0;
  s->info.version = version;
  s->info.cipher_type = cipher;
  std::memcpy(s->key, key, sizeof(s->key));
  std::memcpy(s->iv, nonce, sizeof(s->iv));
  std::memcpy(s->rec_seq, seq, sizeof(s->rec_seq));
  return sizeof(*s);
}

// explicit_bzero is declared nonnull: an empty Buffer has no data pointer.
void Wipe(void* p, size_t n) {
  if (n != 0) explicit_bzero(p, n);
}

// setUlp(fd) -> 0 | -errno
Napi::Value SetUlp(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  static const char kName[] = "tls";
  return Result(info.Env(), setsockopt(fd, SOL_TCP, KTLS_TCP_ULP, kName, sizeof(kName)));
}

// getUlp(fd) -> name | -errno
Napi::Value GetUlp(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  char name[32] = {0};
  socklen_t len = sizeof(name) - 1;
  if (getsockopt(fd, SOL_TCP, KTLS_TCP_ULP, name, &len) < 0) return Result(info.Env(), -1);
  return Napi::String::New(info.Env(), name, strnlen(name, len));
}

// setKeys(fd, direction, version, cipher, key, nonce12, seq8) -> 0 | -errno
// The caller's buffers are lib/'s own copies, wiped here once the kernel has them.
Napi::Value SetKeys(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  int dir = ArgInt(info, 1);
  auto version = static_cast<uint16_t>(ArgInt(info, 2));
  auto cipher = static_cast<uint16_t>(ArgInt(info, 3));
  auto key = ArgBuffer(info, 4);
  auto nonce = ArgBuffer(info, 5);
  auto seq = ArgBuffer(info, 6);
  if (nonce.Length() != kNonceSize || seq.Length() != kSeqSize || (dir != KTLS_TLS_TX && dir != KTLS_TLS_RX))
    throw ArgError(info.Env(), false, "ktls native: bad setKeys arguments");

  CryptoInfo ci;
  std::memset(&ci, 0, sizeof(ci));
  size_t len = 0;
  switch (cipher) {
    case KTLS_CIPHER_AES_GCM_128: len = Fill(&ci.gcm128, version, cipher, key.Data(), key.Length(), nonce.Data(), seq.Data()); break;
    case KTLS_CIPHER_AES_GCM_256: len = Fill(&ci.gcm256, version, cipher, key.Data(), key.Length(), nonce.Data(), seq.Data()); break;
    case KTLS_CIPHER_AES_CCM_128: len = Fill(&ci.ccm128, version, cipher, key.Data(), key.Length(), nonce.Data(), seq.Data()); break;
    case KTLS_CIPHER_CHACHA20_POLY1305: len = Fill(&ci.chacha, version, cipher, key.Data(), key.Length(), nonce.Data(), seq.Data()); break;
    default: break;
  }
  int rc = -EINVAL;
  if (len != 0) rc = setsockopt(fd, KTLS_SOL_TLS, dir, &ci, static_cast<socklen_t>(len)) < 0 ? -errno : 0;
  Wipe(&ci, sizeof(ci));
  Wipe(key.Data(), key.Length());
  Wipe(nonce.Data(), nonce.Length());
  return Napi::Number::New(info.Env(), rc);
}

// getSeq(fd, direction) -> bigint | -errno: the next record sequence number the kernel uses.
// Two calls: the kernel wants exactly the cipher's struct size, which the base info tells.
Napi::Value GetSeq(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  int dir = ArgInt(info, 1);
  Napi::Env env = info.Env();
  ktls_crypto_info base{};
  socklen_t len = sizeof(base);
  if (getsockopt(fd, KTLS_SOL_TLS, dir, &base, &len) < 0) return Result(env, -1);

  CryptoInfo ci;
  std::memset(&ci, 0, sizeof(ci));
  const uint8_t* seq = nullptr;
  switch (base.cipher_type) {
    case KTLS_CIPHER_AES_GCM_128:
      len = sizeof(ci.gcm128);
      seq = ci.gcm128.rec_seq;
      break;
    case KTLS_CIPHER_AES_GCM_256:
      len = sizeof(ci.gcm256);
      seq = ci.gcm256.rec_seq;
      break;
    case KTLS_CIPHER_AES_CCM_128:
      len = sizeof(ci.ccm128);
      seq = ci.ccm128.rec_seq;
      break;
    case KTLS_CIPHER_CHACHA20_POLY1305:
      len = sizeof(ci.chacha);
      seq = ci.chacha.rec_seq;
      break;
    default: return Napi::Number::New(env, -EINVAL);  // no keys installed (cipher_type 0) or unknown
  }
  int rc = getsockopt(fd, KTLS_SOL_TLS, dir, &ci, &len);
  int err = errno;
  uint64_t value = 0;
  for (size_t i = 0; i < kSeqSize; i++) value = (value << 8) | seq[i];
  // The kernel hands the key back with the sequence; it must not linger on our stack.
  Wipe(&ci, sizeof(ci));
  if (rc < 0) return Napi::Number::New(env, -err);
  return Napi::BigInt::New(env, value);
}

// setRecordSize(fd, n) / getRecordSize(fd): KTLS_TLS_TX_MAX_PAYLOAD_LEN takes a u16;
// kernels without it answer ENOPROTOOPT, which lib/ reports as ERR_KTLS_UNSUPPORTED.
Napi::Value SetRecordSize(const Napi::CallbackInfo& info) {
  uint16_t value = static_cast<uint16_t>(ArgInt(info, 1));
  return Result(info.Env(), setsockopt(ArgInt(info, 0), KTLS_SOL_TLS, KTLS_TLS_TX_MAX_PAYLOAD_LEN, &value, sizeof(value)));
}

Napi::Value GetRecordSize(const Napi::CallbackInfo& info) {
  uint16_t value = 0;
  socklen_t len = sizeof(value);
  if (getsockopt(ArgInt(info, 0), KTLS_SOL_TLS, KTLS_TLS_TX_MAX_PAYLOAD_LEN, &value, &len) < 0) return Result(info.Env(), -1);
  return Napi::Number::New(info.Env(), value);
}

void Set(Napi::Object o, const char* name, double v) { o.Set(name, Napi::Number::New(o.Env(), v)); }

void CipherConstants(Napi::Object o, const char* name, int id, int key, int salt, int iv, int tag, int seq) {
  Napi::Object c = Napi::Object::New(o.Env());
  Set(c, "id", id);
  Set(c, "keySize", key);
  Set(c, "saltSize", salt);
  Set(c, "ivSize", iv);
  Set(c, "tagSize", tag);
  Set(c, "recSeqSize", seq);
  o.Set(name, c);
}

}  // namespace

void InitKtls(Napi::Env env, Napi::Object exports) {
  exports.Set("setUlp", Napi::Function::New(env, SetUlp, "setUlp"));
  exports.Set("getUlp", Napi::Function::New(env, GetUlp, "getUlp"));
  exports.Set("setKeys", Napi::Function::New(env, SetKeys, "setKeys"));
  exports.Set("getSeq", Napi::Function::New(env, GetSeq, "getSeq"));
  exports.Set("setRecordSize", Napi::Function::New(env, SetRecordSize, "setRecordSize"));
  exports.Set("getRecordSize", Napi::Function::New(env, GetRecordSize, "getRecordSize"));

  Napi::Object k = Napi::Object::New(env);
  Set(k, "SOL_TLS", KTLS_SOL_TLS);
  Set(k, "TCP_ULP", KTLS_TCP_ULP);
  Set(k, "TLS_TX", KTLS_TLS_TX);
  Set(k, "TLS_RX", KTLS_TLS_RX);
  Set(k, "TLS_TX_ZEROCOPY_RO", KTLS_TLS_TX_ZEROCOPY_RO);
  Set(k, "TLS_RX_EXPECT_NO_PAD", KTLS_TLS_RX_EXPECT_NO_PAD);
  Set(k, "TLS_TX_MAX_PAYLOAD_LEN", KTLS_TLS_TX_MAX_PAYLOAD_LEN);
  Set(k, "TLS_SET_RECORD_TYPE", KTLS_TLS_SET_RECORD_TYPE);
  Set(k, "TLS_GET_RECORD_TYPE", KTLS_TLS_GET_RECORD_TYPE);
  Set(k, "TLS_1_2_VERSION", KTLS_TLS_1_2_VERSION);
  Set(k, "TLS_1_3_VERSION", KTLS_TLS_1_3_VERSION);
  // RFC 8446 §5: record content types and the plaintext limit (not in the uapi header).
  Set(k, "RECORD_CHANGE_CIPHER_SPEC", 20);
  Set(k, "RECORD_ALERT", 21);
  Set(k, "RECORD_HANDSHAKE", 22);
  Set(k, "RECORD_APPLICATION_DATA", 23);
  Set(k, "MAX_PLAINTEXT", 1 << 14);
  Set(k, "MAX_IOV", static_cast<double>(kMaxIov));
  Set(k, "NONCE_SIZE", kNonceSize);
  Set(k, "SOL_SOCKET", SOL_SOCKET);
  Set(k, "SO_TYPE", SO_TYPE);
  Set(k, "SO_ERROR", SO_ERROR);
  Set(k, "SO_DOMAIN", SO_DOMAIN);
  Set(k, "SO_PROTOCOL", SO_PROTOCOL);
  Set(k, "SOCK_STREAM", SOCK_STREAM);
  Set(k, "IPPROTO_TCP", IPPROTO_TCP);
  Set(k, "SOL_TCP", SOL_TCP);
  Set(k, "TCP_NODELAY", TCP_NODELAY);
  Set(k, "AF_INET", AF_INET);
  Set(k, "AF_INET6", AF_INET6);
  Set(k, "SHUT_WR", SHUT_WR);
  Set(k, "SHUT_RDWR", SHUT_RDWR);
  exports.Set("constants", k);

  Napi::Object c = Napi::Object::New(env);
#define KTLS_CIPHER(js, id, T, salt) CipherConstants(c, js, id, sizeof(T::key), salt, sizeof(T::iv), KTLS_AEAD_TAG_SIZE, sizeof(T::rec_seq))
  KTLS_CIPHER("aes-128-gcm", KTLS_CIPHER_AES_GCM_128, ktls_aes_gcm_128, sizeof(ktls_aes_gcm_128::salt));
  KTLS_CIPHER("aes-256-gcm", KTLS_CIPHER_AES_GCM_256, ktls_aes_gcm_256, sizeof(ktls_aes_gcm_256::salt));
  KTLS_CIPHER("chacha20-poly1305", KTLS_CIPHER_CHACHA20_POLY1305, ktls_chacha20_poly1305, 0);
  KTLS_CIPHER("aes-128-ccm", KTLS_CIPHER_AES_CCM_128, ktls_aes_ccm_128, sizeof(ktls_aes_ccm_128::salt));
#undef KTLS_CIPHER
  exports.Set("ciphers", c);
}

}  // namespace ktls
