// Entry point of the ktls addon: registers the kTLS and socket functions.
#include <dlfcn.h>

#include "common.h"

namespace {

// libuv calls our close callbacks (uv_close of a socket's poll) after a Worker's env
// has gone, on the Worker's last loop turns; Node unloads an addon with the last env
// that loaded it, and a callback into an unloaded library is a jump into unmapped
// memory. Loaded once, the library stays for the process's life (RTLD_NODELETE).
void PinLibrary() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&PinLibrary), &info) == 0 || info.dli_fname == nullptr) return;
  // The handle is kept on purpose: never dlclose()d. NULL: nothing was pinned, and
  // nothing else to do (the library is already loaded; this only changes its unloading).
  static void* pinned = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  (void)pinned;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  PinLibrary();
  ktls::InitKtls(env, exports);
  ktls::InitSocket(env, exports);
  ktls::InitZeroCopy(env, exports);
  ktls::InitDiag(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(ktls, Init)
