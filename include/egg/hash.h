// SHA-256 through OpenSSL's EVP interface.
#ifndef EGG_HASH_H_
#define EGG_HASH_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "egg/status.h"

namespace egg {

using Digest = std::array<uint8_t, 32>;

// Incremental SHA-256. Not copyable; cheap to create.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::span<const uint8_t> data);
  void Update(std::string_view data);
  Digest Finish();  // the object may not be used afterwards

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

Digest Sha256Of(std::span<const uint8_t> data);
Digest Sha256Of(std::string_view data);

// Lower-case hex, 64 characters.
std::string DigestHex(const Digest& digest);
// "sha256:<hex>"
std::string DigestRef(const Digest& digest);
// Parses 64 lower-case hex characters, or "sha256:" followed by them.
Result<Digest> ParseDigest(std::string_view text);

// A hash functor for unordered containers keyed by Digest: the first bytes
// of a SHA-256 are already uniformly spread.
struct DigestHash {
  size_t operator()(const Digest& d) const {
    size_t h;
    std::memcpy(&h, d.data(), sizeof h);
    return h;
  }
};

}  // namespace egg

#endif  // EGG_HASH_H_
