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
          "sources": ["native/addon.cc", "native/ktls.cc", "native/socket.cc", "native/zerocopy.cc"],
          "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
          "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS"],
          "cflags!": ["-fno-exceptions"],
          "cflags_cc!": ["-fno-exceptions"],
          "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter", "-fexceptions"]
        }]
      ]
    }
  ]
}
