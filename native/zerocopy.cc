// Zero-copy and TCP controls: sendfile(2), splice(2), pipes, readiness,
// TCP_INFO and the Fast Open client socket. Each call is one syscall and
// returns bytes or -errno; lib/socket/ops/ and lib/socket/ own the loops.
#include "common.h"
#include "kabi.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <string>

namespace ktls {
namespace {

// Offsets and counts go past 2^31 (files larger than 2 GiB), so they travel as doubles.
int64_t ArgInt64(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsNumber()) throw ArgError(info.Env(), false, "ktls native: expected a number argument");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= 9007199254740991.0) || std::floor(v) != v)
    throw ArgError(info.Env(), true, "ktls native: expected a non-negative integer");
  return static_cast<int64_t>(v);
}

// sendfile(outFd, inFd, offset, count) -> bytes | -errno. The file offset is
// passed explicitly, so the file's own position never moves.
Napi::Value SendFile(const Napi::CallbackInfo& info) {
  int out = ArgInt(info, 0);
  int in = ArgInt(info, 1);
  off_t offset = static_cast<off_t>(ArgInt64(info, 2));
  size_t count = static_cast<size_t>(ArgInt64(info, 3));
  return Result(info.Env(), sendfile(out, in, &offset, count));
}

// splice(inFd, outFd, count, flags) -> bytes | -errno; one end must be a pipe.
Napi::Value Splice(const Napi::CallbackInfo& info) {
  int in = ArgInt(info, 0);
  int out = ArgInt(info, 1);
  size_t count = static_cast<size_t>(ArgInt64(info, 2));
  unsigned flags = static_cast<unsigned>(ArgInt(info, 3));
  return Result(info.Env(), splice(in, nullptr, out, nullptr, count, flags));
}

// pipe(nonBlocking, size) -> [readFd, writeFd] | -errno. size 0 keeps the default.
Napi::Value Pipe(const Napi::CallbackInfo& info) {
  bool nonblock = ArgInt(info, 0) != 0;
  int size = ArgInt(info, 1);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | (nonblock ? O_NONBLOCK : 0)) < 0) return Result(info.Env(), -1);
  if (size > 0 && fcntl(fds[0], F_SETPIPE_SZ, size) < 0) {
    int err = errno;
    close(fds[0]);
    close(fds[1]);
    return Napi::Number::New(info.Env(), -err);
  }
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, Napi::Number::New(info.Env(), fds[0]));
  a.Set(1u, Napi::Number::New(info.Env(), fds[1]));
  return a;
}

// socketPair() -> [fd, fd] | -errno: a connected AF_UNIX stream pair, non-blocking and close-on-exec.
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0) return Result(info.Env(), -1);
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, Napi::Number::New(info.Env(), fds[0]));
  a.Set(1u, Napi::Number::New(info.Env(), fds[1]));
  return a;
}

// ready(fd, events) -> revents | -errno without waiting: 1 readable, 2 writable,
// 4 hang-up or error. Tells which side of an EAGAIN from splice() is not ready.
Napi::Value Ready(const Napi::CallbackInfo& info) {
  int events = ArgInt(info, 1);
  pollfd p{ArgInt(info, 0), static_cast<short>(((events & 1) ? POLLIN : 0) | ((events & 2) ? POLLOUT : 0)), 0};
  int rc = poll(&p, 1, 0);
  if (rc < 0) return Result(info.Env(), -1);
  int out = ((p.revents & POLLIN) ? 1 : 0) | ((p.revents & POLLOUT) ? 2 : 0) | ((p.revents & (POLLHUP | POLLERR)) ? 4 : 0);
  return Napi::Number::New(info.Env(), out);
}

// fdKind(fd) -> 1 pipe, 2 socket, 3 regular file, 4 other | -errno
Napi::Value FdKind(const Napi::CallbackInfo& info) {
  struct stat st;
  if (fstat(ArgInt(info, 0), &st) < 0) return Result(info.Env(), -1);
  int kind = S_ISFIFO(st.st_mode) ? 1 : S_ISSOCK(st.st_mode) ? 2 : S_ISREG(st.st_mode) ? 3 : 4;
  return Napi::Number::New(info.Env(), kind);
}

// fdFlags(fd) -> the file status flags (fcntl F_GETFL) | -errno: lib/ asks
// whether a caller's fd is O_NONBLOCK before it splices from or into it.
Napi::Value FdFlags(const Napi::CallbackInfo& info) { return Result(info.Env(), fcntl(ArgInt(info, 0), F_GETFL)); }

// The fields of a struct stat lib/ uses, into a Float64Array of at least 8:
// kind (as fdKind), size, dev, ino, mtime s, mtime ns, ctime s, ctime ns.
void StatOut(const struct stat& st, Napi::Float64Array out) {
  double* o = out.Data();
  o[0] = S_ISFIFO(st.st_mode) ? 1 : S_ISSOCK(st.st_mode) ? 2 : S_ISREG(st.st_mode) ? 3 : 4;
  o[1] = static_cast<double>(st.st_size);
  o[2] = static_cast<double>(st.st_dev);
  o[3] = static_cast<double>(st.st_ino);
  o[4] = static_cast<double>(st.st_mtim.tv_sec);
  o[5] = static_cast<double>(st.st_mtim.tv_nsec);
  o[6] = static_cast<double>(st.st_ctim.tv_sec);
  o[7] = static_cast<double>(st.st_ctim.tv_nsec);
}

Napi::Float64Array ArgStatOut(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
      info[i].As<Napi::Float64Array>().ElementLength() < 8)
    throw ArgError(info.Env(), false, "ktls native: expected a Float64Array of 8 for the stat fields");
  return info[i].As<Napi::Float64Array>();
}

std::string ArgPath(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsString()) throw ArgError(info.Env(), false, "ktls native: expected a path string");
  std::string path = info[i].As<Napi::String>().Utf8Value();
  if (path.empty() || path.find('\0') != std::string::npos)
    throw ArgError(info.Env(), true, "ktls native: a path must be non-empty and hold no NUL");
  return path;
}

// openFile(path) -> fd | -errno: read-only, close-on-exec, non-blocking (a
// FIFO or device must never block the loop in open()). On a local
// filesystem this is a page-cache lookup; lib/ calls it on the event loop
// for the same reason nginx does (a thread-pool round trip costs more).
Napi::Value OpenFile(const Napi::CallbackInfo& info) {
  std::string path = ArgPath(info, 0);
  return Result(info.Env(), open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
}

// statFd(fd, out) / statPath(path, out) -> 0 | -errno; fills out as StatOut.
Napi::Value StatFd(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  Napi::Float64Array out = ArgStatOut(info, 1);
  struct stat st;
  if (fstat(fd, &st) < 0) return Result(info.Env(), -1);
  StatOut(st, out);
  return Napi::Number::New(info.Env(), 0);
}
Napi::Value StatPath(const Napi::CallbackInfo& info) {
  std::string path = ArgPath(info, 0);
  Napi::Float64Array out = ArgStatOut(info, 1);
  struct stat st;
  if (stat(path.c_str(), &st) < 0) return Result(info.Env(), -1);
  StatOut(st, out);
  return Napi::Number::New(info.Env(), 0);
}

// readFd(fd, buf, offset, length) / writeFd(...) -> bytes | -errno
Napi::Value ReadWrite(const Napi::CallbackInfo& info, bool write_) {
  int fd = ArgInt(info, 0);
  auto buf = ArgBuffer(info, 1);
  int32_t off = ArgInt(info, 2);
  int32_t len = ArgInt(info, 3);
  if (off < 0 || len < 0 || static_cast<size_t>(off) > buf.Length() || static_cast<size_t>(len) > buf.Length() - off)
    throw ArgError(info.Env(), true, "ktls native: range outside the buffer");
  size_t offset = static_cast<size_t>(off);
  size_t length = static_cast<size_t>(len);
  ssize_t n = write_ ? write(fd, buf.Data() + offset, length) : read(fd, buf.Data() + offset, length);
  return Result(info.Env(), n);
}
Napi::Value ReadFd(const Napi::CallbackInfo& info) { return ReadWrite(info, false); }
Napi::Value WriteFd(const Napi::CallbackInfo& info) { return ReadWrite(info, true); }

void Set(Napi::Object o, const char* name, double v) { o.Set(name, Napi::Number::New(o.Env(), v)); }

// tcpInfo(fd) -> { segsOut, ... } | -errno
Napi::Value TcpInfo(const Napi::CallbackInfo& info) {
  ktls_tcp_info ti{};
  socklen_t len = sizeof(ti);
  if (getsockopt(ArgInt(info, 0), SOL_TCP, TCP_INFO, &ti, &len) < 0) return Result(info.Env(), -1);
  Napi::Object o = Napi::Object::New(info.Env());
  Set(o, "state", ti.state);
  Set(o, "options", ti.options);
  Set(o, "rtt", ti.rtt);
  Set(o, "sndMss", ti.snd_mss);
  Set(o, "sndCwnd", ti.snd_cwnd);
  Set(o, "totalRetrans", ti.total_retrans);
  // Fields a kernel did not fill (an older struct) read as -1, not 0.
  auto field = [&](const char* name, size_t end, double v) { Set(o, name, len >= end ? v : -1); };
  field("bytesAcked", offsetof(ktls_tcp_info, bytes_received), static_cast<double>(ti.bytes_acked));
  field("bytesReceived", offsetof(ktls_tcp_info, segs_out), static_cast<double>(ti.bytes_received));
  field("segsOut", offsetof(ktls_tcp_info, segs_in), ti.segs_out);
  field("segsIn", offsetof(ktls_tcp_info, notsent_bytes), ti.segs_in);
  field("dataSegsIn", offsetof(ktls_tcp_info, data_segs_out), ti.data_segs_in);
  field("dataSegsOut", offsetof(ktls_tcp_info, delivery_rate), ti.data_segs_out);
  field("bytesSent", offsetof(ktls_tcp_info, bytes_retrans), static_cast<double>(ti.bytes_sent));
  return o;
}

// fastOpenSocket(family) -> fd | -errno: a non-blocking TCP socket with
// TCP_FASTOPEN_CONNECT set, so connect() defers the SYN to the first write.
Napi::Value FastOpenSocket(const Napi::CallbackInfo& info) {
  int family = ArgInt(info, 0);
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) return Result(info.Env(), -1);
  int one = 1;
  if (setsockopt(fd, SOL_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof(one)) < 0) {
    int err = errno;
    close(fd);
    return Napi::Number::New(info.Env(), -err);
  }
  return Napi::Number::New(info.Env(), fd);
}

// A numeric IPv4 or IPv6 address and port as a sockaddr; its length, or 0 if
// `address` is neither.
static socklen_t SockaddrOf(const std::string& address, int port, sockaddr_storage* ss) {
  auto* v4 = reinterpret_cast<sockaddr_in*>(ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    return sizeof(*v4);
  }
  if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    return sizeof(*v6);
  }
  return 0;
}

// connectFd(fd, address, port) -> 0 | -errno (-EINPROGRESS while the handshake runs)
Napi::Value ConnectFd(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  if (info.Length() < 2 || !info[1].IsString()) throw ArgError(info.Env(), false, "ktls native: connectFd(fd, address, port)");
  std::string address = info[1].As<Napi::String>().Utf8Value();
  int port = ArgInt(info, 2);
  sockaddr_storage ss{};
  socklen_t len = SockaddrOf(address, port, &ss);
  if (len == 0) return Napi::Number::New(info.Env(), -EINVAL);
  return Result(info.Env(), connect(fd, reinterpret_cast<sockaddr*>(&ss), len));
}

// tcpSocket(family) -> fd | -errno: a non-blocking, close-on-exec TCP socket,
// for a listening socket that needs options set before bind() (SO_REUSEPORT).
Napi::Value TcpSocket(const Napi::CallbackInfo& info) {
  int family = ArgInt(info, 0);
  return Result(info.Env(), socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP));
}

// bindFd(fd, address, port) -> 0 | -errno: bind() to a numeric IPv4/IPv6 address.
Napi::Value BindFd(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  if (info.Length() < 2 || !info[1].IsString()) throw ArgError(info.Env(), false, "ktls native: bindFd(fd, address, port)");
  std::string address = info[1].As<Napi::String>().Utf8Value();
  int port = ArgInt(info, 2);
  if (port < 0 || port > 65535) throw ArgError(info.Env(), true, "ktls native: bindFd port out of range");
  sockaddr_storage ss{};
  socklen_t len = SockaddrOf(address, port, &ss);
  if (len == 0) return Napi::Number::New(info.Env(), -EINVAL);
  return Result(info.Env(), bind(fd, reinterpret_cast<sockaddr*>(&ss), len));
}

}  // namespace

void InitZeroCopy(Napi::Env env, Napi::Object exports) {
  exports.Set("sendfile", Napi::Function::New(env, SendFile, "sendfile"));
  exports.Set("splice", Napi::Function::New(env, Splice, "splice"));
  exports.Set("pipe", Napi::Function::New(env, Pipe, "pipe"));
  exports.Set("ready", Napi::Function::New(env, Ready, "ready"));
  exports.Set("socketPair", Napi::Function::New(env, SocketPair, "socketPair"));
  exports.Set("fdKind", Napi::Function::New(env, FdKind, "fdKind"));
  exports.Set("fdFlags", Napi::Function::New(env, FdFlags, "fdFlags"));
  exports.Set("openFile", Napi::Function::New(env, OpenFile, "openFile"));
  exports.Set("statFd", Napi::Function::New(env, StatFd, "statFd"));
  exports.Set("statPath", Napi::Function::New(env, StatPath, "statPath"));
  exports.Set("readFd", Napi::Function::New(env, ReadFd, "readFd"));
  exports.Set("writeFd", Napi::Function::New(env, WriteFd, "writeFd"));
  exports.Set("tcpInfo", Napi::Function::New(env, TcpInfo, "tcpInfo"));
  exports.Set("fastOpenSocket", Napi::Function::New(env, FastOpenSocket, "fastOpenSocket"));
  exports.Set("connectFd", Napi::Function::New(env, ConnectFd, "connectFd"));
  exports.Set("tcpSocket", Napi::Function::New(env, TcpSocket, "tcpSocket"));
  exports.Set("bindFd", Napi::Function::New(env, BindFd, "bindFd"));

  Napi::Object k = exports.Get("constants").As<Napi::Object>();
  Set(k, "SPLICE_F_MOVE", SPLICE_F_MOVE);
  Set(k, "O_NONBLOCK", O_NONBLOCK);
  Set(k, "SPLICE_F_NONBLOCK", SPLICE_F_NONBLOCK);
  Set(k, "SPLICE_F_MORE", SPLICE_F_MORE);
  Set(k, "TCP_CORK", TCP_CORK);
  Set(k, "SO_KEEPALIVE", SO_KEEPALIVE);
  Set(k, "SO_SNDBUF", SO_SNDBUF);
  Set(k, "TCP_KEEPIDLE", TCP_KEEPIDLE);
  Set(k, "TCP_INFO", TCP_INFO);
  Set(k, "TCP_FASTOPEN", TCP_FASTOPEN);
  Set(k, "TCP_FASTOPEN_CONNECT", TCP_FASTOPEN_CONNECT);
  Set(k, "TCPI_OPT_SYN_DATA", TCPI_OPT_SYN_DATA);
  Set(k, "EINPROGRESS", EINPROGRESS);
  Set(k, "SO_REUSEPORT", SO_REUSEPORT);
  // kTLS rekey answers EKEYEXPIRED, which node:os does not list.
  Set(k, "EKEYEXPIRED", EKEYEXPIRED);
}

}  // namespace ktls
