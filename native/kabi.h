/* The kernel ABI that kTLS and TCP_INFO guarantee (include/uapi/linux/tls.h,
 * include/uapi/linux/tcp.h), under our own names. Headers lag kernels:
 * <linux/tls.h> gained ChaCha20 in 5.11, TLS_TX_ZEROCOPY_RO in 5.19 and
 * TLS_RX_EXPECT_NO_PAD in 6.0, and libcs disagree on struct tcp_info (glibc's
 * stops at 104 bytes, musl's goes on). Numbers and layouts are fixed by the
 * uapi, so the addon builds against any of them and probe() asks the running
 * kernel. Plain C so scripts/portability.mjs can compile it with musl's
 * headers too. */
#ifndef KTLS_KABI_H
#define KTLS_KABI_H

#include <netinet/tcp.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define KTLS_ASSERT(cond, what) static_assert(cond, what)
#else
#define KTLS_ASSERT(cond, what) _Static_assert(cond, what)
#endif

#define KTLS_SOL_TLS 282
#define KTLS_TCP_ULP 31

/* setsockopt(SOL_TLS, ...) names and the record-type cmsgs. */
#define KTLS_TLS_TX 1
#define KTLS_TLS_RX 2
#define KTLS_TLS_TX_ZEROCOPY_RO 3
#define KTLS_TLS_RX_EXPECT_NO_PAD 4
#define KTLS_TLS_TX_MAX_PAYLOAD_LEN 5
#define KTLS_TLS_SET_RECORD_TYPE 1
#define KTLS_TLS_GET_RECORD_TYPE 2

#define KTLS_TLS_1_2_VERSION 0x0303
#define KTLS_TLS_1_3_VERSION 0x0304

#define KTLS_CIPHER_AES_GCM_128 51
#define KTLS_CIPHER_AES_GCM_256 52
#define KTLS_CIPHER_AES_CCM_128 53
#define KTLS_CIPHER_CHACHA20_POLY1305 54
#define KTLS_REC_SEQ_SIZE 8

struct ktls_crypto_info {
  uint16_t version;
  uint16_t cipher_type;
};

/* Every tls12_crypto_info_* is info, iv, key, salt, rec_seq, all bytes. */
struct ktls_aes_gcm_128 {
  struct ktls_crypto_info info;
  unsigned char iv[8];
  unsigned char key[16];
  unsigned char salt[4];
  unsigned char rec_seq[KTLS_REC_SEQ_SIZE];
};
struct ktls_aes_gcm_256 {
  struct ktls_crypto_info info;
  unsigned char iv[8];
  unsigned char key[32];
  unsigned char salt[4];
  unsigned char rec_seq[KTLS_REC_SEQ_SIZE];
};
struct ktls_aes_ccm_128 {
  struct ktls_crypto_info info;
  unsigned char iv[8];
  unsigned char key[16];
  unsigned char salt[4];
  unsigned char rec_seq[KTLS_REC_SEQ_SIZE];
};
/* No salt: the whole 12-byte nonce is the iv. */
struct ktls_chacha20_poly1305 {
  struct ktls_crypto_info info;
  unsigned char iv[12];
  unsigned char key[32];
  unsigned char rec_seq[KTLS_REC_SEQ_SIZE];
};

/* Tag sizes are not in the structs but in the uapi's *_TAG_SIZE. */
#define KTLS_AEAD_TAG_SIZE 16

KTLS_ASSERT(sizeof(struct ktls_crypto_info) == 4, "tls_crypto_info");
KTLS_ASSERT(offsetof(struct ktls_aes_gcm_128, rec_seq) == 32 && sizeof(struct ktls_aes_gcm_128) == 40, "gcm128 layout");
KTLS_ASSERT(offsetof(struct ktls_aes_gcm_256, rec_seq) == 48 && sizeof(struct ktls_aes_gcm_256) == 56, "gcm256 layout");
KTLS_ASSERT(sizeof(struct ktls_aes_ccm_128) == 40, "ccm128 layout");
KTLS_ASSERT(offsetof(struct ktls_chacha20_poly1305, rec_seq) == 48 && sizeof(struct ktls_chacha20_poly1305) == 56, "chacha layout");

/* Where the headers have them, they must agree with us. */
#if defined(__has_include)
#if __has_include(<linux/tls.h>)
#include <linux/tls.h>
#define KTLS_SAME(ours, theirs) KTLS_ASSERT((ours) == (theirs), #theirs)
#ifdef TLS_TX
KTLS_SAME(KTLS_TLS_TX, TLS_TX);
KTLS_SAME(KTLS_TLS_RX, TLS_RX);
KTLS_SAME(KTLS_TLS_SET_RECORD_TYPE, TLS_SET_RECORD_TYPE);
KTLS_SAME(KTLS_TLS_GET_RECORD_TYPE, TLS_GET_RECORD_TYPE);
KTLS_SAME(KTLS_TLS_1_2_VERSION, TLS_1_2_VERSION);
KTLS_SAME(KTLS_CIPHER_AES_GCM_128, TLS_CIPHER_AES_GCM_128);
KTLS_SAME(sizeof(struct ktls_aes_gcm_128), sizeof(struct tls12_crypto_info_aes_gcm_128));
KTLS_SAME(offsetof(struct ktls_aes_gcm_128, key), offsetof(struct tls12_crypto_info_aes_gcm_128, key));
KTLS_SAME(offsetof(struct ktls_aes_gcm_128, salt), offsetof(struct tls12_crypto_info_aes_gcm_128, salt));
KTLS_SAME(KTLS_REC_SEQ_SIZE, TLS_CIPHER_AES_GCM_128_REC_SEQ_SIZE);
KTLS_SAME(KTLS_AEAD_TAG_SIZE, TLS_CIPHER_AES_GCM_128_TAG_SIZE);
#endif
#ifdef TLS_1_3_VERSION
KTLS_SAME(KTLS_TLS_1_3_VERSION, TLS_1_3_VERSION);
#endif
#ifdef TLS_CIPHER_AES_GCM_256
KTLS_SAME(KTLS_CIPHER_AES_GCM_256, TLS_CIPHER_AES_GCM_256);
KTLS_SAME(sizeof(struct ktls_aes_gcm_256), sizeof(struct tls12_crypto_info_aes_gcm_256));
KTLS_SAME(offsetof(struct ktls_aes_gcm_256, salt), offsetof(struct tls12_crypto_info_aes_gcm_256, salt));
#endif
#ifdef TLS_CIPHER_AES_CCM_128
KTLS_SAME(KTLS_CIPHER_AES_CCM_128, TLS_CIPHER_AES_CCM_128);
KTLS_SAME(sizeof(struct ktls_aes_ccm_128), sizeof(struct tls12_crypto_info_aes_ccm_128));
#endif
#ifdef TLS_CIPHER_CHACHA20_POLY1305
KTLS_SAME(KTLS_CIPHER_CHACHA20_POLY1305, TLS_CIPHER_CHACHA20_POLY1305);
KTLS_SAME(sizeof(struct ktls_chacha20_poly1305), sizeof(struct tls12_crypto_info_chacha20_poly1305));
KTLS_SAME(offsetof(struct ktls_chacha20_poly1305, rec_seq), offsetof(struct tls12_crypto_info_chacha20_poly1305, rec_seq));
#endif
#ifdef TLS_TX_ZEROCOPY_RO
KTLS_SAME(KTLS_TLS_TX_ZEROCOPY_RO, TLS_TX_ZEROCOPY_RO);
#endif
#ifdef TLS_RX_EXPECT_NO_PAD
KTLS_SAME(KTLS_TLS_RX_EXPECT_NO_PAD, TLS_RX_EXPECT_NO_PAD);
#endif
#ifdef TLS_TX_MAX_PAYLOAD_LEN
KTLS_SAME(KTLS_TLS_TX_MAX_PAYLOAD_LEN, TLS_TX_MAX_PAYLOAD_LEN);
#endif
#ifdef SOL_TLS
KTLS_SAME(KTLS_SOL_TLS, SOL_TLS);
#endif
#endif
#endif
#ifdef TCP_ULP
KTLS_ASSERT(KTLS_TCP_ULP == TCP_ULP, "TCP_ULP");
#endif

/* The kernel's struct tcp_info up to tcpi_bytes_retrans (4.19+). A shorter
 * getsockopt answer means an older kernel; callers check the returned length. */
struct ktls_tcp_info {
  uint8_t state, ca_state, retransmits, probes, backoff, options;
  uint8_t wscale; /* snd_wscale:4, rcv_wscale:4 */
  uint8_t flags;  /* delivery_rate_app_limited:1, fastopen_client_fail:2 */
  uint32_t rto, ato, snd_mss, rcv_mss;
  uint32_t unacked, sacked, lost, retrans, fackets;
  uint32_t last_data_sent, last_ack_sent, last_data_recv, last_ack_recv;
  uint32_t pmtu, rcv_ssthresh, rtt, rttvar, snd_ssthresh, snd_cwnd, advmss, reordering;
  uint32_t rcv_rtt, rcv_space;
  uint32_t total_retrans;
  uint64_t pacing_rate, max_pacing_rate, bytes_acked, bytes_received;
  uint32_t segs_out, segs_in, notsent_bytes, min_rtt, data_segs_in, data_segs_out;
  uint64_t delivery_rate, busy_time, rwnd_limited, sndbuf_limited;
  uint32_t delivered, delivered_ce;
  uint64_t bytes_sent, bytes_retrans;
};
KTLS_ASSERT(offsetof(struct ktls_tcp_info, total_retrans) == 100, "tcpi_total_retrans");
KTLS_ASSERT(offsetof(struct ktls_tcp_info, bytes_acked) == 120, "tcpi_bytes_acked");
KTLS_ASSERT(offsetof(struct ktls_tcp_info, segs_out) == 136, "tcpi_segs_out");
KTLS_ASSERT(offsetof(struct ktls_tcp_info, data_segs_out) == 156, "tcpi_data_segs_out");
KTLS_ASSERT(offsetof(struct ktls_tcp_info, bytes_sent) == 200, "tcpi_bytes_sent");
/* The libc's own tcp_info, whatever its length, agrees on the common prefix. */
KTLS_ASSERT(offsetof(struct tcp_info, tcpi_rtt) == offsetof(struct ktls_tcp_info, rtt), "libc tcpi_rtt");
KTLS_ASSERT(offsetof(struct tcp_info, tcpi_total_retrans) == offsetof(struct ktls_tcp_info, total_retrans), "libc tcpi_total_retrans");

#endif
