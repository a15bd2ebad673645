// What the kernel says about a socket's TLS: sock_diag (NETLINK_SOCK_DIAG)
// asked for one TCP socket by its addresses, and the TLS ULP's attributes in
// the answer (INET_DIAG_ULP_INFO → INET_ULP_INFO_TLS: TLS_INFO_TXCONF/RXCONF,
// ZC_RO_TX, RX_NO_PAD; kernels 5.4+). One request and one non-blocking read:
// the kernel queues the answer before send() returns.
#include "common.h"
#include "kabi.h"

#include <linux/netlink.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace ktls {
namespace {

// The uapi's numbers (include/uapi/linux/{sock_diag,inet_diag,tls}.h), ours so old headers build.
constexpr uint16_t kSockDiagByFamily = 20;
constexpr int kNetlinkSockDiag = 4;
constexpr uint8_t kInetDiagInfo = 2;
constexpr uint16_t kInetDiagUlpInfo = 19;
constexpr uint16_t kUlpInfoName = 1;
constexpr uint16_t kUlpInfoTls = 2;
constexpr uint16_t kTlsInfoVersion = 1;
constexpr uint16_t kTlsInfoCipher = 2;
constexpr uint16_t kTlsInfoTxConf = 3;
constexpr uint16_t kTlsInfoRxConf = 4;
constexpr uint16_t kTlsInfoZcRoTx = 5;
constexpr uint16_t kTlsInfoRxNoPad = 6;
constexpr uint16_t kNlaTypeMask = 0x3fff;  // without NLA_F_NESTED / NLA_F_NET_BYTEORDER

struct DiagSockId {
  uint16_t sport, dport;  // network order
  uint32_t src[4], dst[4];
  uint32_t ifindex;
  uint32_t cookie[2];
};
struct DiagReqV2 {
  uint8_t family, protocol, ext, pad;
  uint32_t states;
  DiagSockId id;
};
struct DiagMsg {
  uint8_t family, state, timer, retrans;
  DiagSockId id;
  uint32_t expires, rqueue, wqueue, uid, inode;
};
KTLS_ASSERT(sizeof(DiagReqV2) == 56, "struct inet_diag_req_v2 is 56 bytes");
KTLS_ASSERT(sizeof(DiagMsg) == 72, "struct inet_diag_msg is 72 bytes");

void Set(Napi::Object o, const char* name, double v) { o.Set(name, Napi::Number::New(o.Env(), v)); }

struct Attr {
  uint16_t len, type;
};
constexpr size_t Align4(size_t n) { return (n + 3) & ~static_cast<size_t>(3); }

// Calls fn(type, payload, length) for each attribute in [p, p + len).
template <typename Fn>
void EachAttr(const uint8_t* p, size_t len, Fn fn) {
  while (len >= sizeof(Attr)) {
    Attr a;
    std::memcpy(&a, p, sizeof a);
    if (a.len < sizeof(Attr) || a.len > len) return;
    fn(static_cast<uint16_t>(a.type & kNlaTypeMask), p + sizeof(Attr), a.len - sizeof(Attr));
    size_t step = Align4(a.len);
    if (step >= len) return;
    p += step;
    len -= step;
  }
}

uint16_t U16(const uint8_t* p, size_t n) {
  uint16_t v = 0;
  if (n >= 2) std::memcpy(&v, p, 2);
  return v;
}

// Fills the sock_diag id of the connected TCP socket fd; -errno on failure.
int SockIdOf(int fd, DiagReqV2* req) {
  sockaddr_storage local{}, peer{};
  socklen_t ll = sizeof local, pl = sizeof peer;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) < 0) return -errno;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) < 0) return -errno;
  req->family = static_cast<uint8_t>(local.ss_family);
  if (local.ss_family == AF_INET) {
    const auto* l = reinterpret_cast<const sockaddr_in*>(&local);
    const auto* r = reinterpret_cast<const sockaddr_in*>(&peer);
    req->id.sport = l->sin_port;
    req->id.dport = r->sin_port;
    std::memcpy(req->id.src, &l->sin_addr, 4);
    std::memcpy(req->id.dst, &r->sin_addr, 4);
  } else if (local.ss_family == AF_INET6) {
    const auto* l = reinterpret_cast<const sockaddr_in6*>(&local);
    const auto* r = reinterpret_cast<const sockaddr_in6*>(&peer);
    req->id.sport = l->sin6_port;
    req->id.dport = r->sin6_port;
    std::memcpy(req->id.src, &l->sin6_addr, 16);
    std::memcpy(req->id.dst, &r->sin6_addr, 16);
  } else {
    return -EAFNOSUPPORT;
  }
  return 0;
}

// tlsDiag(fd) -> { ulp, version, cipher, txConf, rxConf, zeroCopyTx, rxNoPad } | -errno.
// ulp: the ULP's name ('' when the socket has none); the TLS fields are 0/false
// where the kernel did not say (an older kernel, or no TLS ULP).
Napi::Value TlsDiag(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0);
  struct {
    nlmsghdr nlh;
    DiagReqV2 req;
  } msg{};
  int rc = SockIdOf(fd, &msg.req);
  if (rc < 0) return Napi::Number::New(env, rc);
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = kSockDiagByFamily;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST;
  msg.req.protocol = IPPROTO_TCP;
  msg.req.ext = 1 << (kInetDiagInfo - 1);  // the protocol's info, which carries the ULP's
  msg.req.states = ~0u;
  msg.req.id.cookie[0] = msg.req.id.cookie[1] = ~0u;  // INET_DIAG_NOCOOKIE

  int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, kNetlinkSockDiag);
  if (nl < 0) return Result(env, -1);
  alignas(nlmsghdr) static thread_local uint8_t buf[16384];
  ssize_t n = send(nl, &msg, sizeof msg, 0);
  if (n >= 0) n = recv(nl, buf, sizeof buf, MSG_DONTWAIT);
  int err = n < 0 ? errno : 0;
  if (close(nl) < 0 && err == 0) err = errno;
  if (err != 0) return Napi::Number::New(env, -err);
  if (static_cast<size_t>(n) < sizeof(nlmsghdr)) return Napi::Number::New(env, -EPROTO);
  nlmsghdr h;
  std::memcpy(&h, buf, sizeof h);
  if (h.nlmsg_len > static_cast<size_t>(n) || h.nlmsg_len < sizeof h) return Napi::Number::New(env, -EPROTO);
  if (h.nlmsg_type == NLMSG_ERROR) {
    int e = 0;
    if (h.nlmsg_len >= sizeof h + sizeof e) std::memcpy(&e, buf + sizeof h, sizeof e);
    return Napi::Number::New(env, e < 0 ? e : -EPROTO);
  }
  if (h.nlmsg_type != kSockDiagByFamily || h.nlmsg_len < sizeof h + sizeof(DiagMsg)) return Napi::Number::New(env, -EPROTO);

  std::string ulp;
  uint16_t version = 0, cipher = 0, txConf = 0, rxConf = 0;
  bool zc = false, noPad = false;
  const uint8_t* attrs = buf + sizeof h + sizeof(DiagMsg);
  EachAttr(attrs, h.nlmsg_len - sizeof h - sizeof(DiagMsg), [&](uint16_t type, const uint8_t* p, size_t len) {
    if (type != kInetDiagUlpInfo) return;
    EachAttr(p, len, [&](uint16_t t, const uint8_t* q, size_t ql) {
      if (t == kUlpInfoName) ulp.assign(reinterpret_cast<const char*>(q), strnlen(reinterpret_cast<const char*>(q), ql));
      if (t != kUlpInfoTls) return;
      EachAttr(q, ql, [&](uint16_t k, const uint8_t* v, size_t vl) {
        if (k == kTlsInfoVersion)
          version = U16(v, vl);
        else if (k == kTlsInfoCipher)
          cipher = U16(v, vl);
        else if (k == kTlsInfoTxConf)
          txConf = U16(v, vl);
        else if (k == kTlsInfoRxConf)
          rxConf = U16(v, vl);
        else if (k == kTlsInfoZcRoTx)
          zc = true;
        else if (k == kTlsInfoRxNoPad)
          noPad = true;
      });
    });
  });
  Napi::Object out = Napi::Object::New(env);
  out.Set("ulp", Napi::String::New(env, ulp));
  out.Set("version", Napi::Number::New(env, version));
  out.Set("cipher", Napi::Number::New(env, cipher));
  out.Set("txConf", Napi::Number::New(env, txConf));
  out.Set("rxConf", Napi::Number::New(env, rxConf));
  out.Set("zeroCopyTx", Napi::Boolean::New(env, zc));
  out.Set("rxNoPad", Napi::Boolean::New(env, noPad));
  return out;
}

}  // namespace

void InitDiag(Napi::Env env, Napi::Object exports) {
  exports.Set("tlsDiag", Napi::Function::New(env, TlsDiag, "tlsDiag"));
  Napi::Object k = exports.Get("constants").As<Napi::Object>();
  Set(k, "TLS_CONF_BASE", 1);
  Set(k, "TLS_CONF_SW", 2);
  Set(k, "TLS_CONF_HW", 3);
  Set(k, "TLS_CONF_HW_RECORD", 4);
}

}  // namespace ktls
