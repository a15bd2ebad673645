// Shared helpers for the ktls addon. Every native call returns bytes or -errno;
// TypeScript turns negative results into errors with code/errno/syscall.
#pragma once

#include <napi.h>
#include <cerrno>
#include <cstdint>

namespace ktls {

// Argument checks are assertions: lib/ validates user input before calling us,
// so a failure here is a bug in the TypeScript layer, reported as a TypeError.
inline int32_t ArgInt(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), "ktls native: expected a number argument");
  return info[i].As<Napi::Number>().Int32Value();
}

inline Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsBuffer())
    throw Napi::TypeError::New(info.Env(), "ktls native: expected a Buffer argument");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

inline Napi::Number Result(Napi::Env env, long rc) {
  return Napi::Number::New(env, rc < 0 ? -errno : static_cast<double>(rc));
}

void InitKtls(Napi::Env env, Napi::Object exports);
void InitSocket(Napi::Env env, Napi::Object exports);
void InitZeroCopy(Napi::Env env, Napi::Object exports);  // after InitKtls: extends its constants

}  // namespace ktls
