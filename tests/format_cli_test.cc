// The read-only commands (egg info, ls, cat, extract) through the built
// binary: payload on stdout, exit codes, and no terminal escape from an
// egg reaching the terminal.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>

#include "egg/egg.h"
#include "format_test_util.h"

namespace egg {
namespace {

using testing::ReadText;
using testing::TempDir;
using testing::WriteText;

struct Ran {
  int code = -1;
  std::string out;
};

// Runs `egg ARGS` with a shell (arguments are test-made, no quoting
// needed beyond single quotes), capturing stdout.
Ran RunEgg(const std::string& args) {
  const char* bin = std::getenv("EGG_BIN");
  std::string cmd = std::string("'") + bin + "' " + args + " 2>/dev/null";
  Ran r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* bin = std::getenv("EGG_BIN");
    if (bin == nullptr || ::access(bin, X_OK) != 0) {
      GTEST_SKIP() << "EGG_BIN does not name the built egg binary "
                      "(run through ctest)";
    }
    ::mkdir(tmp_.Sub("d").c_str(), 0755);
    WriteText(tmp_.Sub("d/hello.txt"), "hello\n");
    EggInput in;
    in.manifest = {{"name", "evil\x1b]0;title\x07name"},
                   {"author", "A\x1b[2J"}};
    in.notebook = {{"cells",
                    {{{"language", "python"},
                      {"source", "print(1)\x1b[31m\nsecond"}}}}};
    in.trees.push_back({"data", tmp_.Sub("d"), {}, nullptr});
    ASSERT_TRUE(WriteEgg(in, egg()));
  }
  std::string egg() const { return tmp_.Sub("x.egg"); }
  TempDir tmp_;
};

TEST_F(Cli, InfoEscapesEveryStringFromTheEgg) {
  Ran r = RunEgg("info '" + egg() + "'");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos);
  EXPECT_EQ(r.out.find('\x07'), std::string::npos);
  EXPECT_NE(r.out.find("evil"), std::string::npos);
  EXPECT_NE(r.out.find("python"), std::string::npos);
}

TEST_F(Cli, InfoJsonIsParseable) {
  Ran r = RunEgg("info --json '" + egg() + "'");
  ASSERT_EQ(r.code, 0);
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j["trees"][0]["name"], "data");
  EXPECT_EQ(j["signature_entries"], 0);
}

TEST_F(Cli, CatWritesTheRawBytes) {
  Ran r = RunEgg("cat '" + egg() + "' data:hello.txt");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "hello\n");
}

TEST_F(Cli, LsListsTreeAndPath) {
  Ran r = RunEgg("ls '" + egg() + "'");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("data:hello.txt"), std::string::npos);
}

TEST_F(Cli, ExtractWritesCellsAndData) {
  Ran r = RunEgg("extract '" + egg() + "' '" + tmp_.Sub("out") + "'");
  ASSERT_EQ(r.code, 0);
  EXPECT_EQ(ReadText(tmp_.Sub("out/data/hello.txt")), "hello\n");
  EXPECT_EQ(ReadText(tmp_.Sub("out/cells/001-python.py")),
            "print(1)\x1b[31m\nsecond");
  Ran again = RunEgg("extract '" + egg() + "' '" + tmp_.Sub("out") + "'");
  EXPECT_EQ(again.code, kExitUsage);
}

TEST_F(Cli, DamagedEggIsNotZeroExit) {
  auto bytes = testing::ReadBytes(egg());
  bytes[bytes.size() / 2] ^= 0xff;
  testing::WriteBytes(tmp_.Sub("bad.egg"), bytes);
  Ran r = RunEgg("cat '" + tmp_.Sub("bad.egg") + "' data:hello.txt");
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(r.out, "");
  Ran missing = RunEgg("info '" + tmp_.Sub("none.egg") + "'");
  EXPECT_EQ(missing.code, kExitUsage);
}

}  // namespace
}  // namespace egg
