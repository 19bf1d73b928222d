#include "egg/hash.h"

// SHA-256 through OpenSSL's direct SHA256_* functions rather than EVP: the
// first EVP digest of a process loads the provider and builds its method
// store (0.7 ms measured, more than hashing a small egg), and every egg
// command hashes. The functions are deprecated in OpenSSL 3 in favour of
// EVP but still shipped and the same implementation; asking for the 1.1.1
// API here declares them without the deprecation warning. Signatures
// (src/crypto) still use EVP.
#define OPENSSL_API_COMPAT 10101
#include <openssl/sha.h>

#include <cstdlib>

namespace egg {

struct Sha256::Impl {
  SHA256_CTX ctx;
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  // SHA256_Init cannot fail for this context; should it ever, nothing
  // sensible is left to do: fail loudly rather than hash nothing.
  if (SHA256_Init(&impl_->ctx) != 1) std::abort();
}

Sha256::~Sha256() = default;

void Sha256::Update(std::span<const uint8_t> data) {
  SHA256_Update(&impl_->ctx, data.data(), data.size());
}

void Sha256::Update(std::string_view data) {
  SHA256_Update(&impl_->ctx, data.data(), data.size());
}

Digest Sha256::Finish() {
  Digest out{};
  SHA256_Final(out.data(), &impl_->ctx);
  return out;
}

Digest Sha256Of(std::span<const uint8_t> data) {
  Sha256 h;
  h.Update(data);
  return h.Finish();
}

Digest Sha256Of(std::string_view data) {
  Sha256 h;
  h.Update(data);
  return h.Finish();
}

std::string DigestHex(const Digest& digest) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (uint8_t b : digest) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

std::string DigestRef(const Digest& digest) {
  return "sha256:" + DigestHex(digest);
}

Result<Digest> ParseDigest(std::string_view text) {
  if (text.starts_with("sha256:")) text.remove_prefix(7);
  if (text.size() != 64) {
    return Fail(Code::kInvalidArgument, "a digest is 64 hex characters");
  }
  Digest out{};
  for (size_t i = 0; i < 64; ++i) {
    char c = text[i];
    int v;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v = c - 'a' + 10;
    } else {
      return Fail(Code::kInvalidArgument,
                  "a digest is lower-case hex (0-9, a-f)");
    }
    out[i / 2] = static_cast<uint8_t>((out[i / 2] << 4) | v);
  }
  return out;
}

}  // namespace egg
