// The one base64 codec of egg (RFC 4648, standard alphabet). Two decoders
// for two kinds of input: strict for anything that is part of a signed or
// parsed structure (keys, signatures, results JSON, registry credentials),
// lenient for notebook data, whose writers wrap lines and drop padding.
#ifndef EGG_COMMON_BASE64_H_
#define EGG_COMMON_BASE64_H_

#include <optional>
#include <string>
#include <string_view>

namespace egg {

// Standard base64 with '=' padding, no line breaks.
std::string Base64Encode(std::string_view bytes);

// The same without the trailing '=' (SSH fingerprints).
std::string Base64EncodeUnpadded(std::string_view bytes);

enum class Base64Mode {
  // Length a multiple of 4, '=' only as the last one or two characters,
  // unused bits zero: exactly one text for each byte string.
  kStrict,
  // Also skips ASCII white space anywhere and accepts missing padding;
  // still refuses other characters, data after '=' and an impossible
  // length (one character left over).
  kLenient,
};

// Decodes `text`; nullopt when it is not base64 under `mode`.
[[nodiscard]] std::optional<std::string> Base64Decode(
    std::string_view text, Base64Mode mode = Base64Mode::kStrict);

}  // namespace egg

#endif  // EGG_COMMON_BASE64_H_
