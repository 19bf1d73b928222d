// Internal helpers of egg_crypto: strict base64, SSH wire strings, PEM-like
// armour and wiped buffers.
#ifndef EGG_CRYPTO_WIRE_H_
#define EGG_CRYPTO_WIRE_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "egg/status.h"

namespace egg::crypto {

// Standard base64 with padding.
std::string Base64Encode(std::span<const uint8_t> data);
// Unpadded base64, as SSH fingerprints use.
std::string Base64EncodeUnpadded(std::span<const uint8_t> data);
// Strict: only the standard alphabet, canonical '=' padding, zero unused
// bits. Returns nullopt for anything else.
std::optional<std::vector<uint8_t>> Base64Decode(std::string_view text);

// An SSH "string": u32 big-endian length, then the bytes.
inline void PutSshString(ByteWriter& w, std::span<const uint8_t> b) {
  w.Be32(static_cast<uint32_t>(b.size()));
  w.Bytes(b);
}
inline void PutSshString(ByteWriter& w, std::string_view s) {
  w.Be32(static_cast<uint32_t>(s.size()));
  w.Bytes(s);
}
// Reads an SSH string; on a short buffer the reader's ok() turns false.
inline std::span<const uint8_t> GetSshString(ByteReader& r) {
  uint32_t n = r.Be32();
  return r.Bytes(n);
}
inline std::string_view AsText(std::span<const uint8_t> b) {
  return std::string_view(reinterpret_cast<const char*>(b.data()), b.size());
}

// Wraps base64 of `data` between "-----BEGIN <label>-----" and
// "-----END <label>-----" lines, 70 characters a line.
std::string Armor(std::string_view label, std::span<const uint8_t> data);
// The inverse. Lines may end in "\r\n"; blank lines around the armour are
// allowed, nothing else. The returned bytes may be secret: wipe them.
Result<std::vector<uint8_t>> Dearmor(std::string_view label,
                                     std::string_view text);

// A byte buffer wiped (OPENSSL_cleanse) before it is freed. Never grows
// past the capacity given at construction, so no copy is left behind.
class SecretBuffer {
 public:
  explicit SecretBuffer(size_t capacity) { data_.reserve(capacity); }
  ~SecretBuffer();
  SecretBuffer(const SecretBuffer&) = delete;
  SecretBuffer& operator=(const SecretBuffer&) = delete;

  std::vector<uint8_t>& data() { return data_; }

 private:
  std::vector<uint8_t> data_;
};

void Wipe(std::span<uint8_t> bytes);
void Wipe(std::vector<uint8_t>& bytes);

}  // namespace egg::crypto

#endif  // EGG_CRYPTO_WIRE_H_
