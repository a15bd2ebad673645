// Shared helpers for the ktls addon. Every native call returns bytes or -errno;
// TypeScript turns negative results into errors with code/errno/syscall.
#pragma once

#include <napi.h>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace ktls {

// A TypeError/RangeError with a Node-style `code`, so callers can tell bad
// arguments apart without parsing messages.
inline Napi::Error ArgError(Napi::Env env, bool range, const char* message) {
  Napi::Error e =
      range ? static_cast<Napi::Error>(Napi::RangeError::New(env, message)) : static_cast<Napi::Error>(Napi::TypeError::New(env, message));
  e.Set("code", Napi::String::New(env, range ? "ERR_OUT_OF_RANGE" : "ERR_INVALID_ARG_TYPE"));
  return e;
}

// Argument checks are assertions: lib/ validates user input before calling us,
// so a failure here is a bug in the TypeScript layer. Still, no value may turn
// into a different one (NaN into fd 0): anything but an int32 is refused.
inline int32_t ArgInt(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsNumber()) throw ArgError(info.Env(), false, "ktls native: expected a number argument");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= INT32_MIN && v <= INT32_MAX) || std::floor(v) != v)
    throw ArgError(info.Env(), true, "ktls native: expected a 32-bit integer argument");
  return static_cast<int32_t>(v);
}

// A Uint8Array (Buffer) only: napi_is_buffer also says yes to a DataView, whose
// data the Buffer accessors then cannot read.
inline Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw ArgError(info.Env(), false, "ktls native: expected a Buffer argument");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

// Buffers one sendmsg takes (IOV_MAX on Linux); lib/ batches at this size (constants.MAX_IOV).
inline constexpr size_t kMaxIov = 1024;

// A Uint8Array's bytes in one N-API call (the hot paths: recv, send). False
// for anything else; a detached buffer is a valid, empty one.
struct Bytes {
  uint8_t* data = nullptr;
  size_t length = 0;
};
inline bool ToBytes(napi_env env, napi_value v, Bytes* out) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return false;
  napi_typedarray_type type;
  void* data = nullptr;
  size_t length = 0;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr) != napi_ok || type != napi_uint8_array) return false;
  out->data = static_cast<uint8_t*>(data);
  out->length = data == nullptr ? 0 : length;
  return true;
}

inline Napi::Number Result(Napi::Env env, long rc) { return Napi::Number::New(env, rc < 0 ? -errno : static_cast<double>(rc)); }

void InitKtls(Napi::Env env, Napi::Object exports);
void InitSocket(Napi::Env env, Napi::Object exports);
void InitZeroCopy(Napi::Env env, Napi::Object exports);  // after InitKtls: extends its constants
void InitDiag(Napi::Env env, Napi::Object exports);      // after InitKtls: extends its constants

}  // namespace ktls
