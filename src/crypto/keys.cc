// Ed25519 keys and OpenSSH's key file formats.
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "common/atomic_file.h"
#include "common/fd.h"
#include "crypto/wire.h"
#include "egg/crypto.h"

namespace egg::crypto {
namespace {

constexpr std::string_view kKeyMagic("openssh-key-v1\0", 15);
constexpr std::string_view kPrivateKeyLabel = "OPENSSH PRIVATE KEY";
constexpr size_t kMaxKeyFileBytes = 64 * 1024;

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

// A cipher an encrypted key file may name: its block size and the length
// of the authentication tag stored after the encrypted section.
struct CipherInfo {
  std::string_view name;
  size_t block;
  size_t tag;
};
constexpr CipherInfo kCiphers[] = {
    {"none", 8, 0},
    {"aes128-ctr", 16, 0},
    {"aes192-ctr", 16, 0},
    {"aes256-ctr", 16, 0},
    {"aes128-cbc", 16, 0},
    {"aes192-cbc", 16, 0},
    {"aes256-cbc", 16, 0},
    {"3des-cbc", 8, 0},
    {"aes128-gcm@openssh.com", 16, 16},
    {"aes256-gcm@openssh.com", 16, 16},
    {"chacha20-poly1305@openssh.com", 8, 16},
};

const CipherInfo* FindCipher(std::string_view name) {
  for (const auto& c : kCiphers) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

Error Bad(const std::string& what) {
  return Error(Code::kInvalidArgument, "malformed OpenSSH private key: " +
                                           what);
}

// Decodes the private section of an unencrypted file.
Result<OpenSshPrivateKey> DecodePrivateSection(std::span<const uint8_t> sec,
                                               const PublicKey& header_key) {
  if (sec.size() % 8 != 0) {
    return Fail(Bad("private section is not a multiple of 8 bytes"));
  }
  ByteReader r(sec);
  uint32_t check1 = r.Be32();
  uint32_t check2 = r.Be32();
  std::string_view type = AsText(GetSshString(r));
  auto pub = GetSshString(r);
  auto priv = GetSshString(r);
  std::string_view comment = AsText(GetSshString(r));
  if (!r.ok()) return Fail(Bad("private section is truncated"));
  if (check1 != check2) {
    return Fail(Bad("check integers differ (wrong passphrase or damage)"));
  }
  if (type != kKeyType) {
    return Fail(Bad("private key type is not ssh-ed25519"));
  }
  if (pub.size() != 32) return Fail(Bad("public key is not 32 bytes"));
  if (priv.size() != 64) return Fail(Bad("secret key is not 64 bytes"));
  if (std::memcmp(pub.data(), header_key.bytes.data(), 32) != 0 ||
      std::memcmp(priv.data() + 32, header_key.bytes.data(), 32) != 0) {
    return Fail(Bad("private section names a different public key"));
  }

  // Padding is 1, 2, 3, ... up to the block size, and nothing else.
  size_t pad = r.remaining();
  if (pad >= 8) return Fail(Bad("too much padding"));
  auto padding = r.Bytes(pad);
  for (size_t i = 0; i < pad; ++i) {
    if (padding[i] != static_cast<uint8_t>(i + 1)) {
      return Fail(Bad("padding bytes are wrong"));
    }
  }

  auto secret = SecretKey::FromSeed(priv.subspan<0, 32>());
  if (!secret) return Fail(secret.error());
  if (secret->public_key() != header_key) {
    return Fail(Bad("secret key does not match its public key"));
  }
  OpenSshPrivateKey out;
  out.public_key = header_key;
  out.comment = std::string(comment);
  out.secret = std::move(*secret);
  return out;
}

}  // namespace

void WipeString(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
}

std::vector<uint8_t> PublicKeyBlob(const PublicKey& key) {
  ByteWriter w;
  PutSshString(w, kKeyType);
  PutSshString(w, key.bytes);
  return std::move(w.buffer());
}

Result<PublicKey> ParsePublicKeyBlob(std::span<const uint8_t> blob) {
  ByteReader r(blob);
  std::string_view type = AsText(GetSshString(r));
  auto key = GetSshString(r);
  if (!r.ok()) {
    return Fail(Code::kInvalidArgument, "public key blob is truncated");
  }
  if (type != kKeyType) {
    return Fail(Code::kInvalidArgument,
                "key type is not ssh-ed25519 (egg signs only with Ed25519)");
  }
  if (key.size() != 32) {
    return Fail(Code::kInvalidArgument, "Ed25519 public key is not 32 bytes");
  }
  if (!r.AtEnd()) {
    return Fail(Code::kInvalidArgument, "trailing bytes after public key");
  }
  PublicKey out;
  std::memcpy(out.bytes.data(), key.data(), 32);
  return out;
}

Digest KeyId(const PublicKey& key) { return Sha256Of(PublicKeyBlob(key)); }

std::string Fingerprint(const PublicKey& key) {
  return "SHA256:" + Base64EncodeUnpadded(KeyId(key));
}

std::string PublicKeyLine(const PublicKey& key, std::string_view comment) {
  std::string line = std::string(kKeyType) + " " +
                     Base64Encode(PublicKeyBlob(key));
  if (!comment.empty()) {
    line += ' ';
    line += comment;
  }
  return line;
}

Result<PublicKey> ParsePublicKeyLine(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
    line.remove_suffix(1);
  }
  size_t start = line.find_first_not_of(" \t");
  if (start == std::string_view::npos) {
    return Fail(Code::kInvalidArgument, "empty public key line");
  }
  line.remove_prefix(start);
  size_t sp = line.find_first_of(" \t");
  std::string_view type = line.substr(0, sp);
  if (type != kKeyType) {
    return Fail(Code::kInvalidArgument,
                "key type is not ssh-ed25519 (egg signs only with Ed25519)");
  }
  if (sp == std::string_view::npos) {
    return Fail(Code::kInvalidArgument, "public key line has no key");
  }
  std::string_view rest = line.substr(sp);
  rest.remove_prefix(rest.find_first_not_of(" \t"));
  std::string_view b64 = rest.substr(0, rest.find_first_of(" \t"));
  auto blob = Base64Decode(b64);
  if (!blob) {
    return Fail(Code::kInvalidArgument, "public key is not valid base64");
  }
  return ParsePublicKeyBlob(*blob);
}

Result<SecretKey> SecretKey::Generate() {
  std::array<uint8_t, 32> seed;
  if (RAND_priv_bytes(seed.data(), 32) != 1) {
    return Fail(Code::kInternal, "the random generator failed");
  }
  auto key = FromSeed(seed);
  OPENSSL_cleanse(seed.data(), seed.size());
  return key;
}

Result<SecretKey> SecretKey::FromSeed(std::span<const uint8_t, 32> seed) {
  PkeyPtr pkey(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr,
                                            seed.data(), seed.size()));
  if (!pkey) return Fail(Code::kInternal, "OpenSSL rejected an Ed25519 seed");
  SecretKey key;
  size_t len = 32;
  if (EVP_PKEY_get_raw_public_key(pkey.get(), key.public_.bytes.data(),
                                  &len) != 1 ||
      len != 32) {
    return Fail(Code::kInternal, "cannot derive an Ed25519 public key");
  }
  std::memcpy(key.seed_.data(), seed.data(), 32);
  return key;
}

SecretKey::SecretKey(SecretKey&& other) noexcept
    : seed_(other.seed_), public_(other.public_) {
  OPENSSL_cleanse(other.seed_.data(), other.seed_.size());
}

SecretKey& SecretKey::operator=(SecretKey&& other) noexcept {
  if (this != &other) {
    seed_ = other.seed_;
    public_ = other.public_;
    OPENSSL_cleanse(other.seed_.data(), other.seed_.size());
  }
  return *this;
}

SecretKey::~SecretKey() { OPENSSL_cleanse(seed_.data(), seed_.size()); }

Result<std::array<uint8_t, 64>> SecretKey::Sign(
    std::span<const uint8_t> message) const {
  PkeyPtr pkey(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr,
                                            seed_.data(), seed_.size()));
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!pkey || !ctx) return Fail(Code::kInternal, "OpenSSL allocation failed");
  std::array<uint8_t, 64> sig;
  size_t len = sig.size();
  if (EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) !=
          1 ||
      EVP_DigestSign(ctx.get(), sig.data(), &len, message.data(),
                     message.size()) != 1 ||
      len != 64) {
    return Fail(Code::kInternal, "Ed25519 signing failed");
  }
  return sig;
}

bool VerifyEd25519(const PublicKey& key, std::span<const uint8_t> message,
                   std::span<const uint8_t> signature) {
  if (signature.size() != 64) return false;
  PkeyPtr pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                           key.bytes.data(), 32));
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!pkey || !ctx) return false;
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr,
                           pkey.get()) != 1) {
    return false;
  }
  return EVP_DigestVerify(ctx.get(), signature.data(), signature.size(),
                          message.data(), message.size()) == 1;
}

Result<OpenSshPrivateKey> ParseOpenSshPrivateKey(std::string_view text) {
  auto decoded = Dearmor(kPrivateKeyLabel, text);
  if (!decoded) return Fail(Bad(decoded.error().message()));
  std::vector<uint8_t>& bytes = *decoded;
  struct WipeGuard {
    std::vector<uint8_t>& b;
    ~WipeGuard() { Wipe(b); }
  } guard{bytes};

  // Header, all in the clear.
  ByteReader r(bytes);
  if (r.String(kKeyMagic.size()) != kKeyMagic) {
    return Fail(Bad("not an openssh-key-v1 file"));
  }
  std::string_view cipher = AsText(GetSshString(r));
  std::string_view kdf = AsText(GetSshString(r));
  auto kdf_options = GetSshString(r);
  uint32_t nkeys = r.Be32();
  auto pub_blob = GetSshString(r);
  auto section = GetSshString(r);
  if (!r.ok()) return Fail(Bad("file is truncated"));
  if (nkeys != 1) return Fail(Bad("file must hold exactly one key"));
  auto public_key = ParsePublicKeyBlob(pub_blob);
  if (!public_key) return Fail(public_key.error());

  const CipherInfo* info = FindCipher(cipher);
  if (info == nullptr) {
    return Fail(Bad("unknown cipher '" + std::string(cipher) + "'"));
  }
  if (r.remaining() != info->tag) {
    return Fail(Bad("trailing bytes after the private section"));
  }
  if (section.size() % info->block != 0) {
    return Fail(Bad("private section is not a whole number of blocks"));
  }

  if (cipher == "none") {
    if (kdf != "none" || !kdf_options.empty()) {
      return Fail(Bad("unencrypted key names a key derivation"));
    }
    return DecodePrivateSection(section, *public_key);
  }

  // Encrypted: only the bcrypt KDF exists; its options are a salt and a
  // round count, nothing more.
  if (kdf != "bcrypt") return Fail(Bad("unknown key derivation"));
  ByteReader k(kdf_options);
  auto salt = GetSshString(k);
  uint32_t rounds = k.Be32();
  if (!k.AtEnd() || salt.empty() || rounds == 0) {
    return Fail(Bad("malformed bcrypt options"));
  }
  OpenSshPrivateKey out;
  out.public_key = *public_key;
  out.encrypted = true;
  return out;
}

std::string EncodeOpenSshPrivateKey(const SecretKey& key,
                                    std::string_view comment) {
  const PublicKey& pub = key.public_key();
  uint32_t check = 0;
  if (RAND_bytes(reinterpret_cast<uint8_t*>(&check), 4) != 1) check = 0;

  // Private section; the buffer is sized once so no copy of the secret is
  // left in freed memory.
  size_t body = 8 + (4 + kKeyType.size()) + (4 + 32) + (4 + 64) +
                (4 + comment.size());
  size_t padded = (body + 7) / 8 * 8;
  ByteWriter sec;
  sec.buffer().reserve(padded);
  sec.Be32(check);
  sec.Be32(check);
  PutSshString(sec, kKeyType);
  PutSshString(sec, pub.bytes);
  sec.Be32(64);
  sec.Bytes(key.seed());
  sec.Bytes(pub.bytes);
  PutSshString(sec, comment);
  for (uint8_t i = 1; sec.size() < padded; ++i) sec.U8(i);

  ByteWriter w;
  w.buffer().reserve(kKeyMagic.size() + 64 + 64 + padded);
  w.Bytes(kKeyMagic);
  PutSshString(w, "none");
  PutSshString(w, "none");
  PutSshString(w, "");
  w.Be32(1);
  PutSshString(w, PublicKeyBlob(pub));
  PutSshString(w, sec.buffer());
  std::string text = Armor(kPrivateKeyLabel, w.buffer());
  Wipe(sec.buffer());
  Wipe(w.buffer());
  return text;
}

Result<OpenSshPrivateKey> ReadOpenSshPrivateKey(const std::string& path) {
  // O_NONBLOCK: a FIFO must not block the open; it is refused below.
  auto fd = OpenFile(path, O_RDONLY | O_NONBLOCK);
  if (!fd) return Fail(fd.error());
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) {
    return Fail(ErrnoError("'" + path + "'"));
  }
  if (!S_ISREG(st.st_mode)) {
    return Fail(Code::kInvalidArgument, "'" + path + "' is not a file");
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxKeyFileBytes) {
    return Fail(Code::kInvalidArgument,
                "'" + path + "' is too large to be a key file");
  }
  SecretBuffer buf(kMaxKeyFileBytes + 1);
  buf.data().resize(kMaxKeyFileBytes + 1);
  size_t got = 0;
  for (;;) {
    ssize_t n = RetryEintr([&] {
      return ::read(fd->get(), buf.data().data() + got,
                    buf.data().size() - got);
    });
    if (n < 0) return Fail(ErrnoError("'" + path + "'"));
    if (n == 0) break;
    got += static_cast<size_t>(n);
    if (got > kMaxKeyFileBytes) {
      return Fail(Code::kInvalidArgument,
                  "'" + path + "' is too large to be a key file");
    }
  }
  auto key = ParseOpenSshPrivateKey(AsText(
      std::span<const uint8_t>(buf.data().data(), got)));
  if (!key) return Fail(key.error().Wrap("'" + path + "'"));
  return key;
}

Status WriteKeyPair(const std::string& path, const SecretKey& key,
                    std::string_view comment, bool force) {
  const std::string pub_path = path + ".pub";
  if (!force) {
    for (const std::string& p : {path, pub_path}) {
      if (::access(p.c_str(), F_OK) == 0) {
        return Fail(Code::kInvalidArgument,
                    "'" + p + "' exists (use --force to replace it)");
      }
    }
  }
  if (comment.find_first_of("\r\n") != std::string_view::npos) {
    return Fail(Code::kInvalidArgument, "key comment has a line break");
  }
  std::string text = EncodeOpenSshPrivateKey(key, comment);
  Status s = WriteFileAtomic(path, text, 0600, force);
  WipeString(text);
  if (!s) return s;
  return WriteFileAtomic(pub_path,
                         PublicKeyLine(key.public_key(), comment) + "\n",
                         0644, force);
}

}  // namespace egg::crypto
