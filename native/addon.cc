// Entry point of the ktls addon: registers the kTLS and socket functions.
#include "common.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ktls::InitKtls(env, exports);
  ktls::InitSocket(env, exports);
  ktls::InitZeroCopy(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(ktls, Init)
