// Interop of egg_crypto with OpenSSH's own tools: ssh-keygen verifies
// egg's signatures, egg accepts ssh-keygen's, keys move both ways, and an
// encrypted key signs through a private ssh-agent started by the test.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "common/fd.h"
#include "egg/crypto.h"
#include "format_test_util.h"

namespace egg::crypto {
namespace {

bool HaveTool(const char* name) {
  std::string cmd = std::string("command -v ") + name + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

using testing::ReadText;
using testing::Shell;
using testing::WriteText;

class SshInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveTool("ssh-keygen")) GTEST_SKIP() << "ssh-keygen not installed";
    char dir[] = "/tmp/egg-sshinterop-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override {
    if (!dir_.empty()) Shell("rm -rf '" + dir_ + "'");
  }
  std::string Path(const std::string& name) { return dir_ + "/" + name; }

  // An ssh-keygen key at Path(name) (optionally with a passphrase).
  void SshKeygen(const std::string& name, const std::string& pass = "") {
    ASSERT_EQ(Shell("ssh-keygen -q -t ed25519 -C test -N '" + pass + "' -f '" +
                  Path(name) + "' </dev/null"),
              0);
  }

  std::string dir_;
};

Digest Root() {
  Digest d;
  d.fill(0x42);
  return d;
}

TEST_F(SshInterop, EggSignatureVerifiesWithSshKeygen) {
  auto key = SecretKey::Generate();
  ASSERT_TRUE(key.has_value());
  PublicKey pub = key->public_key();
  auto signer = MakeKeySigner(std::move(*key));
  SignatureChain chain;
  ASSERT_TRUE(AppendSignature(chain, Root(), *signer, "builder", 1000)
                  .has_value());
  auto st = EntryStatement(chain, Root(), 0);
  ASSERT_TRUE(st.has_value());
  WriteText(Path("signed"), std::string_view(
      reinterpret_cast<const char*>(EncodeStatement(*st).data()),
      EncodeStatement(*st).size()));
  WriteText(Path("sig"), ArmorSshSig(chain.entries[0].sshsig));
  WriteText(Path("allowed"), "alice@x " + PublicKeyLine(pub, "") + "\n");

  std::string base = "ssh-keygen -Y verify -f '" + Path("allowed") +
                     "' -I alice@x -s '" + Path("sig") + "' ";
  EXPECT_EQ(Shell(base + "-n " + std::string(kSignatureNamespace) + " < '" +
                Path("signed") + "' >/dev/null 2>&1"),
            0);
  // Negative controls: the wrong namespace and changed bytes fail there too.
  EXPECT_NE(Shell(base + "-n git < '" + Path("signed") + "' >/dev/null 2>&1"),
            0);
  WriteText(Path("other"), "not the statement");
  EXPECT_NE(Shell(base + "-n " + std::string(kSignatureNamespace) + " < '" +
                Path("other") + "' >/dev/null 2>&1"),
            0);
}

TEST_F(SshInterop, SshKeygenSignatureIsAcceptedIntoTheChain) {
  SshKeygen("id");
  auto pub = ParsePublicKeyLine(ReadText(Path("id.pub")));
  ASSERT_TRUE(pub.has_value());
  SignatureChain chain;
  Statement st = NextStatement(chain, Root(), *pub, "reviewer", 2000);
  auto bytes = EncodeStatement(st);
  WriteText(Path("signed"),
            std::string_view(reinterpret_cast<const char*>(bytes.data()),
                             bytes.size()));
  ASSERT_EQ(Shell("ssh-keygen -q -Y sign -f '" + Path("id") + "' -n " +
                std::string(kSignatureNamespace) + " '" + Path("signed") +
                "' >/dev/null 2>&1"),
            0);
  auto blob = DearmorSshSig(ReadText(Path("signed.sig")));
  ASSERT_TRUE(blob.has_value()) << blob.error().message();
  // The same bytes signed by ssh-keygen in another namespace are refused.
  ASSERT_EQ(Shell("ssh-keygen -q -Y sign -f '" + Path("id") + "' -n git < '" +
                  Path("signed") + "' > '" + Path("git.sig") + "' 2>/dev/null"),
            0);
  auto git_blob = DearmorSshSig(ReadText(Path("git.sig")));
  ASSERT_TRUE(git_blob.has_value());
  SignatureChain scratch;
  EXPECT_FALSE(AppendImported(scratch, Root(), bytes, *git_blob).has_value());

  auto s = AppendImported(chain, Root(), bytes, *blob);
  ASSERT_TRUE(s.has_value()) << s.error().message();
  auto trust = AllowedSigners::Parse(
      "bob@x " + PublicKeyLine(*pub, "") + "\n", "f");
  ASSERT_TRUE(trust.has_value());
  auto r = VerifyChain(Root(), EncodeChain(chain), &*trust, 2001);
  EXPECT_EQ(r.state, SignatureState::kTrusted);

}

TEST_F(SshInterop, SshKeygenKeyIsUsableAndFingerprintsAgree) {
  SshKeygen("id");
  auto file = ReadOpenSshPrivateKey(Path("id"));
  ASSERT_TRUE(file.has_value()) << file.error().message();
  EXPECT_FALSE(file->encrypted);
  EXPECT_EQ(file->comment, "test");
  std::string listed;
  ASSERT_EQ(Shell("ssh-keygen -l -E sha256 -f '" + Path("id.pub") + "'",
                &listed),
            0);
  EXPECT_NE(listed.find(Fingerprint(file->public_key)), std::string::npos)
      << listed;
  auto signer = LoadSigner(Path("id"));
  ASSERT_TRUE(signer.has_value());
  SignatureChain chain;
  EXPECT_TRUE(
      AppendSignature(chain, Root(), **signer, "builder", 1).has_value());
}

TEST_F(SshInterop, EggKeyFileIsReadBySshKeygen) {
  auto key = SecretKey::Generate();
  ASSERT_TRUE(key.has_value());
  ASSERT_TRUE(WriteKeyPair(Path("k"), *key, "egg-key", false).has_value());
  std::string derived;
  ASSERT_EQ(Shell("ssh-keygen -y -f '" + Path("k") + "'", &derived), 0);
  EXPECT_EQ(derived.substr(0, derived.find_last_not_of(" \n") + 1),
            PublicKeyLine(key->public_key(), "egg-key"));
}

TEST_F(SshInterop, EncryptedKeyWithoutAgentIsAClearError) {
  SshKeygen("enc", "correct horse");
  auto file = ReadOpenSshPrivateKey(Path("enc"));
  ASSERT_TRUE(file.has_value()) << file.error().message();
  EXPECT_TRUE(file->encrypted);
  const char* saved = std::getenv("SSH_AUTH_SOCK");
  std::string keep = saved ? saved : "";
  unsetenv("SSH_AUTH_SOCK");
  auto signer = LoadSigner(Path("enc"));
  if (saved) setenv("SSH_AUTH_SOCK", keep.c_str(), 1);
  ASSERT_FALSE(signer.has_value());
  EXPECT_EQ(signer.error().code(), Code::kInvalidArgument);
  EXPECT_NE(signer.error().message().find("add it to ssh-agent"),
            std::string::npos);
}

TEST_F(SshInterop, EncryptedKeySignsThroughSshAgent) {
  if (!HaveTool("ssh-agent") || !HaveTool("ssh-add")) {
    GTEST_SKIP() << "ssh-agent/ssh-add not installed";
  }
  // The agent holds the plain key; egg is handed the encrypted copy of the
  // same key and must find it in the agent.
  SshKeygen("plain");
  ASSERT_EQ(Shell("cp '" + Path("plain") + "' '" + Path("enc") + "' && "
                "ssh-keygen -q -p -P '' -N 'pass phrase' -f '" +
                Path("enc") + "' >/dev/null"),
            0);
  std::string sock = Path("agent.sock");
  std::string out;
  ASSERT_EQ(Shell("ssh-agent -s -a '" + sock + "'", &out), 0);
  size_t at = out.find("SSH_AGENT_PID=");
  ASSERT_NE(at, std::string::npos);
  pid_t agent = static_cast<pid_t>(std::atoi(out.c_str() + at + 14));
  ASSERT_GT(agent, 0);
  struct AgentKiller {
    pid_t pid;
    ~AgentKiller() { ::kill(pid, SIGTERM); }
  } killer{agent};

  // Before ssh-add: a reachable agent that lacks the key.
  const char* saved = std::getenv("SSH_AUTH_SOCK");
  std::string keep = saved ? saved : "";
  setenv("SSH_AUTH_SOCK", sock.c_str(), 1);
  auto missing = LoadSigner(Path("enc"));
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message().find("add it to ssh-agent"),
            std::string::npos);

  ASSERT_EQ(Shell("SSH_AUTH_SOCK='" + sock + "' ssh-add -q '" + Path("plain") +
                "' 2>/dev/null"),
            0);
  auto signer = LoadSigner(Path("enc"));
  if (saved) setenv("SSH_AUTH_SOCK", keep.c_str(), 1);
  else unsetenv("SSH_AUTH_SOCK");
  ASSERT_TRUE(signer.has_value()) << signer.error().message();

  SignatureChain chain;
  ASSERT_TRUE(
      AppendSignature(chain, Root(), **signer, "approver", 3).has_value());
  auto pub = ParsePublicKeyLine(ReadText(Path("plain.pub")));
  ASSERT_TRUE(pub.has_value());
  auto trust = AllowedSigners::Parse("c@x " + PublicKeyLine(*pub, ""), "f");
  ASSERT_TRUE(trust.has_value());
  EXPECT_EQ(VerifyChain(Root(), EncodeChain(chain), &*trust, 4).state,
            SignatureState::kTrusted);
}

}  // namespace
}  // namespace egg::crypto
