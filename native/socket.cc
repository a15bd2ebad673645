// The socket handle: owns one fd and its uv_poll_t on the env's own loop.
// Lifecycle Open -> Closed; close() is idempotent; the poll handle is freed in
// its close callback; an env cleanup hook closes whatever is still open.
#include "common.h"
#include "kabi.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <cstddef>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include <climits>
#include <cstring>
#include <vector>

namespace ktls {
namespace {

constexpr int kReadable = 1;
constexpr int kWritable = 2;

class Handle : public Napi::ObjectWrap<Handle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Handle",
                       {InstanceMethod<&Handle::Poll>("poll"), InstanceMethod<&Handle::Recv>("recv"), InstanceMethod<&Handle::Send>("send"),
                        InstanceMethod<&Handle::Shutdown>("shutdown"), InstanceMethod<&Handle::Close>("close"),
                        InstanceMethod<&Handle::Ref>("ref"), InstanceMethod<&Handle::Unref>("unref"), InstanceAccessor<&Handle::Fd>("fd")});
  }

  // new Handle(fd, onPoll(status, events), out: Int32Array(>= 1)) takes ownership of
  // fd only once every argument has been checked: if it throws, the fd is still
  // the caller's to close.
  explicit Handle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Handle>(info) {
    Napi::Env env = info.Env();
    int fd = ArgInt(info, 0);
    if (fd < 0) throw ArgError(env, true, "ktls native: new Handle(fd) needs an open fd");
    if (info.Length() < 3 || !info[1].IsFunction() || !info[2].IsTypedArray())
      throw ArgError(env, false, "ktls native: new Handle(fd, onPoll, out)");
    auto out = info[2].As<Napi::TypedArray>();
    if (out.TypedArrayType() != napi_int32_array || out.ElementLength() < 1)
      throw ArgError(env, false, "ktls native: out must be an Int32Array of at least one element");
    on_poll_ = Napi::Persistent(info[1].As<Napi::Function>());
    out_ = Napi::Persistent(out.As<Napi::Int32Array>());
    fd_ = fd;
    napi_add_env_cleanup_hook(env, &Handle::OnEnvCleanup, this);
  }

  ~Handle() override { CloseNow(Env(), true); }

 private:
  // poll(events) -> 0 | -errno. events: 1 readable, 2 writable, 0 stop.
  Napi::Value Poll(const Napi::CallbackInfo& info) {
    int events = ArgInt(info, 0);
    Napi::Env env = info.Env();
    if (fd_ < 0) return Napi::Number::New(env, -EBADF);
    if (events == 0) {
      if (poll_ != nullptr && polling_) {
        uv_poll_stop(poll_);
        polling_ = false;
        Napi::ObjectWrap<Handle>::Unref();  // the JS object may be collected again once nothing is pending
      }
      return Napi::Number::New(env, 0);
    }
    if (poll_ == nullptr) {
      uv_loop_t* loop = nullptr;
      if (napi_get_uv_event_loop(env, &loop) != napi_ok) return Napi::Number::New(env, -EINVAL);
      poll_ = new uv_poll_t;
      int rc = uv_poll_init_socket(loop, poll_, fd_);
      if (rc != 0) {
        delete poll_;
        poll_ = nullptr;
        return Napi::Number::New(env, rc);  // libuv errors are already -errno
      }
      poll_->data = this;
      if (!referenced_) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    }
    int uv_events = ((events & kReadable) ? UV_READABLE : 0) | ((events & kWritable) ? UV_WRITABLE : 0);
    int rc = uv_poll_start(poll_, uv_events, &Handle::OnPoll);
    if (rc == 0 && !polling_) {
      polling_ = true;
      Napi::ObjectWrap<Handle>::Ref();
    }
    return Napi::Number::New(env, rc);
  }

  // status < 0: libuv saw EPOLLERR (it reports UV_EBADF whatever the socket's
  // error) and has already stopped the poll. lib/ reads the real errno.
  static void OnPoll(uv_poll_t* poll, int status, int events) {
    auto* self = static_cast<Handle*>(poll->data);
    if (self == nullptr) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    Napi::Object receiver = self->Value();
    if (status < 0 && self->polling_) {
      self->polling_ = false;
      self->Napi::ObjectWrap<Handle>::Unref();
    }
    int js_events = ((events & UV_READABLE) ? kReadable : 0) | ((events & UV_WRITABLE) ? kWritable : 0);
    napi_value argv[2] = {Napi::Number::New(env, status), Napi::Number::New(env, js_events)};
    napi_value result = nullptr;
    // The C call, not node-addon-api's: when the env can no longer run JS (a Worker being terminated)
    // its failure must be ignored, and node-addon-api would build an Error there, which aborts the process.
    napi_status st = napi_make_callback(env, nullptr, receiver, self->on_poll_.Value(), 2, argv, &result);
    if (st == napi_ok) return;
    napi_value exception = nullptr;
    bool pending = false;
    // A throwing JS callback must reach 'uncaughtException', never abort the process. No pending
    // exception: the env is shutting down, and there is nothing left to tell.
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending && napi_get_and_clear_last_exception(env, &exception) == napi_ok)
      napi_fatal_exception(env, exception);
  }

  // recv(buf, offset, length) -> bytes | -errno; out[0] = TLS record type (0 when
  // the kernel gave none, i.e. the fd has no kTLS RX and the bytes are raw).
  Napi::Value Recv(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Bytes buf;
    if (info.Length() < 1 || !ToBytes(env, info[0], &buf)) throw ArgError(env, false, "ktls native: expected a Buffer argument");
    int32_t off = ArgInt(info, 1);
    int32_t len = ArgInt(info, 2);
    if (off < 0 || len < 0 || static_cast<size_t>(off) > buf.length || static_cast<size_t>(len) > buf.length - off)
      throw ArgError(env, true, "ktls native: recv range outside the buffer");
    size_t offset = static_cast<size_t>(off);
    size_t length = static_cast<size_t>(len);
    if (fd_ < 0) return Napi::Number::New(env, -EBADF);

    iovec iov{buf.data + offset, length};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(unsigned char))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(fd_, &msg, MSG_DONTWAIT);
    if (n < 0) return Napi::Number::New(env, -errno);
    int type = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == KTLS_SOL_TLS && c->cmsg_type == KTLS_TLS_GET_RECORD_TYPE) type = *reinterpret_cast<unsigned char*>(CMSG_DATA(c));
    }
    // The caller may have detached or shrunk the out array's buffer since: never write past it.
    napi_value out = out_.Value();
    napi_typedarray_type out_type;
    size_t out_len = 0;
    void* out_data = nullptr;
    if (napi_get_typedarray_info(env, out, &out_type, &out_len, &out_data, nullptr, nullptr) == napi_ok && out_type == napi_int32_array &&
        out_len >= 1 && out_data != nullptr)
      static_cast<int32_t*>(out_data)[0] = type;
    return Napi::Number::New(env, static_cast<double>(n));
  }

  // send(buffers[], recordType) -> bytes | -errno. recordType 0 sends plain
  // application data; any other value becomes a TLS_SET_RECORD_TYPE cmsg.
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsArray()) throw ArgError(env, false, "ktls native: send(buffers, recordType)");
    auto list = info[0].As<Napi::Array>();
    int type = ArgInt(info, 1);
    uint32_t count = list.Length();
    if (count > kMaxIov) throw ArgError(env, true, "ktls native: too many buffers");
    if (fd_ < 0) return Napi::Number::New(env, -EBADF);

    // Most sends are one buffer or a few: no heap allocation for those.
    iovec few[16];
    std::vector<iovec> many;
    iovec* iov = few;
    if (count > 16) {
      many.resize(count);
      iov = many.data();
    }
    for (uint32_t i = 0; i < count; i++) {
      napi_value v;
      Bytes b;
      if (napi_get_element(env, list, i, &v) != napi_ok || !ToBytes(env, v, &b))
        throw ArgError(env, false, "ktls native: send expects Buffers");
      iov[i] = iovec{b.data, b.length};
    }
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(unsigned char))];
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    if (type != 0) {
      std::memset(control, 0, sizeof(control));
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = KTLS_SOL_TLS;
      c->cmsg_type = KTLS_TLS_SET_RECORD_TYPE;
      c->cmsg_len = CMSG_LEN(sizeof(unsigned char));
      *reinterpret_cast<unsigned char*>(CMSG_DATA(c)) = static_cast<unsigned char>(type);
    }
    ssize_t n = sendmsg(fd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    return Result(env, n);
  }

  Napi::Value Shutdown(const Napi::CallbackInfo& info) {
    int how = ArgInt(info, 0);
    if (fd_ < 0) return Napi::Number::New(info.Env(), -EBADF);
    return Result(info.Env(), shutdown(fd_, how));
  }

  // close() -> 0 | -errno; a second call is a no-op returning 0.
  Napi::Value Close(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), CloseNow(info.Env(), false)); }

  Napi::Value Ref(const Napi::CallbackInfo& info) {
    referenced_ = true;
    if (poll_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }

  Napi::Value Unref(const Napi::CallbackInfo& info) {
    referenced_ = false;
    if (poll_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }

  Napi::Value Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }

  // Drops everything that ties the JS object to native state: the poll handle,
  // the callback (it reaches back to the socket: a strong reference here would
  // keep both alive forever), the out array and the cleanup hook.
  int CloseNow(Napi::Env env, bool finalizing) {
    if (fd_ < 0) return 0;
    if (poll_ != nullptr) {
      poll_->data = nullptr;
      // Closing stops the poll (EPOLL_CTL_DEL) before the fd goes away; the
      // struct itself is freed once libuv is done with it.
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    if (polling_) {
      polling_ = false;
      if (!finalizing) Napi::ObjectWrap<Handle>::Unref();
    }
    on_poll_.Reset();
    out_.Reset();
    napi_remove_env_cleanup_hook(env, &Handle::OnEnvCleanup, this);
    int rc = close(fd_) < 0 ? -errno : 0;
    fd_ = -1;
    return rc;
  }

  static void OnEnvCleanup(void* arg) {
    auto* self = static_cast<Handle*>(arg);
    if (self->poll_ != nullptr) {
      self->poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(self->poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      self->poll_ = nullptr;
    }
    if (self->fd_ >= 0) close(self->fd_);
    self->fd_ = -1;
    self->polling_ = false;
  }

  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  bool polling_ = false;
  bool referenced_ = true;
  Napi::FunctionReference on_poll_;
  Napi::Reference<Napi::Int32Array> out_;
};

// adopt(fd, nonBlocking = 1) -> new fd | -errno: a close-on-exec duplicate that
// the Handle will own, so the original (libuv's) can be closed without ending the
// connection. nonBlocking 0 leaves the shared file status flags as they are.
Napi::Value Adopt(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  bool nonblock = info.Length() < 2 || ArgInt(info, 1) != 0;
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return Result(info.Env(), -1);
  if (!nonblock) return Napi::Number::New(info.Env(), dup);
  int flags = fcntl(dup, F_GETFL);
  if (flags < 0 || fcntl(dup, F_SETFL, flags | O_NONBLOCK) < 0) {
    int err = errno;
    close(dup);
    return Napi::Number::New(info.Env(), -err);
  }
  return Napi::Number::New(info.Env(), dup);
}

// closeFd(fd) -> 0 | -errno, for adopted fds never wrapped in a Handle.
Napi::Value CloseFd(const Napi::CallbackInfo& info) { return Result(info.Env(), close(ArgInt(info, 0))); }

Napi::Value GetsockoptInt(const Napi::CallbackInfo& info) {
  int value = 0;
  socklen_t len = sizeof(value);
  if (getsockopt(ArgInt(info, 0), ArgInt(info, 1), ArgInt(info, 2), &value, &len) < 0) return Result(info.Env(), -1);
  return Napi::Number::New(info.Env(), value);
}

Napi::Value SetsockoptInt(const Napi::CallbackInfo& info) {
  int value = ArgInt(info, 3);
  return Result(info.Env(), setsockopt(ArgInt(info, 0), ArgInt(info, 1), ArgInt(info, 2), &value, sizeof(value)));
}

// setLinger(fd, onoff, seconds) -> 0 | -errno: SO_LINGER with a struct linger
// (setsockoptInt cannot: the option takes the struct, not an int). {1, 0} makes
// the next close() reset the connection (RST) instead of ending it (FIN).
Napi::Value SetLinger(const Napi::CallbackInfo& info) {
  linger l{};
  l.l_onoff = ArgInt(info, 1);
  l.l_linger = ArgInt(info, 2);
  // The kernel reads a negative time as unsigned: a close() that waits forever.
  if (l.l_linger < 0) throw ArgError(info.Env(), true, "ktls native: expected a non-negative linger time");
  return Result(info.Env(), setsockopt(ArgInt(info, 0), SOL_SOCKET, SO_LINGER, &l, sizeof(l)));
}

// peerConnected(fd) -> 0 | -errno (ENOTCONN for an unconnected socket)
Napi::Value PeerConnected(const Napi::CallbackInfo& info) {
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  return Result(info.Env(), getpeername(ArgInt(info, 0), reinterpret_cast<sockaddr*>(&ss), &len));
}

// tcpEntered(fd) -> bytes that have entered TCP's send path since the connection
// began (acked + still queued), or -errno. kTLS can hold sealed records in its own
// list after sendmsg returns; lib/ compares this with what it expects before FIN.
Napi::Value TcpEntered(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  ktls_tcp_info ti{};
  socklen_t len = sizeof(ti);
  if (getsockopt(fd, SOL_TCP, TCP_INFO, &ti, &len) < 0) return Result(info.Env(), -1);
  if (len < offsetof(ktls_tcp_info, bytes_received)) return Napi::Number::New(info.Env(), -EOPNOTSUPP);  // kernels before 4.1
  uint64_t acked = ti.bytes_acked;
  int outq = 0;
  if (ioctl(fd, SIOCOUTQ, &outq) < 0) return Result(info.Env(), -1);
  return Napi::Number::New(info.Env(), static_cast<double>(acked) + outq);
}

}  // namespace

void InitSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("Handle", Handle::Define(env));
  exports.Set("adopt", Napi::Function::New(env, Adopt, "adopt"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("getsockoptInt", Napi::Function::New(env, GetsockoptInt, "getsockoptInt"));
  exports.Set("setsockoptInt", Napi::Function::New(env, SetsockoptInt, "setsockoptInt"));
  exports.Set("tcpEntered", Napi::Function::New(env, TcpEntered, "tcpEntered"));
  exports.Set("setLinger", Napi::Function::New(env, SetLinger, "setLinger"));
  exports.Set("peerConnected", Napi::Function::New(env, PeerConnected, "peerConnected"));
}

}  // namespace ktls
