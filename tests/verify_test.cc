// The whole `egg verify` decision at the library level: content check and
// signature chain together. A signed egg with any single byte changed is
// never reported as verified by a trusted key.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "egg/crypto.h"
#include "egg/egg.h"
#include "format_test_util.h"

namespace egg {
namespace {

using testing::RandomBytes;
using testing::ReadBytes;
using testing::TempDir;
using testing::WriteText;

struct Verdict {
  bool content_ok = false;
  crypto::SignatureState state = crypto::SignatureState::kUnsigned;
};

// What `egg verify --require-signature` decides, from one open file.
Verdict Verify(const std::string& path, const crypto::AllowedSigners& trust) {
  Verdict v;
  auto egg = EggFile::Open(path);
  if (!egg) return v;
  v.content_ok = egg->VerifyContent().has_value();
  v.state = crypto::VerifyChain(egg->content_root(), egg->signatures(),
                                &trust, 1800000000)
                .state;
  return v;
}

bool Accepted(const Verdict& v) {
  return v.content_ok && v.state == crypto::SignatureState::kTrusted;
}

class SignedEgg : public ::testing::Test {
 protected:
  void SetUp() override {
    ::mkdir(tmp_.Sub("data").c_str(), 0755);
    WriteText(tmp_.Sub("data/table.csv"), "x,y\n1,2\n3,4\n");
    WriteText(tmp_.Sub("data/blob"), RandomBytes(2000, 7));
    EggInput in;
    in.manifest = {{"name", "signed"}, {"author", "tests"}};
    in.notebook = {{"cells", {{{"type", "code"}, {"language", "python"},
                               {"source", "print(1)"}}}}};
    in.trees.push_back({"data", tmp_.Sub("data"), {}, nullptr});
    auto written = WriteEgg(in, tmp_.Sub("unsigned.egg"));
    ASSERT_TRUE(written) << written.error().message();

    auto egg = EggFile::Open(tmp_.Sub("unsigned.egg"));
    ASSERT_TRUE(egg);
    auto key = crypto::SecretKey::Generate();
    ASSERT_TRUE(key);
    std::string pub = crypto::PublicKeyLine(key->public_key(), "t");
    auto signer = crypto::MakeKeySigner(std::move(*key));
    crypto::SignatureChain chain;
    ASSERT_TRUE(crypto::AppendSignature(chain, egg->content_root(), *signer,
                                        "builder", 1700000000));
    auto section = crypto::EncodeChain(chain);
    ASSERT_TRUE(egg->WriteWithSignatures(section, tmp_.Sub("signed.egg"),
                                         false));
    auto trust = crypto::AllowedSigners::Parse("tester " + pub, "test");
    ASSERT_TRUE(trust) << trust.error().message();
    trust_ = std::move(*trust);
    good_ = ReadBytes(tmp_.Sub("signed.egg"));
  }

  TempDir tmp_;
  std::vector<uint8_t> good_;
  crypto::AllowedSigners trust_;
};

TEST_F(SignedEgg, IntactEggIsVerified) {
  EXPECT_TRUE(Accepted(Verify(tmp_.Sub("signed.egg"), trust_)));
}

TEST_F(SignedEgg, EveryFlippedByteFailsVerification) {
  ASSERT_LT(good_.size(), 32768u);
  testing::MemFile file;
  size_t accepted = 0;
  for (size_t i = 0; i < good_.size(); ++i) {
    std::vector<uint8_t> bad = good_;
    bad[i] ^= 0x20;
    file.Set(bad);
    if (Accepted(Verify(file.path(), trust_))) {
      ++accepted;
      ADD_FAILURE() << "byte " << i << " flipped and still verified";
    }
  }
  EXPECT_EQ(accepted, 0u);
}

TEST_F(SignedEgg, EveryTruncationFailsVerification) {
  testing::MemFile file;
  for (size_t n = 0; n < good_.size(); ++n) {
    file.Set(std::vector<uint8_t>(good_.begin(), good_.begin() + n));
    EXPECT_FALSE(Accepted(Verify(file.path(), trust_))) << "length " << n;
  }
}

TEST_F(SignedEgg, AppendedBytesFailVerification) {
  testing::MemFile file;
  for (uint8_t b : {0x00, 0x01, 0xff}) {
    std::vector<uint8_t> bad = good_;
    bad.push_back(b);
    file.Set(bad);
    EXPECT_FALSE(Accepted(Verify(file.path(), trust_)));
  }
}

TEST_F(SignedEgg, UntrustedSignerIsNotVerified) {
  auto other = crypto::SecretKey::Generate();
  ASSERT_TRUE(other);
  auto trust = crypto::AllowedSigners::Parse(
      "someone " + crypto::PublicKeyLine(other->public_key(), "o"), "test");
  ASSERT_TRUE(trust);
  Verdict v = Verify(tmp_.Sub("signed.egg"), *trust);
  EXPECT_TRUE(v.content_ok);
  EXPECT_EQ(v.state, crypto::SignatureState::kUntrustedOnly);
}

TEST_F(SignedEgg, UnsignedEggIsNotVerified) {
  Verdict v = Verify(tmp_.Sub("unsigned.egg"), trust_);
  EXPECT_TRUE(v.content_ok);
  EXPECT_EQ(v.state, crypto::SignatureState::kUnsigned);
}

}  // namespace
}  // namespace egg
