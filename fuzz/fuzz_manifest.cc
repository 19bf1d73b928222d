// libFuzzer target: arbitrary bytes as an egg.yaml are parsed and, when
// accepted, turned into the stored JSON. Nothing may crash, hang or
// allocate without bound; every rejection must be a located one-line
// error.
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "egg/manifest.h"

namespace {

// A folder with a few files the input may name.
const std::string& Folder() {
  static std::string dir = [] {
    char templ[] = "/tmp/egg-fuzz-manifest-XXXXXX";
    std::string d = ::mkdtemp(templ) ? templ : "/tmp";
    std::string cmd = "mkdir -p '" + d + "/rootfs' '" + d + "/data/sub' && " +
                      "echo x > '" + d + "/a.py' && echo y > '" + d +
                      "/data/sub/b.csv'";
    if (std::system(cmd.c_str()) != 0) std::abort();
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view yaml(reinterpret_cast<const char*>(data), size);
  egg::ManifestOptions options;
  options.source_date_epoch = "0";
  auto m = egg::ParseManifest(yaml, Folder(), "egg.yaml", options);
  if (!m) {
    const std::string& msg = m.error().message();
    if (msg.find('\n') != std::string::npos) std::abort();
    return 0;
  }
  if (!egg::ManifestJson(*m) || !egg::NotebookJson(*m)) std::abort();
  return 0;
}
