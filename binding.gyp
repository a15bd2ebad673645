{
  "targets": [
    {
      "target_name": "ktls",
      "conditions": [
        ["OS!='linux'", {
          "sources": ["native/unsupported.cc"],
          "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
          "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"]
        }],
        ["OS=='linux'", {
          # NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS: a native call made while a Worker is being
          # terminated cannot throw into JS; node-addon-api then drops the error instead of
          # aborting the process (std::terminate, or a fatal error building the Error).
          "sources": ["native/addon.cc", "native/ktls.cc", "native/socket.cc", "native/zerocopy.cc", "native/diag.cc"],
          "libraries": ["-ldl"],
          "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
          "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
          "cflags!": ["-fno-exceptions"],
          "cflags_cc!": ["-fno-exceptions"],
          "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter", "-fexceptions"]
        }]
      ]
    }
  ]
}
