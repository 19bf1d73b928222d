// Real Debian runtimes through mmdebstrap. Slow (ctest label "slow");
// skipped with the reason when mmdebstrap or the mirror is unavailable.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <string>

#include "egg/runtime.h"
#include "egg/store.h"
#include "store/fs_util.h"

namespace egg {
namespace {

TEST(DebianRuntime, SamePackagesGiveTheSameDigestTwice) {
  if (::access("/usr/bin/mmdebstrap", X_OK) != 0) {
    GTEST_SKIP() << "mmdebstrap is not installed";
  }
  char dir[] = "/tmp/egg-debian-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string base = dir;

  DebianOptions options;
  options.packages = {"python3-minimal"};
  RuntimeInfo first, second;
  for (int round = 0; round < 2; ++round) {
    auto store = Store::Open({.root = base + "/store" +
                                      std::to_string(round)});
    ASSERT_TRUE(store.has_value());
    auto info = CreateDebianRuntime(*store, options);
    if (!info && info.error().code() == Code::kIo && round == 0) {
      (void)RemoveTree(base);
      GTEST_SKIP() << "cannot build from the mirror: "
                   << info.error().message();
    }
    ASSERT_TRUE(info.has_value()) << info.error().message();
    (round == 0 ? first : second) = *info;
  }
  EXPECT_EQ(DigestRef(first.digest), DigestRef(second.digest));
  EXPECT_EQ(first.packages, second.packages);
  bool has_python = false;
  for (const auto& p : first.packages) {
    if (p.name == "python3-minimal" && !p.version.empty()) has_python = true;
  }
  EXPECT_TRUE(has_python);
  EXPECT_EQ(first.source_date_epoch, 1686355200);
  ASSERT_TRUE(RemoveTree(base).has_value());
}

}  // namespace
}  // namespace egg
