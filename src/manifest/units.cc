// Human units for limits, RFC 3339 timestamps and SPDX expressions: small
// parsers that accept one spelling each and reject everything else.
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/text.h"
#include "egg/manifest.h"

namespace egg {
namespace {

Error Bad(std::string_view what, std::string_view text) {
  return Error(Code::kInvalidArgument,
               std::string(what) + " '" + EscapeForTerminal(text) + "'");
}

// Splits "123unit" (optional spaces between) into number and unit. The
// number is plain digits without leading zeros; "1.5GiB" is refused with
// its own message rather than as an unknown unit.
Result<std::pair<uint64_t, std::string_view>> SplitNumber(
    std::string_view text, std::string_view kind) {
  size_t i = 0;
  uint64_t n = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (n > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
      return tl::unexpected(Bad(std::string(kind) + " too large", text));
    }
    n = n * 10 + digit;
    ++i;
  }
  if (i == 0) {
    return tl::unexpected(Bad(
        kind == "duration" ? "not a duration (like 30s, 5m, 2h)"
                           : "not a size (like 512MiB, 2GiB)",
        text));
  }
  if (i > 1 && text[0] == '0') {
    return tl::unexpected(Bad("leading zeros are not allowed in", text));
  }
  if (i < text.size() && (text[i] == '.' || text[i] == ',')) {
    return tl::unexpected(
        Bad("fractions are not supported (use a smaller unit) in", text));
  }
  while (i < text.size() && text[i] == ' ') ++i;
  return std::pair{n, text.substr(i)};
}

bool MultiplyChecked(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}

}  // namespace

Result<uint64_t> ParseDurationMs(std::string_view text) {
  auto split = SplitNumber(text, "duration");
  if (!split) return tl::unexpected(split.error());
  auto [n, unit] = *split;
  uint64_t scale = 0;
  if (unit == "ms") {
    scale = 1;
  } else if (unit == "s") {
    scale = 1000;
  } else if (unit == "m") {
    scale = 60 * 1000;
  } else if (unit == "h") {
    scale = 3600 * 1000;
  } else if (unit == "d") {
    scale = 24 * 3600 * 1000;
  } else if (unit.empty()) {
    return tl::unexpected(Bad("duration needs a unit (ms, s, m, h, d)", text));
  } else {
    return tl::unexpected(Bad("unknown duration unit in", text));
  }
  uint64_t out = 0;
  if (!MultiplyChecked(n, scale, &out)) {
    return tl::unexpected(Bad("duration too large", text));
  }
  return out;
}

Result<uint64_t> ParseSizeBytes(std::string_view text) {
  auto split = SplitNumber(text, "size");
  if (!split) return tl::unexpected(split.error());
  auto [n, unit] = *split;
  struct Unit {
    std::string_view name;
    uint64_t scale;
  };
  static constexpr Unit kUnits[] = {
      {"", 1},
      {"B", 1},
      {"KiB", 1ull << 10},
      {"MiB", 1ull << 20},
      {"GiB", 1ull << 30},
      {"TiB", 1ull << 40},
      {"kB", 1000ull},
      {"MB", 1000ull * 1000},
      {"GB", 1000ull * 1000 * 1000},
      {"TB", 1000ull * 1000 * 1000 * 1000},
  };
  for (const Unit& u : kUnits) {
    if (unit != u.name) continue;
    uint64_t out = 0;
    if (!MultiplyChecked(n, u.scale, &out)) {
      return tl::unexpected(Bad("size too large", text));
    }
    return out;
  }
  return tl::unexpected(Bad(
      "unknown size unit (B, KiB, MiB, GiB, TiB, kB, MB, GB, TB) in", text));
}

// ---- RFC 3339 -------------------------------------------------------------

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date.
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t mp = (m + 9) % 12;
  int64_t doy = (153 * mp + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void CivilFromDays(int64_t z, int64_t* y, int64_t* m, int64_t* d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = yoe + era * 400 + (*m <= 2 ? 1 : 0);
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int64_t y, int64_t m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30,
                                  31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

bool Digits(std::string_view s, size_t pos, size_t n, int64_t* out) {
  if (pos + n > s.size()) return false;
  int64_t v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

}  // namespace

std::string FormatRfc3339Utc(int64_t unix_seconds) {
  int64_t days = unix_seconds / 86400;
  int64_t secs = unix_seconds % 86400;
  if (secs < 0) {
    secs += 86400;
    days -= 1;
  }
  int64_t y, m, d;
  CivilFromDays(days, &y, &m, &d);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lldZ",
                static_cast<long long>(y), static_cast<long long>(m),
                static_cast<long long>(d), static_cast<long long>(secs / 3600),
                static_cast<long long>(secs / 60 % 60),
                static_cast<long long>(secs % 60));
  return buf;
}

Result<int64_t> ParseRfc3339Utc(std::string_view t) {
  auto bad = [&] {
    return tl::unexpected(
        Bad("not an RFC 3339 UTC time (like 2024-05-01T12:00:00Z)", t));
  };
  int64_t y, mo, d, h, mi, s;
  if (!Digits(t, 0, 4, &y) || t.size() < 20 || t[4] != '-' ||
      !Digits(t, 5, 2, &mo) || t[7] != '-' || !Digits(t, 8, 2, &d) ||
      (t[10] != 'T' && t[10] != 't') || !Digits(t, 11, 2, &h) || t[13] != ':' ||
      !Digits(t, 14, 2, &mi) || t[16] != ':' || !Digits(t, 17, 2, &s)) {
    return bad();
  }
  std::string_view zone = t.substr(19);
  if (zone != "Z" && zone != "z" && zone != "+00:00" && zone != "-00:00") {
    if (!zone.empty() && zone[0] == '.') {
      return tl::unexpected(Bad("fractional seconds are not allowed in", t));
    }
    return tl::unexpected(Bad("time must be in UTC ('Z'):", t));
  }
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > DaysInMonth(y, mo) ||
      h > 23 || mi > 59 || s > 59) {
    return bad();
  }
  return DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
}

// ---- SPDX -----------------------------------------------------------------

namespace {

class SpdxParser {
 public:
  explicit SpdxParser(std::string_view text) : text_(text) {}

  Status Run() {
    if (Status s = Tokenize(); !s) return s;
    if (tokens_.empty()) return Error("empty license expression");
    if (Status s = Expression(0); !s) return s;
    if (pos_ != tokens_.size()) {
      return Error("unexpected '" + tokens_[pos_] + "'");
    }
    return {};
  }

 private:
  static constexpr int kMaxDepth = 32;

  tl::unexpected<egg::Error> Error(const std::string& what) {
    return Fail(Code::kInvalidArgument,
                "license '" + EscapeForTerminal(text_) + "': " + what);
  }

  Status Tokenize() {
    size_t i = 0;
    while (i < text_.size()) {
      char c = text_[i];
      if (c == ' ') {
        ++i;
      } else if (c == '(' || c == ')') {
        tokens_.emplace_back(1, c);
        ++i;
      } else {
        size_t end = i;
        while (end < text_.size() && text_[end] != ' ' && text_[end] != '(' &&
               text_[end] != ')') {
          ++end;
        }
        tokens_.emplace_back(text_.substr(i, end - i));
        i = end;
      }
    }
    return {};
  }

  static bool IsOperator(const std::string& t, const char* upper,
                         const char* lower) {
    return t == upper || t == lower;
  }

  bool Peek(const char* upper, const char* lower) const {
    return pos_ < tokens_.size() && IsOperator(tokens_[pos_], upper, lower);
  }

  static bool IsIdString(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' &&
          c != '.') {
        return false;
      }
    }
    return true;
  }

  // license-id ["+"] | [DocumentRef-x:]LicenseRef-y
  bool IsSimple(std::string_view t) const {
    std::string_view ref = t;
    if (ref.starts_with("DocumentRef-")) {
      size_t colon = ref.find(':');
      if (colon == std::string_view::npos) return false;
      if (!IsIdString(ref.substr(12, colon - 12))) return false;
      ref = ref.substr(colon + 1);
      if (!ref.starts_with("LicenseRef-")) return false;
    }
    if (ref.starts_with("LicenseRef-")) return IsIdString(ref.substr(11));
    if (ref.ends_with("+")) ref.remove_suffix(1);
    return IsIdString(ref) && !IsKeyword(std::string(ref));
  }

  static bool IsKeyword(const std::string& t) {
    return IsOperator(t, "AND", "and") || IsOperator(t, "OR", "or") ||
           IsOperator(t, "WITH", "with");
  }

  Status Expression(int depth) {
    if (Status s = AndExpression(depth); !s) return s;
    while (Peek("OR", "or")) {
      ++pos_;
      if (Status s = AndExpression(depth); !s) return s;
    }
    return {};
  }

  Status AndExpression(int depth) {
    if (Status s = Term(depth); !s) return s;
    while (Peek("AND", "and")) {
      ++pos_;
      if (Status s = Term(depth); !s) return s;
    }
    return {};
  }

  Status Term(int depth) {
    if (pos_ >= tokens_.size()) return Error("expression ends too early");
    const std::string& t = tokens_[pos_];
    if (t == "(") {
      if (depth >= kMaxDepth) return Error("parentheses nested too deep");
      ++pos_;
      if (Status s = Expression(depth + 1); !s) return s;
      if (pos_ >= tokens_.size() || tokens_[pos_] != ")") {
        return Error("missing ')'");
      }
      ++pos_;
      return {};
    }
    if (!IsSimple(t)) return Error("'" + t + "' is not a license identifier");
    ++pos_;
    if (Peek("WITH", "with")) {
      ++pos_;
      if (pos_ >= tokens_.size()) return Error("WITH needs an exception");
      const std::string& e = tokens_[pos_];
      if (!IsIdString(e) || IsKeyword(e)) {
        return Error("'" + e + "' is not a license exception identifier");
      }
      ++pos_;
    }
    return {};
  }

  std::string_view text_;
  std::vector<std::string> tokens_;
  size_t pos_ = 0;
};

}  // namespace

Status CheckSpdxExpression(std::string_view text) {
  if (!IsPrintableUtf8(text)) {
    return Fail(Code::kInvalidArgument,
                "license '" + EscapeForTerminal(text) +
                    "': control character or invalid UTF-8");
  }
  return SpdxParser(text).Run();
}

}  // namespace egg

namespace egg {

Limits MinimumLimits() {
  Limits l;
  l.wall_ms = 100;
  l.cpu_ms = 100;
  l.memory_bytes = 16ull << 20;
  l.processes = 4;
  l.scratch_bytes = 1ull << 20;
  l.output_bytes = 4ull << 10;
  return l;
}

}  // namespace egg
