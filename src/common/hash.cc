#include "egg/hash.h"

#include <openssl/evp.h>

#include <cstdlib>

namespace egg {

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  // Allocation failure of a few bytes or a missing SHA-256 leaves nothing
  // sensible to do; fail loudly rather than hash nothing.
  if (impl_->ctx == nullptr ||
      EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1) {
    std::abort();
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(impl_->ctx); }

void Sha256::Update(std::span<const uint8_t> data) {
  EVP_DigestUpdate(impl_->ctx, data.data(), data.size());
}

void Sha256::Update(std::string_view data) {
  EVP_DigestUpdate(impl_->ctx, data.data(), data.size());
}

Digest Sha256::Finish() {
  Digest out{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(impl_->ctx, out.data(), &len);
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
