// libFuzzer target: arbitrary bytes as an egg are opened, verified and
// extracted. Nothing may crash, hang, allocate without bound or write
// outside the extraction folder.
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "egg/egg.h"

namespace {

int MemFd() {
  static int fd = ::memfd_create("egg-fuzz", MFD_CLOEXEC);
  return fd;
}

const std::string& WorkDir() {
  static std::string dir = [] {
    char templ[] = "/tmp/egg-fuzz-XXXXXX";
    return std::string(::mkdtemp(templ) ? templ : "/tmp");
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fd = MemFd();
  if (fd < 0 || ::ftruncate(fd, 0) != 0) return 0;
  if (::pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) return 0;
  std::string path = "/proc/self/fd/" + std::to_string(fd);

  auto summary = egg::EggFile::Open(path, egg::EggFile::Depth::kSummary);
  auto egg = egg::EggFile::Open(path);
  if (!egg) return 0;
  egg::VerifyOptions options;
  options.threads = 1;
  (void)egg->VerifyContent(options);
  std::string out = WorkDir() + "/x";
  for (const auto& [name, tree] : egg->trees()) {
    (void)egg->ExtractTree(name, out);
    std::error_code ec;
    std::filesystem::remove_all(out, ec);
  }
  return 0;
}
