// Non-Linux builds: an addon with no exports, so `npm install` succeeds and
// lib/ reports ERR_KTLS_UNAVAILABLE instead of failing to build or import.
#include <napi.h>

namespace {
Napi::Object Init(Napi::Env env, Napi::Object exports) { return exports; }
}  // namespace

NODE_API_MODULE(ktls, Init)
