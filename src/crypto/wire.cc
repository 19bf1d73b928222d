#include "crypto/wire.h"

#include <openssl/crypto.h>

namespace egg::crypto {
namespace {

constexpr char kAlphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int DecodeChar(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

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
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    for (int k = 3; k >= 0; --k) out += kAlphabet[(v >> (6 * k)) & 63];
  }
  size_t rest = data.size() - i;
  if (rest == 1) {
    uint32_t v = data[i] << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    uint32_t v = (data[i] << 16) | (data[i + 1] << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string Base64EncodeUnpadded(std::span<const uint8_t> data) {
  std::string s = Base64Encode(data);
  while (!s.empty() && s.back() == '=') s.pop_back();
  return s;
}

std::optional<std::vector<uint8_t>> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  size_t pad = 0;
  if (!text.empty() && text.back() == '=') ++pad;
  if (text.size() >= 2 && text[text.size() - 2] == '=') ++pad;
  std::vector<uint8_t> out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    uint32_t v = 0;
    for (size_t k = 0; k < 4; ++k) {
      char c = text[i + k];
      int d;
      if (c == '=' && last && k >= 4 - pad) {
        d = 0;
      } else {
        d = DecodeChar(c);
        if (d < 0) return std::nullopt;
      }
      v = (v << 6) | static_cast<uint32_t>(d);
    }
    out.push_back(static_cast<uint8_t>(v >> 16));
    if (last && pad == 2) {
      if ((v & 0xffff) != 0) return std::nullopt;  // non-canonical bits
      break;
    }
    out.push_back(static_cast<uint8_t>(v >> 8));
    if (last && pad == 1) {
      if ((v & 0xff) != 0) return std::nullopt;
      break;
    }
    out.push_back(static_cast<uint8_t>(v));
  }
  return out;
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
