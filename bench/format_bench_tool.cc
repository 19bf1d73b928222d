// Driver for bench/format_bench.sh: builds, verifies and summarises eggs
// through the egg_format API alone, so the numbers are the format's own.
//   egg_format_bench build DIR OUT.egg [threads]
//   egg_format_bench verify EGG [threads]
//   egg_format_bench info EGG
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "egg/egg.h"

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: egg_format_bench build DIR OUT [threads] | "
               "verify EGG [threads] | info EGG\n");
  return 2;
}

int Die(const egg::Error& e) {
  std::fprintf(stderr, "egg_format_bench: %s\n", e.message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return Usage();
  std::string cmd = argv[1];
  if (cmd == "build" && argc >= 4) {
    egg::EggInput in;
    in.manifest = {{"name", "bench"}};
    in.trees.push_back({"data", argv[2], {}, nullptr});
    egg::WriteOptions options;
    options.force = true;
    if (argc >= 5) options.threads = static_cast<unsigned>(std::atoi(argv[4]));
    auto r = egg::WriteEgg(in, argv[3], options);
    if (!r) return Die(r.error());
    std::printf("%llu raw bytes, %llu chunks, %llu bytes written\n",
                static_cast<unsigned long long>(r->raw_bytes),
                static_cast<unsigned long long>(r->chunk_count),
                static_cast<unsigned long long>(r->file_bytes));
    return 0;
  }
  if (cmd == "verify") {
    auto egg = egg::EggFile::Open(argv[2]);
    if (!egg) return Die(egg.error());
    egg::VerifyOptions options;
    if (argc >= 4) options.threads = static_cast<unsigned>(std::atoi(argv[3]));
    if (auto s = egg->VerifyContent(options); !s) return Die(s.error());
    return 0;
  }
  if (cmd == "info") {
    auto start = std::chrono::steady_clock::now();
    auto egg = egg::EggFile::Open(argv[2], egg::EggFile::Depth::kSummary);
    if (!egg) return Die(egg.error());
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                  std::chrono::steady_clock::now() - start)
                  .count();
    std::printf("%s %lld\n", egg::DigestRef(egg->content_root()).c_str(),
                static_cast<long long>(us));
    return 0;
  }
  return Usage();
}
