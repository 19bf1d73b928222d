// `egg keygen`, `egg sign` and `egg verify` run as a person would run them:
// exit codes, files on disk, and interop with ssh-keygen through the CLI.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "common/fd.h"
#include "egg/crypto.h"
#include "egg/egg.h"
#include "format_test_util.h"

namespace egg {
namespace {

using testing::ReadText;
using testing::Shell;
using testing::WriteText;

class CryptoCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* bin = std::getenv("EGG_BIN");
    if (bin == nullptr || access(bin, X_OK) != 0) {
      GTEST_SKIP() << "EGG_BIN does not point at the egg binary";
    }
    bin_ = bin;
    char dir[] = "/tmp/egg-cryptocli-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    // Keep the person's own trust file and agent out of every run.
    env_ = "env -u SSH_AUTH_SOCK -u SOURCE_DATE_EPOCH XDG_CONFIG_HOME='" +
           dir_ + "/config' HOME='" + dir_ + "' ";
    MakeEgg("a.egg", "hello");
  }
  void TearDown() override {
    if (!dir_.empty()) Shell("rm -rf '" + dir_ + "'");
  }

  std::string Path(const std::string& name) { return dir_ + "/" + name; }

  void MakeEgg(const std::string& name, const std::string& content) {
    std::string src = Path("src-" + name);
    ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
    WriteText(src + "/data.txt", content);
    EggInput in;
    in.manifest = {{"name", "test"}};
    in.notebook = {{"cells", nlohmann::json::array()}};
    TreeInput t;
    t.name = "data";
    t.directory = src;
    in.trees.push_back(std::move(t));
    auto w = WriteEgg(in, Path(name));
    ASSERT_TRUE(w.has_value()) << w.error().message();
  }

  // Runs egg with arguments; returns the exit code, stdout in *out.
  int Egg(const std::string& args, std::string* out = nullptr) {
    return Shell(env_ + "'" + bin_ + "' " + args + " 2>'" + Path("stderr") +
                     "'",
                 out);
  }
  std::string Stderr() {
    auto s = ReadFileToString(Path("stderr"));
    return s ? *s : "";
  }

  // egg keygen -o Path(name); returns the .pub line.
  std::string Keygen(const std::string& name) {
    EXPECT_EQ(Egg("keygen -o '" + Path(name) + "' --comment " + name), 0)
        << Stderr();
    auto pub = ReadFileToString(Path(name + ".pub"));
    return pub ? *pub : "";
  }
  void Trust(const std::string& file, const std::string& principal,
             const std::string& pub_line) {
    std::ofstream f(Path(file), std::ios::app);
    f << principal << " " << pub_line;
  }

  Digest RootOf(const std::string& name) {
    auto e = EggFile::Open(Path(name), EggFile::Depth::kSummary);
    EXPECT_TRUE(e.has_value());
    return e ? e->content_root() : Digest{};
  }

  std::string bin_, dir_, env_;
};

TEST_F(CryptoCli, KeygenWritesPrivateKey0600AndNeverOverwrites) {
  std::string out;
  ASSERT_EQ(Egg("keygen -o '" + Path("k") + "' --comment me", &out), 0);
  EXPECT_EQ(out.rfind("SHA256:", 0), 0u) << out;
  struct stat st;
  ASSERT_EQ(stat(Path("k").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto before = ReadFileToString(Path("k"));
  EXPECT_EQ(Egg("keygen -o '" + Path("k") + "'"), 2);
  EXPECT_EQ(*ReadFileToString(Path("k")), *before);
  EXPECT_EQ(Egg("keygen -o '" + Path("k") + "' --force"), 0);
  EXPECT_NE(*ReadFileToString(Path("k")), *before);
  // The fingerprint printed is the one ssh-keygen computes.
  std::string listed;
  ASSERT_EQ(Egg("keygen -o '" + Path("k2") + "'", &out), 0);
  if (Shell("ssh-keygen -l -f '" + Path("k2.pub") + "'", &listed) == 0) {
    EXPECT_EQ(listed.substr(0, listed.find(' ', 4)).substr(4),
              out.substr(0, out.find(' ')));
  }
}

TEST_F(CryptoCli, SignKeepsContentRootAndVerifiesAsTrusted) {
  std::string pub = Keygen("alice");
  Trust("allowed", "alice@example.org", pub);
  Digest before = RootOf("a.egg");
  std::string out;
  ASSERT_EQ(Egg("sign '" + Path("a.egg") + "' --key '" + Path("alice") +
                "' --role builder"),
            0)
      << Stderr();
  EXPECT_EQ(RootOf("a.egg"), before);
  ASSERT_EQ(Egg("verify '" + Path("a.egg") + "' --trusted '" +
                    Path("allowed") + "' --require-signature",
                &out),
            0)
      << Stderr();
  EXPECT_NE(out.find("alice@example.org"), std::string::npos) << out;
  EXPECT_NE(out.find("builder"), std::string::npos);
  EXPECT_NE(out.find("(trusted)"), std::string::npos);
}

// sign reports the new entry with the trust root verify uses: the
// default allowed_signers under $XDG_CONFIG_HOME, or --trusted.
TEST_F(CryptoCli, SignReportsTheKeyTrustedAsVerifyDoes) {
  std::string pub = Keygen("alice");
  ASSERT_EQ(mkdir(Path("config").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(Path("config/egg").c_str(), 0755), 0);
  Trust("config/egg/allowed_signers", "alice@example.org", pub);
  std::string out;
  ASSERT_EQ(
      Egg("sign '" + Path("a.egg") + "' --key '" + Path("alice") + "'", &out),
      0)
      << Stderr();
  EXPECT_NE(out.find("(trusted)"), std::string::npos) << out;
  EXPECT_EQ(out.find("untrusted"), std::string::npos) << out;
  std::string verified;
  ASSERT_EQ(Egg("verify '" + Path("a.egg") + "'", &verified), 0) << Stderr();
  EXPECT_NE(verified.find("(trusted)"), std::string::npos) << verified;

  // --trusted names another file, as for verify.
  Trust("other", "bob@example.org", Keygen("bob"));
  ASSERT_EQ(Egg("sign '" + Path("a.egg") + "' --key '" + Path("bob") +
                    "' --trusted '" + Path("other") + "'",
                &out),
            0)
      << Stderr();
  EXPECT_NE(out.find("(trusted)"), std::string::npos) << out;
}

TEST_F(CryptoCli, SignToOutputLeavesTheOriginalUnsigned) {
  Keygen("k");
  ASSERT_EQ(Egg("sign '" + Path("a.egg") + "' --key '" + Path("k") +
                "' -o '" + Path("b.egg") + "'"),
            0)
      << Stderr();
  EXPECT_EQ(RootOf("a.egg"), RootOf("b.egg"));
  std::string out;
  ASSERT_EQ(Egg("verify '" + Path("a.egg") + "'", &out), 0);
  EXPECT_NE(out.find("signatures: unsigned"), std::string::npos) << out;
  EXPECT_EQ(Egg("sign '" + Path("a.egg") + "' --key '" + Path("k") +
                "' -o '" + Path("b.egg") + "'"),
            2);  // exists and no --force
}

TEST_F(CryptoCli, UnsignedEggFailsRequireSignature) {
  std::string out;
  EXPECT_EQ(Egg("verify '" + Path("a.egg") + "' --require-signature", &out),
            1);
  EXPECT_NE(out.find("unsigned"), std::string::npos);
  EXPECT_EQ(out.find("(trusted)"), std::string::npos);
}

TEST_F(CryptoCli, UntrustedSignerIsNeverReportedAsVerified) {
  Keygen("mallory");
  std::string other = Keygen("alice");
  Trust("allowed", "alice@example.org", other);
  ASSERT_EQ(Egg("sign '" + Path("a.egg") + "' --key '" + Path("mallory") +
                "'"),
            0);
  std::string out;
  EXPECT_EQ(Egg("verify '" + Path("a.egg") + "' --trusted '" +
                    Path("allowed") + "' --require-signature",
                &out),
            1);
  EXPECT_NE(out.find("untrusted key"), std::string::npos) << out;
  ASSERT_EQ(Egg("verify '" + Path("a.egg") + "' --trusted '" +
                    Path("allowed") + "' --json",
                &out),
            0);
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["signatures"]["state"], "untrusted");
  EXPECT_FALSE(j["signatures"]["entries"][0]["trusted"].get<bool>());
  EXPECT_FALSE(j["verified"].get<bool>());
  EXPECT_TRUE(j["content_intact"].get<bool>());
}

TEST_F(CryptoCli, DefaultTrustFileIsUsedWhenPresent) {
  std::string pub = Keygen("alice");
  ASSERT_EQ(Egg("sign '" + Path("a.egg") + "' --key '" + Path("alice") +
                "'"),
            0);
  ASSERT_EQ(Shell("mkdir -p '" + Path("config/egg") + "'"), 0);
  Trust("config/egg/allowed_signers", "alice@x", pub);
  EXPECT_EQ(Egg("verify '" + Path("a.egg") + "' --require-signature"), 0)
      << Stderr();
}

TEST_F(CryptoCli, CorruptedContentFailsVerification) {
  Keygen("k");
  ASSERT_EQ(Egg("sign '" + Path("a.egg") + "' --key '" + Path("k") + "'"),
            0);
  auto egg = EggFile::Open(Path("a.egg"));
  ASSERT_TRUE(egg.has_value());
  uint64_t at = egg->layout().blocks.offset + egg->layout().blocks.length / 2;
  int fd = open(Path("a.egg").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  uint8_t b;
  ASSERT_EQ(pread(fd, &b, 1, static_cast<off_t>(at)), 1);
  b ^= 0x40;
  ASSERT_EQ(pwrite(fd, &b, 1, static_cast<off_t>(at)), 1);
  close(fd);
  EXPECT_EQ(Egg("verify '" + Path("a.egg") + "'"), 1);
  // Signing refuses damaged content too.
  EXPECT_NE(Egg("sign '" + Path("a.egg") + "' --key '" + Path("k") + "'"),
            0);
}

TEST_F(CryptoCli, RelabelledRoleInTheFileFailsVerification) {
  Keygen("k");
  ASSERT_EQ(Egg("sign '" + Path("a.egg") + "' --key '" + Path("k") +
                "' --role reviewer"),
            0);
  auto egg = EggFile::Open(Path("a.egg"), EggFile::Depth::kSummary);
  ASSERT_TRUE(egg.has_value());
  // Section header 16 bytes, record length 4, index 4, time 8, role length
  // 1: "reviewer" becomes "reviewes".
  uint64_t at = egg->layout().signatures.offset + 16 + 4 + 4 + 8 + 1 + 7;
  int fd = open(Path("a.egg").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  uint8_t s = 's';
  ASSERT_EQ(pwrite(fd, &s, 1, static_cast<off_t>(at)), 1);
  close(fd);
  std::string out;
  EXPECT_EQ(Egg("verify '" + Path("a.egg") + "'", &out), 1);
  EXPECT_NE(out.find("INVALID"), std::string::npos) << out;
}

TEST_F(CryptoCli, SignaturesMovedToAnotherEggFail) {
  Keygen("k");
  MakeEgg("b.egg", "other content");
  ASSERT_EQ(Egg("sign '" + Path("a.egg") + "' --key '" + Path("k") + "'"),
            0);
  auto a = EggFile::Open(Path("a.egg"), EggFile::Depth::kSummary);
  auto b = EggFile::Open(Path("b.egg"), EggFile::Depth::kSummary);
  ASSERT_TRUE(a.has_value() && b.has_value());
  ASSERT_TRUE(b->WriteWithSignatures(a->signatures(), Path("c.egg"), false)
                  .has_value());
  EXPECT_EQ(Egg("verify '" + Path("c.egg") + "'"), 1);
}

TEST_F(CryptoCli, MalformedTrustFileIsUsageError) {
  WriteText(Path("allowed"), "alice@x cert-authority ssh-ed25519 AAAA\n");
  EXPECT_EQ(Egg("verify '" + Path("a.egg") + "' --trusted '" +
                Path("allowed") + "'"),
            2);
  EXPECT_NE(Stderr().find("cert-authority"), std::string::npos);
  EXPECT_EQ(Egg("verify '" + Path("a.egg") + "' --trusted '" +
                Path("missing") + "'"),
            2);
}

TEST_F(CryptoCli, ExportedEntryVerifiesWithSshKeygen) {
  if (Shell("command -v ssh-keygen >/dev/null") != 0) {
    GTEST_SKIP() << "ssh-keygen not installed";
  }
  std::string pub = Keygen("alice");
  Trust("allowed", "alice@x", pub);
  ASSERT_EQ(Egg("sign '" + Path("a.egg") + "' --key '" + Path("alice") +
                "'"),
            0);
  ASSERT_EQ(Egg("verify '" + Path("a.egg") + "' --export-entry 0 "
                "--signed-bytes '" + Path("stmt") + "' --signature '" +
                Path("stmt.sig") + "'"),
            0)
      << Stderr();
  EXPECT_EQ(Shell("ssh-keygen -Y verify -f '" + Path("allowed") +
                  "' -I alice@x -n " +
                  std::string(crypto::kSignatureNamespace) + " -s '" +
                  Path("stmt.sig") + "' < '" + Path("stmt") +
                  "' >/dev/null 2>&1"),
            0);
}

TEST_F(CryptoCli, SshKeygenSignatureIsImportedThroughTheCli) {
  if (Shell("command -v ssh-keygen >/dev/null") != 0) {
    GTEST_SKIP() << "ssh-keygen not installed";
  }
  ASSERT_EQ(Shell("ssh-keygen -q -t ed25519 -N '' -C bob -f '" +
                  Path("bob") + "'"),
            0);
  ASSERT_EQ(Egg("sign '" + Path("a.egg") + "' --prepare '" + Path("stmt") +
                "' --pubkey '" + Path("bob.pub") + "' --role approver"),
            0)
      << Stderr();
  ASSERT_EQ(Shell("ssh-keygen -q -Y sign -f '" + Path("bob") + "' -n " +
                  std::string(crypto::kSignatureNamespace) + " '" +
                  Path("stmt") + "' 2>/dev/null"),
            0);
  ASSERT_EQ(Egg("sign '" + Path("a.egg") + "' --import-signature '" +
                Path("stmt.sig") + "' --signed-bytes '" + Path("stmt") +
                "'"),
            0)
      << Stderr();
  auto pub = ReadFileToString(Path("bob.pub"));
  Trust("allowed", "bob@x", *pub);
  std::string out;
  ASSERT_EQ(Egg("verify '" + Path("a.egg") + "' --trusted '" +
                    Path("allowed") + "' --require-signature --json",
                &out),
            0)
      << Stderr();
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["signatures"]["entries"][0]["role"], "approver");
  EXPECT_TRUE(j["verified"].get<bool>());
}

TEST_F(CryptoCli, EncryptedKeyWithoutAgentSaysAddItToSshAgent) {
  if (Shell("command -v ssh-keygen >/dev/null") != 0) {
    GTEST_SKIP() << "ssh-keygen not installed";
  }
  ASSERT_EQ(Shell("ssh-keygen -q -t ed25519 -N secret -f '" + Path("enc") +
                  "'"),
            0);
  EXPECT_EQ(Egg("sign '" + Path("a.egg") + "' --key '" + Path("enc") + "'"),
            2);
  EXPECT_NE(Stderr().find("add it to ssh-agent"), std::string::npos)
      << Stderr();
}

TEST_F(CryptoCli, MalformedKeyFileIsRejected) {
  WriteText(Path("bad"), "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n"
                         "-----END OPENSSH PRIVATE KEY-----\n");
  EXPECT_EQ(Egg("sign '" + Path("a.egg") + "' --key '" + Path("bad") + "'"),
            2);
  EXPECT_NE(Stderr().find("malformed OpenSSH private key"),
            std::string::npos);
}

TEST_F(CryptoCli, InvalidRoleIsRejected) {
  Keygen("k");
  EXPECT_EQ(Egg("sign '" + Path("a.egg") + "' --key '" + Path("k") +
                "' --role 'Root Admin'"),
            2);
}

TEST_F(CryptoCli, SourceDateEpochSetsTheSignedTime) {
  Keygen("k");
  ASSERT_EQ(Shell("SOURCE_DATE_EPOCH=86400 '" + bin_ + "' sign '" +
                  Path("a.egg") + "' --key '" + Path("k") + "' 2>/dev/null"),
            0);
  std::string out;
  ASSERT_EQ(Egg("verify '" + Path("a.egg") + "' --json", &out), 0);
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["signatures"]["entries"][0]["time"], 86400);
}

}  // namespace
}  // namespace egg
