// End-to-end tests of `egg build` through the real binary ($EGG_BIN): the
// bundled example builds byte-identically in different folders, time
// zones and locales; an existing output is never replaced without
// --force; a bad manifest exits 2 and leaves nothing behind.
//
// The example asks for a Debian runtime built by mmdebstrap, which needs
// the network and minutes; these tests swap in a small runtime folder and
// keep everything else of the example as it is.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "egg/egg.h"
#include "egg/manifest.h"

namespace egg {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

class BuildCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* bin = std::getenv("EGG_BIN");
    if (bin == nullptr || !Exists(bin)) GTEST_SKIP() << "EGG_BIN is not set";
    bin_ = bin;
    char tmpl[] = "/tmp/egg-build-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    src_ = root_ + "/hello";
    Sh("cp -r '" + std::string(EGG_SOURCE_DIR) + "/examples/hello' '" + src_ +
       "'");
    // A small root file system instead of the Debian one.
    Sh("mkdir -p '" + src_ + "/rootfs/bin' '" + src_ + "/rootfs/etc' && " +
       "printf 'ID=test\\n' > '" + src_ + "/rootfs/etc/os-release' && " +
       "printf '#!/bin/sh\\necho hi\\n' > '" + src_ + "/rootfs/bin/hi' && " +
       "chmod 755 '" + src_ + "/rootfs/bin/hi'");
    std::string yaml = ReadAll(src_ + "/egg.yaml");
    size_t start = yaml.find("runtime:\n");
    size_t end = yaml.find("\ndata:");
    ASSERT_NE(start, std::string::npos);
    ASSERT_NE(end, std::string::npos);
    yaml.replace(start, end - start, "runtime:\n  folder: rootfs\n");
    std::ofstream(src_ + "/egg.yaml", std::ios::binary) << yaml;
    Sh("mkdir -p '" + root_ + "/out1' '" + root_ + "/out2' '" + root_ +
       "/cache'");
  }
  void TearDown() override {
    if (!root_.empty()) Sh("rm -rf '" + root_ + "'");
  }

  int Sh(const std::string& cmd) {
    int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  // Runs `egg build` with extra environment and arguments; returns the
  // exit status; stdout and stderr land in root_/stdout, root_/stderr.
  int Build(const std::string& env, const std::string& args) {
    return Sh("env -u SOURCE_DATE_EPOCH XDG_CACHE_HOME='" + root_ + "/cache' " +
              env + " '" + bin_ + "' build " + args + " >'" + root_ +
              "/stdout' 2>'" + root_ + "/stderr'");
  }

  std::string Stderr() { return ReadAll(root_ + "/stderr"); }

  // Names in `dir` starting with '.' (temporary files left behind).
  std::string HiddenNames(const std::string& dir) {
    std::string out;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return "";
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != ".." && n[0] == '.') out += n + " ";
    }
    ::closedir(d);
    return out;
  }

  std::string bin_, root_, src_;
};

TEST_F(BuildCliTest, ExampleBuildsByteIdenticallyAcrossFoldersZonesLocales) {
  std::string a = root_ + "/out1/plant.egg";
  std::string b = root_ + "/out2/plant.egg";
  ASSERT_EQ(Build("TZ=UTC LC_ALL=C", "'" + src_ + "/egg.yaml' -o '" + a + "'"),
            0)
      << Stderr();
  // A second copy of the sources in another folder, another zone/locale.
  Sh("cp -r '" + src_ + "' '" + root_ + "/hello2'");
  ASSERT_EQ(Build("TZ=Asia/Kolkata LC_ALL=C.UTF-8",
                  "'" + root_ + "/hello2/egg.yaml' -o '" + b + "'"),
            0)
      << Stderr();
  std::string bytes_a = ReadAll(a);
  ASSERT_FALSE(bytes_a.empty());
  EXPECT_TRUE(bytes_a == ReadAll(b)) << "eggs differ";
  EXPECT_NE(ReadAll(root_ + "/stdout").find("sha256:"), std::string::npos);
  EXPECT_EQ(HiddenNames(root_ + "/out1"), "");
}

TEST_F(BuildCliTest, StoredManifestAndNotebookMatchTheParser) {
  std::string out = root_ + "/out1/plant.egg";
  ASSERT_EQ(Build("", "'" + src_ + "/egg.yaml' -o '" + out + "'"), 0)
      << Stderr();
  auto egg = EggFile::Open(out);
  ASSERT_TRUE(egg.has_value()) << egg.error().message();
  auto m = LoadManifest(src_ + "/egg.yaml");
  ASSERT_TRUE(m.has_value()) << m.error().message();
  EXPECT_EQ(egg->manifest_json(), ManifestJson(*m).value());
  EXPECT_EQ(egg->notebook_json(), NotebookJson(*m).value());
  auto csv = egg->ReadFile("data", "measurements.csv");
  ASSERT_TRUE(csv.has_value()) << csv.error().message();
  EXPECT_EQ(*csv, ReadAll(src_ + "/data/measurements.csv"));
  EXPECT_TRUE(egg->FindEntry("runtime", "bin/hi").has_value());
}

TEST_F(BuildCliTest, DefaultOutputIsNameBesideTheManifest) {
  ASSERT_EQ(Build("", "'" + src_ + "/egg.yaml'"), 0) << Stderr();
  EXPECT_TRUE(Exists(src_ + "/plant-growth.egg"));
  EXPECT_EQ(HiddenNames(src_), "");
}

TEST_F(BuildCliTest, NeverOverwritesWithoutForce) {
  std::string out = root_ + "/out1/plant.egg";
  std::ofstream(out) << "precious";
  EXPECT_EQ(Build("", "'" + src_ + "/egg.yaml' -o '" + out + "'"), 2);
  EXPECT_NE(Stderr().find("--force"), std::string::npos) << Stderr();
  EXPECT_EQ(ReadAll(out), "precious");

  EXPECT_EQ(Build("", "'" + src_ + "/egg.yaml' -o '" + out + "' --force"), 0)
      << Stderr();
  EXPECT_NE(ReadAll(out), "precious");
  EXPECT_EQ(HiddenNames(root_ + "/out1"), "");
}

TEST_F(BuildCliTest, MissingDataFileExits2AndWritesNothing) {
  ASSERT_EQ(::unlink((src_ + "/data/measurements.csv").c_str()), 0);
  std::string out = root_ + "/out1/plant.egg";
  EXPECT_EQ(Build("", "'" + src_ + "/egg.yaml' -o '" + out + "'"), 2);
  std::string err = Stderr();
  EXPECT_NE(err.find("egg.yaml:"), std::string::npos) << err;
  EXPECT_NE(err.find("measurements.csv"), std::string::npos) << err;
  EXPECT_FALSE(Exists(out));
  EXPECT_EQ(HiddenNames(root_ + "/out1"), "");
}

TEST_F(BuildCliTest, BadManifestExits2WithLocatedError) {
  std::ofstream(src_ + "/egg.yaml", std::ios::app) << "permisions: {}\n";
  EXPECT_EQ(Build("", "'" + src_ + "/egg.yaml' -o '" + root_ + "/out1/x.egg'"),
            2);
  EXPECT_NE(Stderr().find("did you mean 'permissions'?"), std::string::npos)
      << Stderr();
  EXPECT_FALSE(Exists(root_ + "/out1/x.egg"));
}

TEST_F(BuildCliTest, SignedBuildCarriesABuilderSignature) {
  if (Sh("command -v ssh-keygen >/dev/null") != 0) {
    GTEST_SKIP() << "ssh-keygen is not installed";
  }
  ASSERT_EQ(Sh("ssh-keygen -q -t ed25519 -N '' -C test -f '" + root_ +
               "/key' </dev/null"),
            0);
  std::string out = root_ + "/out1/signed.egg";
  ASSERT_EQ(Build("", "'" + src_ + "/egg.yaml' -o '" + out + "' --sign '" +
                          root_ + "/key'"),
            0)
      << Stderr();
  auto egg = EggFile::Open(out, EggFile::Depth::kSummary);
  ASSERT_TRUE(egg.has_value()) << egg.error().message();
  EXPECT_FALSE(egg->signatures().empty());
  EXPECT_EQ(HiddenNames(root_ + "/out1"), "");

  // The same build unsigned has the same content root.
  std::string plain = root_ + "/out2/plain.egg";
  ASSERT_EQ(Build("", "'" + src_ + "/egg.yaml' -o '" + plain + "'"), 0);
  auto unsigned_egg = EggFile::Open(plain, EggFile::Depth::kSummary);
  ASSERT_TRUE(unsigned_egg.has_value());
  EXPECT_EQ(egg->content_root(), unsigned_egg->content_root());
}

TEST_F(BuildCliTest, BadSigningKeyExits2AndWritesNothing) {
  std::ofstream(root_ + "/key") << "not a key";
  std::string out = root_ + "/out1/signed.egg";
  EXPECT_EQ(Build("", "'" + src_ + "/egg.yaml' -o '" + out + "' --sign '" +
                          root_ + "/key'"),
            2);
  EXPECT_FALSE(Exists(out));
}

}  // namespace
}  // namespace egg
