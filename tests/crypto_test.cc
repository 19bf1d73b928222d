// Library tests of egg_crypto: keys, SSH signatures, allowed_signers and
// the signature chain. One test per malformed field.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "common/bytes.h"
#include "crypto/wire.h"
#include "egg/crypto.h"

namespace egg::crypto {
namespace {

std::span<const uint8_t> Bytes(std::string_view s) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()),
                                  s.size());
}

SecretKey KeyFromByte(uint8_t b) {
  std::array<uint8_t, 32> seed;
  seed.fill(b);
  auto key = SecretKey::FromSeed(seed);
  EXPECT_TRUE(key.has_value());
  return std::move(*key);
}

std::string TempDir() {
  char dir[] = "/tmp/egg-crypto-XXXXXX";
  EXPECT_NE(mkdtemp(dir), nullptr);
  return dir;
}

// ---------------------------------------------------------------------------
// OpenSSH private key files, built field by field so that each can be
// broken on its own.

struct KeyFileFields {
  std::string magic = std::string("openssh-key-v1\0", 15);
  std::string cipher = "none";
  std::string kdf = "none";
  std::string kdf_options;
  uint32_t nkeys = 1;
  std::string key_type = "ssh-ed25519";
  size_t pub_len = 32;
  uint32_t check1 = 0x01020304;
  uint32_t check2 = 0x01020304;
  std::string inner_type = "ssh-ed25519";
  size_t secret_len = 64;
  bool wrong_inner_pub = false;
  bool wrong_seed = false;
  std::string comment = "test";
  int pad_override = -1;      // padding length; -1 = canonical
  bool bad_pad_byte = false;
  std::string trailing;
  bool truncate_section = false;
};

std::string BuildKeyFile(const SecretKey& key, const KeyFileFields& f) {
  const PublicKey& pub = key.public_key();
  ByteWriter pubblob;
  PutSshString(pubblob, f.key_type);
  pubblob.Be32(static_cast<uint32_t>(f.pub_len));
  for (size_t i = 0; i < f.pub_len; ++i) pubblob.U8(pub.bytes[i % 32]);

  ByteWriter sec;
  sec.Be32(f.check1);
  sec.Be32(f.check2);
  PutSshString(sec, f.inner_type);
  std::array<uint8_t, 32> inner_pub = pub.bytes;
  if (f.wrong_inner_pub) inner_pub[0] ^= 1;
  PutSshString(sec, inner_pub);
  sec.Be32(static_cast<uint32_t>(f.secret_len));
  std::vector<uint8_t> secret(key.seed().begin(), key.seed().end());
  if (f.wrong_seed) secret[0] ^= 1;
  secret.insert(secret.end(), pub.bytes.begin(), pub.bytes.end());
  secret.resize(f.secret_len, 0);
  sec.Bytes(secret);
  PutSshString(sec, f.comment);
  size_t pad = f.pad_override >= 0 ? static_cast<size_t>(f.pad_override)
                                   : (8 - sec.size() % 8) % 8;
  for (size_t i = 0; i < pad; ++i) {
    sec.U8(static_cast<uint8_t>(f.bad_pad_byte && i == 0 ? 9 : i + 1));
  }

  ByteWriter w;
  w.Bytes(f.magic);
  PutSshString(w, f.cipher);
  PutSshString(w, f.kdf);
  PutSshString(w, f.kdf_options);
  w.Be32(f.nkeys);
  PutSshString(w, pubblob.buffer());
  if (f.truncate_section) {
    w.Be32(static_cast<uint32_t>(sec.size() + 8));
    w.Bytes(sec.buffer());
  } else {
    PutSshString(w, sec.buffer());
  }
  w.Bytes(f.trailing);
  return Armor("OPENSSH PRIVATE KEY", w.buffer());
}

TEST(KeyFile, EncodedKeyRoundTrips) {
  auto key = SecretKey::Generate();
  ASSERT_TRUE(key.has_value());
  std::string text = EncodeOpenSshPrivateKey(*key, "me@host");
  auto parsed = ParseOpenSshPrivateKey(text);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message();
  EXPECT_FALSE(parsed->encrypted);
  EXPECT_EQ(parsed->comment, "me@host");
  EXPECT_EQ(parsed->public_key, key->public_key());
  ASSERT_TRUE(parsed->secret.has_value());
  EXPECT_TRUE(std::equal(parsed->secret->seed().begin(),
                         parsed->secret->seed().end(), key->seed().begin()));
}

TEST(KeyFile, TestBuilderMakesAValidFile) {
  SecretKey key = KeyFromByte(7);
  auto parsed = ParseOpenSshPrivateKey(BuildKeyFile(key, {}));
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message();
}

void ExpectKeyFileRejected(const KeyFileFields& f) {
  SecretKey key = KeyFromByte(7);
  auto parsed = ParseOpenSshPrivateKey(BuildKeyFile(key, f));
  ASSERT_FALSE(parsed.has_value());
  EXPECT_EQ(parsed.error().code(), Code::kInvalidArgument);
}

TEST(KeyFile, RejectsWrongMagic) {
  KeyFileFields f;
  f.magic = std::string("openssh-key-v2\0", 15);
  ExpectKeyFileRejected(f);
}
TEST(KeyFile, RejectsUnknownCipher) {
  KeyFileFields f;
  f.cipher = "rot13";
  ExpectKeyFileRejected(f);
}
TEST(KeyFile, RejectsKdfOnUnencryptedKey) {
  KeyFileFields f;
  f.kdf = "bcrypt";
  ExpectKeyFileRejected(f);
}
TEST(KeyFile, RejectsKdfOptionsOnUnencryptedKey) {
  KeyFileFields f;
  f.kdf_options = "x";
  ExpectKeyFileRejected(f);
}
TEST(KeyFile, RejectsTwoKeys) {
  KeyFileFields f;
  f.nkeys = 2;
  ExpectKeyFileRejected(f);
}
TEST(KeyFile, RejectsNonEd25519PublicKey) {
  KeyFileFields f;
  f.key_type = "ssh-rsa";
  ExpectKeyFileRejected(f);
}
TEST(KeyFile, RejectsShortPublicKey) {
  KeyFileFields f;
  f.pub_len = 31;
  ExpectKeyFileRejected(f);
}
TEST(KeyFile, RejectsDifferentCheckInts) {
  KeyFileFields f;
  f.check2 = 0x01020305;
  ExpectKeyFileRejected(f);
}
TEST(KeyFile, RejectsNonEd25519PrivateKey) {
  KeyFileFields f;
  f.inner_type = "ssh-dss";
  ExpectKeyFileRejected(f);
}
TEST(KeyFile, RejectsWrongLengthSecret) {
  KeyFileFields f;
  f.secret_len = 32;
  ExpectKeyFileRejected(f);
}
TEST(KeyFile, RejectsInnerPublicKeyMismatch) {
  KeyFileFields f;
  f.wrong_inner_pub = true;
  ExpectKeyFileRejected(f);
}
TEST(KeyFile, RejectsSecretThatDoesNotMatchPublicKey) {
  KeyFileFields f;
  f.wrong_seed = true;
  ExpectKeyFileRejected(f);
}
TEST(KeyFile, RejectsWrongPaddingBytes) {
  KeyFileFields f;
  f.comment = "x";  // forces a non-empty padding
  f.bad_pad_byte = true;
  ExpectKeyFileRejected(f);
}
TEST(KeyFile, RejectsWholeBlockOfPadding) {
  KeyFileFields f;
  f.comment = "12345678";  // section is a multiple of 8 without padding
  f.pad_override = 8;
  ExpectKeyFileRejected(f);
}
TEST(KeyFile, RejectsSectionNotMultipleOfBlock) {
  KeyFileFields f;
  f.comment = "x";
  f.pad_override = 0;
  ExpectKeyFileRejected(f);
}
TEST(KeyFile, RejectsTrailingBytes) {
  KeyFileFields f;
  f.trailing = "junk";
  ExpectKeyFileRejected(f);
}
TEST(KeyFile, RejectsTruncatedSection) {
  KeyFileFields f;
  f.truncate_section = true;
  ExpectKeyFileRejected(f);
}
TEST(KeyFile, RejectsMissingArmour) {
  EXPECT_FALSE(ParseOpenSshPrivateKey("AAAA\n").has_value());
  EXPECT_FALSE(ParseOpenSshPrivateKey("").has_value());
}
TEST(KeyFile, RejectsMissingEndLine) {
  SecretKey key = KeyFromByte(7);
  std::string text = BuildKeyFile(key, {});
  text = text.substr(0, text.find("-----END"));
  EXPECT_FALSE(ParseOpenSshPrivateKey(text).has_value());
}
TEST(KeyFile, RejectsTextAfterArmour) {
  SecretKey key = KeyFromByte(7);
  EXPECT_FALSE(
      ParseOpenSshPrivateKey(BuildKeyFile(key, {}) + "more\n").has_value());
}
TEST(KeyFile, RejectsInvalidBase64) {
  SecretKey key = KeyFromByte(7);
  std::string text = BuildKeyFile(key, {});
  text[text.find('\n') + 5] = '*';
  EXPECT_FALSE(ParseOpenSshPrivateKey(text).has_value());
}
TEST(KeyFile, RejectsMalformedBcryptOptionsOnEncryptedKey) {
  KeyFileFields f;
  f.cipher = "aes256-ctr";
  f.kdf = "bcrypt";
  f.kdf_options = "";  // needs salt and rounds
  f.pad_override = 0;
  f.comment = "123456789012";  // 16-byte multiple section
  ExpectKeyFileRejected(f);
}
TEST(KeyFile, EncryptedKeyYieldsPublicKeyOnly) {
  KeyFileFields f;
  f.cipher = "aes256-ctr";
  f.kdf = "bcrypt";
  ByteWriter opts;
  PutSshString(opts, std::string(16, 's'));
  opts.Be32(16);
  f.kdf_options.assign(opts.buffer().begin(), opts.buffer().end());
  f.comment = "123456789012";  // 8+15+36+68+16 = 143 -> pad to 144
  f.pad_override = 1;
  SecretKey key = KeyFromByte(7);
  auto parsed = ParseOpenSshPrivateKey(BuildKeyFile(key, f));
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message();
  EXPECT_TRUE(parsed->encrypted);
  EXPECT_FALSE(parsed->secret.has_value());
  EXPECT_EQ(parsed->public_key, key.public_key());
}

TEST(KeyFile, WritesPrivateKey0600AndRefusesToOverwrite) {
  std::string dir = TempDir();
  std::string path = dir + "/id";
  SecretKey key = KeyFromByte(3);
  ASSERT_TRUE(WriteKeyPair(path, key, "c", false).has_value());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  SecretKey other = KeyFromByte(4);
  auto again = WriteKeyPair(path, other, "c", false);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code(), Code::kInvalidArgument);
  auto read = ReadOpenSshPrivateKey(path);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->public_key, key.public_key());

  ASSERT_TRUE(WriteKeyPair(path, other, "c", true).has_value());
  read = ReadOpenSshPrivateKey(path);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->public_key, other.public_key());
  std::system(("rm -rf " + dir).c_str());
}

// ---------------------------------------------------------------------------
// Public keys

TEST(PublicKey, LineRoundTrips) {
  SecretKey key = KeyFromByte(1);
  std::string line = PublicKeyLine(key.public_key(), "a comment");
  auto parsed = ParsePublicKeyLine(line + "\n");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, key.public_key());
}
TEST(PublicKey, RejectsOtherKeyType) {
  EXPECT_FALSE(ParsePublicKeyLine("ssh-rsa AAAAB3NzaC1yc2E=").has_value());
}
TEST(PublicKey, RejectsBlobWithTrailingBytes) {
  SecretKey key = KeyFromByte(1);
  auto blob = PublicKeyBlob(key.public_key());
  blob.push_back(0);
  EXPECT_FALSE(ParsePublicKeyBlob(blob).has_value());
  EXPECT_FALSE(
      ParsePublicKeyLine("ssh-ed25519 " + Base64Encode(blob)).has_value());
}
TEST(PublicKey, RejectsTypeMismatchInsideBlob) {
  ByteWriter w;
  PutSshString(w, "ssh-ed448");
  PutSshString(w, std::string(32, 'k'));
  EXPECT_FALSE(
      ParsePublicKeyLine("ssh-ed25519 " + Base64Encode(w.buffer()))
          .has_value());
}
TEST(PublicKey, FingerprintIsUnpaddedBase64OfKeyId) {
  SecretKey key = KeyFromByte(1);
  std::string fp = Fingerprint(key.public_key());
  EXPECT_EQ(fp.rfind("SHA256:", 0), 0u);
  EXPECT_EQ(fp.size(), 7u + 43u);
}

TEST(Base64, RejectsNonCanonicalEncodings) {
  EXPECT_TRUE(Base64Decode("QQ==").has_value());
  EXPECT_FALSE(Base64Decode("QR==").has_value());  // unused bits set
  EXPECT_FALSE(Base64Decode("QQ=").has_value());
  EXPECT_FALSE(Base64Decode("Q===").has_value());
  EXPECT_FALSE(Base64Decode("QQ=A").has_value());
  EXPECT_FALSE(Base64Decode("QQ\nA").has_value());
}

// ---------------------------------------------------------------------------
// SSH signatures

TEST(SshSig, SignedMessageVerifies) {
  auto signer = MakeKeySigner(KeyFromByte(5));
  auto blob = SshSigSign(*signer, "ns@test", Bytes("hello"));
  ASSERT_TRUE(blob.has_value());
  auto sig = ParseSshSig(*blob);
  ASSERT_TRUE(sig.has_value());
  EXPECT_TRUE(SshSigVerify(*sig, "ns@test", Bytes("hello")).has_value());
  auto armored = ArmorSshSig(*blob);
  auto back = DearmorSshSig(armored);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, *blob);
}
TEST(SshSig, WrongNamespaceFails) {
  auto signer = MakeKeySigner(KeyFromByte(5));
  auto blob = SshSigSign(*signer, "other@test", Bytes("hello"));
  ASSERT_TRUE(blob.has_value());
  auto sig = ParseSshSig(*blob);
  ASSERT_TRUE(sig.has_value());
  auto v = SshSigVerify(*sig, "ns@test", Bytes("hello"));
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().code(), Code::kVerificationFailed);
  // A namespace rewritten inside the blob breaks the signature itself.
  sig->ns = "ns@test";
  EXPECT_FALSE(SshSigVerify(*sig, "ns@test", Bytes("hello")).has_value());
}
TEST(SshSig, ChangedMessageFails) {
  auto signer = MakeKeySigner(KeyFromByte(5));
  auto blob = SshSigSign(*signer, "ns@test", Bytes("hello"));
  auto sig = ParseSshSig(*blob);
  ASSERT_TRUE(sig.has_value());
  EXPECT_FALSE(SshSigVerify(*sig, "ns@test", Bytes("hellO")).has_value());
}

// Builds an SSHSIG blob with one field replaced.
std::vector<uint8_t> SshSigWith(int field, std::string_view value) {
  SecretKey key = KeyFromByte(5);
  ByteWriter sigblob;
  PutSshString(sigblob, "ssh-ed25519");
  PutSshString(sigblob, std::string(64, 's'));
  ByteWriter w;
  w.Bytes(field == 0 ? value : "SSHSIG");
  w.Be32(field == 1 ? 2 : 1);
  PutSshString(w, PublicKeyBlob(key.public_key()));
  PutSshString(w, field == 2 ? value : "ns");
  PutSshString(w, field == 3 ? value : "");
  PutSshString(w, field == 4 ? value : "sha512");
  PutSshString(w, sigblob.buffer());
  if (field == 5) w.Bytes(value);
  return std::move(w.buffer());
}

TEST(SshSig, TestBuilderMakesADecodableBlob) {
  EXPECT_TRUE(ParseSshSig(SshSigWith(-1, "")).has_value());
}
TEST(SshSig, RejectsBadMagic) {
  EXPECT_FALSE(ParseSshSig(SshSigWith(0, "SSHSIH")).has_value());
}
TEST(SshSig, RejectsVersionTwo) {
  EXPECT_FALSE(ParseSshSig(SshSigWith(1, "")).has_value());
}
TEST(SshSig, RejectsEmptyNamespace) {
  EXPECT_FALSE(ParseSshSig(SshSigWith(2, "")).has_value());
}
TEST(SshSig, RejectsNonEmptyReserved) {
  EXPECT_FALSE(ParseSshSig(SshSigWith(3, "x")).has_value());
}
TEST(SshSig, RejectsUnknownHash) {
  EXPECT_FALSE(ParseSshSig(SshSigWith(4, "md5")).has_value());
}
TEST(SshSig, RejectsTrailingBytes) {
  EXPECT_FALSE(ParseSshSig(SshSigWith(5, "x")).has_value());
}
TEST(SshSig, RejectsTruncation) {
  auto blob = SshSigWith(-1, "");
  for (size_t n = 0; n < blob.size(); ++n) {
    EXPECT_FALSE(
        ParseSshSig(std::span<const uint8_t>(blob.data(), n)).has_value());
  }
}
TEST(SshSig, Sha256SignatureIsNotAcceptedForEgg) {
  auto sig = ParseSshSig(SshSigWith(4, "sha256"));
  ASSERT_TRUE(sig.has_value());
  EXPECT_FALSE(SshSigVerify(*sig, "ns", Bytes("m")).has_value());
}

// ---------------------------------------------------------------------------
// allowed_signers

std::string SignerLine(const SecretKey& key, const std::string& principal,
                       const std::string& options = "") {
  std::string line = principal + " ";
  if (!options.empty()) line += options + " ";
  return line + PublicKeyLine(key.public_key(), "") + "\n";
}

TEST(AllowedSigners, ParsesPrincipalsOptionsAndComments) {
  SecretKey a = KeyFromByte(1), b = KeyFromByte(2);
  std::string text =
      "# trust\n\n" + SignerLine(a, "alice@x,al@x") +
      SignerLine(b, "bob@x",
                 "namespaces=\"egg-*,git\",valid-after=\"20200101\","
                 "valid-before=\"20300101Z\"") +
      "carol@x ssh-rsa AAAAB3NzaC1yc2E=\n";
  auto s = AllowedSigners::Parse(text, "f");
  ASSERT_TRUE(s.has_value()) << s.error().message();
  ASSERT_EQ(s->signers().size(), 2u);
  EXPECT_EQ(s->signers()[0].principals.size(), 2u);
  EXPECT_EQ(s->signers()[1].namespaces.size(), 2u);
  EXPECT_TRUE(s->signers()[1].valid_after.has_value());
  EXPECT_EQ(*s->signers()[1].valid_before, 1893456000);
}

void ExpectTrustLineRejected(const std::string& line) {
  auto s = AllowedSigners::Parse(line, "f");
  ASSERT_FALSE(s.has_value()) << line;
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
  EXPECT_NE(s.error().message().find("line 1"), std::string::npos);
}

TEST(AllowedSigners, RejectsCertAuthority) {
  SecretKey a = KeyFromByte(1);
  auto s = AllowedSigners::Parse(SignerLine(a, "*@x", "cert-authority"), "f");
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message().find("cert-authority"), std::string::npos);
}
TEST(AllowedSigners, RejectsUnknownOption) {
  ExpectTrustLineRejected(SignerLine(KeyFromByte(1), "a", "no-touch"));
}
TEST(AllowedSigners, RejectsUnquotedOptionValue) {
  ExpectTrustLineRejected(SignerLine(KeyFromByte(1), "a", "namespaces=git"));
}
TEST(AllowedSigners, RejectsBadTimestamp) {
  ExpectTrustLineRejected(
      SignerLine(KeyFromByte(1), "a", "valid-before=\"2030\""));
  ExpectTrustLineRejected(
      SignerLine(KeyFromByte(1), "a", "valid-before=\"20300230\""));
}
TEST(AllowedSigners, RejectsInvertedWindow) {
  ExpectTrustLineRejected(SignerLine(
      KeyFromByte(1), "a",
      "valid-after=\"20300101Z\",valid-before=\"20200101Z\""));
}
TEST(AllowedSigners, RejectsUnterminatedQuote) {
  ExpectTrustLineRejected("a namespaces=\"git ssh-ed25519 AAAA\n");
}
TEST(AllowedSigners, RejectsMissingKey) {
  ExpectTrustLineRejected("alice@x\n");
  ExpectTrustLineRejected("alice@x ssh-ed25519\n");
}
TEST(AllowedSigners, RejectsUnknownKeyType) {
  ExpectTrustLineRejected("alice@x ssh-foo AAAA\n");
}
TEST(AllowedSigners, RejectsBadBase64) {
  ExpectTrustLineRejected("alice@x ssh-ed25519 AAA*\n");
}
TEST(AllowedSigners, RejectsWrongLengthKey) {
  ByteWriter w;
  PutSshString(w, "ssh-ed25519");
  PutSshString(w, std::string(31, 'k'));
  ExpectTrustLineRejected("a ssh-ed25519 " + Base64Encode(w.buffer()) +
                          "\n");
}
TEST(AllowedSigners, RejectsEmptyPrincipal) {
  ExpectTrustLineRejected(SignerLine(KeyFromByte(1), "a,,b"));
}

TEST(AllowedSigners, NamespaceRestrictionIsEnforced) {
  SecretKey a = KeyFromByte(1);
  auto s = AllowedSigners::Parse(
      SignerLine(a, "a", "namespaces=\"git\""), "f");
  ASSERT_TRUE(s.has_value());
  auto d = s->Decide(a.public_key(), kSignatureNamespace, 100, 100);
  EXPECT_FALSE(d.trusted);
  EXPECT_NE(d.reason.find("namespace"), std::string::npos);
  auto ok = AllowedSigners::Parse(
      SignerLine(a, "a", "namespaces=\"git,egg-*@egg\""), "f");
  ASSERT_TRUE(ok.has_value());
  EXPECT_TRUE(ok->Decide(a.public_key(), kSignatureNamespace, 1, 1).trusted);
}
TEST(AllowedSigners, ExpiredValidBeforeIsNotTrusted) {
  SecretKey a = KeyFromByte(1);
  auto s = AllowedSigners::Parse(
      SignerLine(a, "a", "valid-before=\"20200101Z\""), "f");
  ASSERT_TRUE(s.has_value());
  const int64_t t2019 = 1546300800, t2021 = 1609459200;
  EXPECT_TRUE(s->Decide(a.public_key(), "ns", t2019, t2019).trusted);
  auto d = s->Decide(a.public_key(), "ns", t2021, t2019);
  EXPECT_FALSE(d.trusted);
  EXPECT_NE(d.reason.find("expired"), std::string::npos);
  // A signed time past the window is refused even if "now" is inside it.
  EXPECT_FALSE(s->Decide(a.public_key(), "ns", t2019, t2021).trusted);
}
TEST(AllowedSigners, NotYetValidIsNotTrusted) {
  SecretKey a = KeyFromByte(1);
  auto s = AllowedSigners::Parse(
      SignerLine(a, "a", "valid-after=\"20200101Z\""), "f");
  ASSERT_TRUE(s.has_value());
  EXPECT_FALSE(s->Decide(a.public_key(), "ns", 1000, 1000).trusted);
}
TEST(AllowedSigners, UnknownKeyIsUntrusted) {
  auto s = AllowedSigners::Parse(SignerLine(KeyFromByte(1), "a"), "f");
  ASSERT_TRUE(s.has_value());
  auto d = s->Decide(KeyFromByte(2).public_key(), "ns", 1, 1);
  EXPECT_FALSE(d.trusted);
  EXPECT_EQ(d.reason, "untrusted key");
}

// ---------------------------------------------------------------------------
// Signature chain

Digest RootOf(char c) {
  Digest d;
  d.fill(static_cast<uint8_t>(c));
  return d;
}

// A chain of `roles` over root 'R', entry i signed by KeyFromByte(10 + i).
SignatureChain MakeChain(const std::vector<std::string>& roles) {
  SignatureChain chain;
  for (size_t i = 0; i < roles.size(); ++i) {
    auto signer = MakeKeySigner(KeyFromByte(static_cast<uint8_t>(10 + i)));
    auto s = AppendSignature(chain, RootOf('R'), *signer, roles[i],
                             1700000000 + i);
    EXPECT_TRUE(s.has_value()) << s.error().message();
  }
  return chain;
}

AllowedSigners TrustAll(size_t n) {
  std::string text;
  for (size_t i = 0; i < n; ++i) {
    text += SignerLine(KeyFromByte(static_cast<uint8_t>(10 + i)),
                       "p" + std::to_string(i) + "@x");
  }
  auto s = AllowedSigners::Parse(text, "f");
  EXPECT_TRUE(s.has_value());
  return std::move(*s);
}

ChainReport Check(const SignatureChain& chain, const Digest& root,
                  const AllowedSigners* trust) {
  return VerifyChain(root, EncodeChain(chain), trust, 1700000100);
}

TEST(Chain, EmptySectionIsUnsignedNotVerified) {
  auto r = VerifyChain(RootOf('R'), {}, nullptr, 0);
  EXPECT_EQ(r.state, SignatureState::kUnsigned);
  auto header_only = EncodeChain({});
  EXPECT_EQ(VerifyChain(RootOf('R'), header_only, nullptr, 0).state,
            SignatureState::kUnsigned);
}

TEST(Chain, SignedChainVerifiesAndNamesPrincipals) {
  auto chain = MakeChain({"builder", "reviewer"});
  AllowedSigners trust = TrustAll(2);
  auto r = Check(chain, RootOf('R'), &trust);
  EXPECT_EQ(r.state, SignatureState::kTrusted);
  ASSERT_EQ(r.entries.size(), 2u);
  EXPECT_TRUE(r.entries[1].valid);
  EXPECT_TRUE(r.entries[1].trusted);
  EXPECT_EQ(r.entries[1].principals[0], "p1@x");
  EXPECT_EQ(r.entries[1].role, "reviewer");
  EXPECT_EQ(r.trusted_count, 2u);
}

TEST(Chain, UnknownKeysAreReportedAsUntrustedOnly) {
  auto chain = MakeChain({"builder"});
  auto other = AllowedSigners::Parse(SignerLine(KeyFromByte(99), "z"), "f");
  ASSERT_TRUE(other.has_value());
  auto r = Check(chain, RootOf('R'), &*other);
  EXPECT_EQ(r.state, SignatureState::kUntrustedOnly);
  EXPECT_TRUE(r.entries[0].valid);
  EXPECT_FALSE(r.entries[0].trusted);
  EXPECT_EQ(Check(chain, RootOf('R'), nullptr).state,
            SignatureState::kUntrustedOnly);
}

TEST(Chain, SwappedContentRootFails) {
  auto chain = MakeChain({"builder"});
  auto r = Check(chain, RootOf('S'), nullptr);
  EXPECT_EQ(r.state, SignatureState::kInvalid);
  EXPECT_FALSE(r.entries[0].valid);
}

TEST(Chain, RelabelledRoleFails) {
  auto chain = MakeChain({"builder", "reviewer"});
  chain.entries[1].role = "approver";
  auto r = Check(chain, RootOf('R'), nullptr);
  EXPECT_EQ(r.state, SignatureState::kInvalid);
  EXPECT_FALSE(r.entries[1].valid);
}

TEST(Chain, ChangedTimeFails) {
  auto chain = MakeChain({"builder"});
  chain.entries[0].time += 1;
  EXPECT_EQ(Check(chain, RootOf('R'), nullptr).state,
            SignatureState::kInvalid);
}

TEST(Chain, ReorderedEntriesFail) {
  auto chain = MakeChain({"builder", "reviewer"});
  std::swap(chain.entries[0], chain.entries[1]);
  auto r = Check(chain, RootOf('R'), nullptr);
  EXPECT_EQ(r.state, SignatureState::kInvalid);
  EXPECT_FALSE(r.entries[0].valid);
  EXPECT_FALSE(r.entries[1].valid);
  // Renumbering the swapped entries does not help: the index is signed.
  chain.entries[0].index = 0;
  chain.entries[1].index = 1;
  r = Check(chain, RootOf('R'), nullptr);
  EXPECT_FALSE(r.entries[0].valid);
  EXPECT_FALSE(r.entries[1].valid);
}

TEST(Chain, DroppedMiddleEntryFails) {
  auto chain = MakeChain({"builder", "reviewer", "approver"});
  chain.entries.erase(chain.entries.begin() + 1);
  auto r = Check(chain, RootOf('R'), nullptr);
  EXPECT_EQ(r.state, SignatureState::kInvalid);
  EXPECT_TRUE(r.entries[0].valid);
  EXPECT_FALSE(r.entries[1].valid);
  chain.entries[1].index = 1;  // renumbered: the previous-hash link breaks
  EXPECT_FALSE(Check(chain, RootOf('R'), nullptr).entries[1].valid);
}

TEST(Chain, DroppedFirstEntryFails) {
  auto chain = MakeChain({"builder", "reviewer"});
  chain.entries.erase(chain.entries.begin());
  EXPECT_EQ(Check(chain, RootOf('R'), nullptr).state,
            SignatureState::kInvalid);
}

TEST(Chain, TrimmedTailIsOnlyVisibleThroughTheHead) {
  // Documented limit: a chain cut after entry k is itself a valid chain.
  // What changes is the head digest, which a verifier can pin.
  auto chain = MakeChain({"builder", "reviewer"});
  auto full = Check(chain, RootOf('R'), nullptr);
  chain.entries.pop_back();
  auto trimmed = Check(chain, RootOf('R'), nullptr);
  EXPECT_EQ(trimmed.state, SignatureState::kUntrustedOnly);
  EXPECT_NE(trimmed.head, full.head);
}

TEST(Chain, EntrySignedInAnotherNamespaceFails) {
  SignatureChain chain;
  auto signer = MakeKeySigner(KeyFromByte(10));
  Statement st = NextStatement(chain, RootOf('R'), signer->public_key(),
                               "builder", 5);
  auto blob = SshSigSign(*signer, "git", EncodeStatement(st));
  ASSERT_TRUE(blob.has_value());
  chain.entries.push_back({0, 5, "builder", *blob});
  auto r = Check(chain, RootOf('R'), nullptr);
  EXPECT_EQ(r.state, SignatureState::kInvalid);
  EXPECT_NE(r.entries[0].problem.find("namespace"), std::string::npos);
}

TEST(Chain, ExpiredSignerIsNotTrusted) {
  auto chain = MakeChain({"builder"});
  auto trust = AllowedSigners::Parse(
      SignerLine(KeyFromByte(10), "p", "valid-before=\"20200101Z\""), "f");
  ASSERT_TRUE(trust.has_value());
  auto r = Check(chain, RootOf('R'), &*trust);
  EXPECT_EQ(r.state, SignatureState::kUntrustedOnly);
  EXPECT_NE(r.entries[0].trust_note.find("expired"), std::string::npos);
}

TEST(Chain, SigningRefusesToExtendABrokenChain) {
  auto chain = MakeChain({"builder"});
  chain.entries[0].role = "approver";
  auto signer = MakeKeySigner(KeyFromByte(11));
  auto s = AppendSignature(chain, RootOf('R'), *signer, "reviewer", 1);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), Code::kVerificationFailed);
}

TEST(Chain, RejectsInvalidRoles) {
  const std::vector<std::string> bad = {
      "", "Builder", "9lives", "a b", "r\xc3\xb4le", std::string(33, 'a'),
      "a_b"};
  for (const std::string& role : bad) {
    EXPECT_FALSE(ValidateRole(role).has_value()) << role;
  }
  EXPECT_TRUE(ValidateRole("code-reviewer-2").has_value());
  SignatureChain chain;
  auto signer = MakeKeySigner(KeyFromByte(10));
  EXPECT_FALSE(
      AppendSignature(chain, RootOf('R'), *signer, "Admin", 1).has_value());
}

TEST(Chain, ImportedSignatureIsAcceptedOnlyForTheNextStatement) {
  SignatureChain chain = MakeChain({"builder"});
  auto signer = MakeKeySigner(KeyFromByte(11));
  Statement st = NextStatement(chain, RootOf('R'), signer->public_key(),
                               "reviewer", 9);
  auto bytes = EncodeStatement(st);
  auto blob = SshSigSign(*signer, kSignatureNamespace, bytes);
  ASSERT_TRUE(blob.has_value());

  SignatureChain wrong_root = chain;
  EXPECT_FALSE(
      AppendImported(wrong_root, RootOf('S'), bytes, *blob).has_value());
  SignatureChain ok = chain;
  ASSERT_TRUE(AppendImported(ok, RootOf('R'), bytes, *blob).has_value());
  EXPECT_EQ(Check(ok, RootOf('R'), nullptr).state,
            SignatureState::kUntrustedOnly);
  // Applying it twice would claim index 1 again.
  EXPECT_FALSE(AppendImported(ok, RootOf('R'), bytes, *blob).has_value());
}

TEST(Statement, RoundTripsAndRejectsTrailingBytes) {
  Statement st{RootOf('R'), RootOf('P'), 3, RootOf('K'), "builder", 77};
  auto bytes = EncodeStatement(st);
  auto back = DecodeStatement(bytes);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(EncodeStatement(*back), bytes);
  bytes.push_back(0);
  EXPECT_FALSE(DecodeStatement(bytes).has_value());
  bytes.pop_back();
  bytes[0] ^= 1;
  EXPECT_FALSE(DecodeStatement(bytes).has_value());
}

// Section decoder: one test per field.
std::vector<uint8_t> OneEntrySection() {
  return EncodeChain(MakeChain({"builder"}));
}

void ExpectSectionCorrupt(const std::vector<uint8_t>& section) {
  auto c = DecodeChain(section);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code(), Code::kCorruption);
  EXPECT_EQ(VerifyChain(RootOf('R'), section, nullptr, 0).state,
            SignatureState::kInvalid);
}

TEST(Section, DecodesWhatItEncodes) {
  auto section = OneEntrySection();
  auto c = DecodeChain(section);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(EncodeChain(*c), section);
}
TEST(Section, RejectsBadMagic) {
  auto s = OneEntrySection();
  s[0] = 'X';
  ExpectSectionCorrupt(s);
}
TEST(Section, RejectsUnknownVersion) {
  auto s = OneEntrySection();
  s[8] = 2;
  ExpectSectionCorrupt(s);
}
TEST(Section, RejectsNonZeroReserved) {
  auto s = OneEntrySection();
  s[10] = 1;
  ExpectSectionCorrupt(s);
}
TEST(Section, RejectsCountBeyondEntries) {
  auto s = OneEntrySection();
  s[12] = 2;
  ExpectSectionCorrupt(s);
}
TEST(Section, RejectsHugeCount) {
  auto s = OneEntrySection();
  StoreLe32(&s[12], kMaxChainEntries + 1);
  ExpectSectionCorrupt(s);
}
TEST(Section, RejectsRecordLengthPastEnd) {
  auto s = OneEntrySection();
  StoreLe32(&s[16], LoadLe32(&s[16]) + 1);
  ExpectSectionCorrupt(s);
}
TEST(Section, RejectsRecordLengthShortOfContent) {
  auto s = OneEntrySection();
  StoreLe32(&s[16], LoadLe32(&s[16]) - 1);
  ExpectSectionCorrupt(s);
}
TEST(Section, RejectsRoleWithBadCharacters) {
  auto s = OneEntrySection();
  s[16 + 4 + 4 + 8 + 1] = 'B';  // first role byte
  ExpectSectionCorrupt(s);
}
TEST(Section, RejectsEmptyRole) {
  SignatureChain c = MakeChain({"builder"});
  c.entries[0].role.clear();
  ExpectSectionCorrupt(EncodeChain(c));
}
TEST(Section, RejectsSignatureLengthPastRecord) {
  auto s = OneEntrySection();
  size_t at = 16 + 4 + 4 + 8 + 1 + 7;
  StoreLe32(&s[at], LoadLe32(&s[at]) + 1);
  ExpectSectionCorrupt(s);
}
TEST(Section, RejectsTrailingBytes) {
  auto s = OneEntrySection();
  s.push_back(0);
  ExpectSectionCorrupt(s);
}
TEST(Section, RejectsEveryTruncation) {
  auto s = OneEntrySection();
  for (size_t n = 1; n < s.size(); ++n) {
    EXPECT_FALSE(DecodeChain(std::span<const uint8_t>(s.data(), n))
                     .has_value())
        << n;
  }
}
TEST(Section, MalformedSignatureBlobMakesEntryInvalid) {
  SignatureChain c = MakeChain({"builder"});
  c.entries[0].sshsig.push_back(0);
  auto r = Check(c, RootOf('R'), nullptr);
  EXPECT_EQ(r.state, SignatureState::kInvalid);
  EXPECT_FALSE(r.entries[0].valid);
}

TEST(Section, EverySingleByteChangeIsDetected) {
  SignatureChain chain = MakeChain({"builder", "reviewer"});
  AllowedSigners trust = TrustAll(2);
  const auto good = EncodeChain(chain);
  ASSERT_EQ(VerifyChain(RootOf('R'), good, &trust, 1700000100).state,
            SignatureState::kTrusted);
  for (size_t i = 0; i < good.size(); ++i) {
    auto bad = good;
    bad[i] ^= 0x01;
    EXPECT_EQ(VerifyChain(RootOf('R'), bad, &trust, 1700000100).state,
              SignatureState::kInvalid)
        << "byte " << i;
  }
}

TEST(KeyFile, EverySingleByteChangeIsRejectedOrHarmless) {
  // Flipped bytes either fail to decode or (in the comment) decode to the
  // same key; never to a different key or a crash.
  SecretKey key = KeyFromByte(7);
  std::string text = EncodeOpenSshPrivateKey(key, "c");
  auto raw = Dearmor("OPENSSH PRIVATE KEY", text);
  ASSERT_TRUE(raw.has_value());
  for (size_t i = 0; i < raw->size(); ++i) {
    auto bad = *raw;
    bad[i] ^= 0x01;
    auto parsed = ParseOpenSshPrivateKey(Armor("OPENSSH PRIVATE KEY", bad));
    if (parsed) {
      EXPECT_EQ(parsed->public_key, key.public_key()) << "byte " << i;
      EXPECT_NE(parsed->comment, "c") << "byte " << i;
    }
  }
}

TEST(SigningTime, HonoursSourceDateEpoch) {
  setenv("SOURCE_DATE_EPOCH", "1234", 1);
  auto t = SigningTime();
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(*t, 1234u);
  setenv("SOURCE_DATE_EPOCH", "12x", 1);
  EXPECT_FALSE(SigningTime().has_value());
  setenv("SOURCE_DATE_EPOCH", "", 1);
  EXPECT_FALSE(SigningTime().has_value());
  unsetenv("SOURCE_DATE_EPOCH");
  EXPECT_TRUE(SigningTime().has_value());
}

}  // namespace
}  // namespace egg::crypto
