#include "common/base64.h"

#include <cstdint>

namespace egg {
namespace {

constexpr char kAlphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool IsSpace(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f' ||
         c == '\v';
}

}  // namespace

std::string Base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    for (int k = 3; k >= 0; --k) out += kAlphabet[(v >> (6 * k)) & 63];
  }
  size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t{p[i]} << 16;
    if (rest == 2) v |= uint32_t{p[i + 1]} << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string Base64EncodeUnpadded(std::string_view bytes) {
  std::string out = Base64Encode(bytes);
  while (!out.empty() && out.back() == '=') out.pop_back();
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text,
                                        Base64Mode mode) {
  const bool strict = mode == Base64Mode::kStrict;
  if (strict && text.size() % 4 != 0) return std::nullopt;
  std::string out;
  // Sized once, never reallocated: the bytes may be a secret key, and
  // the caller wipes this one buffer.
  out.reserve((text.size() + 3) / 4 * 3);
  uint32_t acc = 0;
  int digits = 0;   // characters of the current group of four
  int padding = 0;  // '=' seen
  for (char c : text) {
    if (!strict && IsSpace(c)) continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    int v = Value(c);
    if (v < 0 || padding > 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    if (++digits == 4) {
      out += static_cast<char>(acc >> 16);
      out += static_cast<char>((acc >> 8) & 0xFF);
      out += static_cast<char>(acc & 0xFF);
      acc = 0;
      digits = 0;
    }
  }
  // A final group of two or three characters carries one or two bytes;
  // one character alone carries none and is malformed.
  if (digits == 1 || padding > 2) return std::nullopt;
  if (digits == 0 && padding > 0) return std::nullopt;
  if (digits > 0 && (strict || padding > 0) && digits + padding != 4) {
    return std::nullopt;
  }
  if (digits == 2) {
    if (strict && (acc & 0xF) != 0) return std::nullopt;
    out += static_cast<char>(acc >> 4);
  } else if (digits == 3) {
    if (strict && (acc & 0x3) != 0) return std::nullopt;
    out += static_cast<char>(acc >> 10);
    out += static_cast<char>((acc >> 2) & 0xFF);
  }
  return out;
}

}  // namespace egg
