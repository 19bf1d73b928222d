// Seed eggs for the fuzzer (fuzz/make_corpus.sh sets EGG_FUZZ_CORPUS_DIR).
// Without the variable the eggs are still built and checked to open.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "egg/egg.h"
#include "format_test_util.h"

namespace egg {
namespace {

using testing::RandomBytes;
using testing::TempDir;
using testing::WriteText;

TEST(FuzzCorpus, SeedEggsOpenAndVerify) {
  TempDir tmp;
  std::vector<std::string> eggs;
  auto build = [&](const std::string& name, EggInput in) {
    std::string path = tmp.Sub(name + ".egg");
    auto r = WriteEgg(in, path);
    ASSERT_TRUE(r) << r.error().message();
    eggs.push_back(path);
  };

  build("empty", EggInput{});

  ::mkdir(tmp.Sub("d").c_str(), 0755);
  ::mkdir(tmp.Sub("d/sub").c_str(), 0755);
  WriteText(tmp.Sub("d/a.txt"), "hello\n");
  WriteText(tmp.Sub("d/sub/run.sh"), "#!/bin/sh\n", 0755);
  WriteText(tmp.Sub("d/sub/big"), RandomBytes(40000, 5) +
                                      std::string(30000, 'x'));
  ::symlink("../a.txt", tmp.Sub("d/sub/l").c_str());
  EggInput one;
  one.manifest = {{"name", "seed"}, {"data", {{"files", 3}}}};
  one.notebook = {{"cells", {{{"language", "python"}, {"source", "1"}}}}};
  one.trees.push_back({"data", tmp.Sub("d"), {}, nullptr});
  build("data", one);

  EggInput two = one;
  two.trees.push_back({"runtime", tmp.Sub("d"), {}, nullptr});
  two.signatures = {'s', 'i', 'g'};
  build("two-trees-signed", two);

  const char* out = std::getenv("EGG_FUZZ_CORPUS_DIR");
  for (const std::string& path : eggs) {
    auto egg = EggFile::Open(path);
    ASSERT_TRUE(egg) << egg.error().message();
    EXPECT_TRUE(egg->VerifyContent());
    if (out != nullptr && *out != '\0') {
      std::filesystem::copy_file(
          path, std::string(out) + "/" +
                    std::filesystem::path(path).filename().string(),
          std::filesystem::copy_options::overwrite_existing);
    }
  }
}

}  // namespace
}  // namespace egg
