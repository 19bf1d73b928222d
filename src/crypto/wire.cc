#include "crypto/wire.h"

#include <openssl/crypto.h>

#include "common/base64.h"

namespace egg::crypto {
namespace {

std::string_view StripCr(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

struct WipeOnExit {
  std::string& s;
  ~WipeOnExit() {
    Wipe(std::span<uint8_t>(reinterpret_cast<uint8_t*>(s.data()), s.size()));
  }
};

bool IsBlank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

}  // namespace

std::string Base64Encode(std::span<const uint8_t> data) {
  return egg::Base64Encode(AsText(data));
}

std::string Base64EncodeUnpadded(std::span<const uint8_t> data) {
  return egg::Base64EncodeUnpadded(AsText(data));
}

std::optional<std::vector<uint8_t>> Base64Decode(std::string_view text) {
  auto decoded = egg::Base64Decode(text, Base64Mode::kStrict);
  if (!decoded) return std::nullopt;
  WipeOnExit wipe{*decoded};
  return std::vector<uint8_t>(decoded->begin(), decoded->end());
}

std::string Armor(std::string_view label, std::span<const uint8_t> data) {
  std::string b64 = Base64Encode(data);
  // Sized once: the text may hold a secret and must not be reallocated.
  std::string out;
  out.reserve(b64.size() + b64.size() / 70 + 2 * label.size() + 64);
  out += "-----BEGIN ";
  out += label;
  out += "-----\n";
  for (size_t i = 0; i < b64.size(); i += 70) {
    out.append(b64, i, 70);
    out += '\n';
  }
  out += "-----END ";
  out += label;
  out += "-----\n";
  WipeOnExit wipe_b64{b64};
  return out;
}

Result<std::vector<uint8_t>> Dearmor(std::string_view label,
                                     std::string_view text) {
  const std::string begin = "-----BEGIN " + std::string(label) + "-----";
  const std::string end = "-----END " + std::string(label) + "-----";
  enum { kBefore, kInside, kAfter } state = kBefore;

  // The base64 body is joined into a buffer sized once, so that a secret
  // never sits in memory that was reallocated without being wiped.
  std::string body;
  body.reserve(text.size());
  WipeOnExit wipe_body{body};
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = StripCr(text.substr(pos, nl - pos));
    pos = nl + 1;
    if (state == kBefore) {
      if (IsBlank(line)) continue;
      if (line != begin) {
        return Fail(Code::kInvalidArgument,
                    "expected a '" + begin + "' line");
      }
      state = kInside;
    } else if (state == kInside) {
      if (line == end) {
        state = kAfter;
        continue;
      }
      if (line.find_first_of(" \t:") != std::string_view::npos) {
        return Fail(Code::kInvalidArgument,
                    "unexpected text inside the " + std::string(label) +
                        " armour");
      }
      body += line;
    } else if (!IsBlank(line)) {
      return Fail(Code::kInvalidArgument,
                  "unexpected text after '" + end + "'");
    }
  }
  if (state != kAfter) {
    return Fail(Code::kInvalidArgument, "missing '" +
                                            (state == kBefore ? begin : end) +
                                            "' line");
  }
  auto decoded = Base64Decode(body);
  if (!decoded) {
    return Fail(Code::kInvalidArgument,
                "invalid base64 inside the " + std::string(label) +
                    " armour");
  }
  return std::move(*decoded);
}

SecretBuffer::~SecretBuffer() { Wipe(data_); }

void Wipe(std::span<uint8_t> bytes) {
  if (!bytes.empty()) OPENSSL_cleanse(bytes.data(), bytes.size());
}

void Wipe(std::vector<uint8_t>& bytes) {
  Wipe(std::span<uint8_t>(bytes.data(), bytes.size()));
}

}  // namespace egg::crypto
