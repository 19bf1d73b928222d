// OpenSSH allowed_signers files: the explicit trust root of `egg verify`.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <ctime>

#include "common/fd.h"
#include "crypto/wire.h"
#include "egg/crypto.h"

namespace egg::crypto {
namespace {

constexpr uint64_t kMaxTrustFileBytes = 4ull << 20;

// Key types a shared allowed_signers file may hold for other tools. Lines
// with them are checked for syntax and skipped: they cannot sign an egg.
constexpr std::string_view kOtherKeyTypes[] = {
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
};

bool IsOtherKeyType(std::string_view t) {
  return std::find(std::begin(kOtherKeyTypes), std::end(kOtherKeyTypes), t) !=
         std::end(kOtherKeyTypes);
}

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// Takes one whitespace-separated field; double quotes group spaces (as in
// principals or option values). Returns false on an unterminated quote.
bool NextField(std::string_view& rest, std::string_view* field) {
  size_t i = 0;
  while (i < rest.size() && IsSpace(rest[i])) ++i;
  rest.remove_prefix(i);
  bool quoted = false;
  size_t j = 0;
  for (; j < rest.size(); ++j) {
    char c = rest[j];
    if (c == '\\' && quoted && j + 1 < rest.size()) {
      ++j;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (IsSpace(c) && !quoted) {
      break;
    }
  }
  if (quoted) return false;
  *field = rest.substr(0, j);
  rest.remove_prefix(j);
  return true;
}

// Splits on commas outside double quotes.
std::vector<std::string_view> SplitList(std::string_view s) {
  std::vector<std::string_view> out;
  bool quoted = false;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || (s[i] == ',' && !quoted)) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    } else if (s[i] == '\\' && quoted && i + 1 < s.size()) {
      ++i;
    } else if (s[i] == '"') {
      quoted = !quoted;
    }
  }
  return out;
}

// Removes surrounding quotes and \" escapes.
std::optional<std::string> Dequote(std::string_view s) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') {
    return std::nullopt;
  }
  s = s.substr(1, s.size() - 2);
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == '"') ++i;
    else if (s[i] == '"') return std::nullopt;
    out += s[i];
  }
  return out;
}

// "YYYYMMDD[HHMM[SS]][Z]": UTC with Z, local time without (as ssh-keygen).
std::optional<int64_t> ParseTimestamp(std::string_view s) {
  bool utc = !s.empty() && (s.back() == 'Z' || s.back() == 'z');
  if (utc) s.remove_suffix(1);
  if (s.size() != 8 && s.size() != 12 && s.size() != 14) return std::nullopt;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  auto num = [&](size_t at, size_t n) {
    int v = 0;
    for (size_t i = 0; i < n; ++i) v = v * 10 + (s[at + i] - '0');
    return v;
  };
  std::tm tm{};
  tm.tm_year = num(0, 4) - 1900;
  tm.tm_mon = num(4, 2) - 1;
  tm.tm_mday = num(6, 2);
  if (s.size() >= 12) {
    tm.tm_hour = num(8, 2);
    tm.tm_min = num(10, 2);
  }
  if (s.size() == 14) tm.tm_sec = num(12, 2);
  tm.tm_isdst = -1;
  const std::tm want = tm;
  time_t t = utc ? timegm(&tm) : mktime(&tm);
  // A date the calendar normalised (Feb 30, hour 25) is not a date.
  if (t == static_cast<time_t>(-1) || tm.tm_year != want.tm_year ||
      tm.tm_mon != want.tm_mon || tm.tm_mday != want.tm_mday ||
      tm.tm_hour != want.tm_hour || tm.tm_min != want.tm_min ||
      tm.tm_sec != want.tm_sec) {
    return std::nullopt;
  }
  return static_cast<int64_t>(t);
}

// ssh's pattern syntax: '*' and '?' wildcards.
bool MatchPattern(std::string_view s, std::string_view p) {
  if (p.empty()) return s.empty();
  if (p[0] == '*') {
    for (size_t i = 0; i <= s.size(); ++i) {
      if (MatchPattern(s.substr(i), p.substr(1))) return true;
    }
    return false;
  }
  if (s.empty()) return false;
  if (p[0] != '?' && p[0] != s[0]) return false;
  return MatchPattern(s.substr(1), p.substr(1));
}

// A comma list of patterns, where "!pattern" excludes.
bool MatchPatternList(std::string_view s,
                      const std::vector<std::string>& patterns) {
  bool matched = false;
  for (const auto& p : patterns) {
    if (!p.empty() && p[0] == '!') {
      if (MatchPattern(s, std::string_view(p).substr(1))) return false;
    } else if (MatchPattern(s, p)) {
      matched = true;
    }
  }
  return matched;
}

// Applies one option ("name" or name="value") to `signer`.
Status ApplyOption(std::string_view opt, AllowedSigner& signer) {
  size_t eq = opt.find('=');
  std::string_view name = opt.substr(0, eq);
  if (EqualsIgnoreCase(name, "cert-authority")) {
    return Fail(Code::kInvalidArgument,
                "cert-authority is not supported: egg does not use SSH "
                "certificates; list the signing key itself");
  }
  if (eq == std::string_view::npos) {
    return Fail(Code::kInvalidArgument,
                "unknown option '" + std::string(opt) + "'");
  }
  auto value = Dequote(opt.substr(eq + 1));
  if (!value) {
    return Fail(Code::kInvalidArgument,
                "option '" + std::string(name) + "' needs a quoted value");
  }
  if (EqualsIgnoreCase(name, "namespaces")) {
    for (auto ns : SplitList(*value)) {
      if (ns.empty()) {
        return Fail(Code::kInvalidArgument, "empty name in namespaces=");
      }
      signer.namespaces.emplace_back(ns);
    }
    return {};
  }
  bool after = EqualsIgnoreCase(name, "valid-after");
  if (after || EqualsIgnoreCase(name, "valid-before")) {
    auto t = ParseTimestamp(*value);
    if (!t) {
      return Fail(Code::kInvalidArgument,
                  "bad time '" + *value + "' in " + std::string(name) +
                      " (want YYYYMMDD[HHMM[SS]][Z])");
    }
    std::optional<int64_t>& slot =
        after ? signer.valid_after : signer.valid_before;
    if (slot) {
      return Fail(Code::kInvalidArgument,
                  std::string(name) + " given twice");
    }
    slot = *t;
    return {};
  }
  return Fail(Code::kInvalidArgument,
              "unknown option '" + std::string(name) + "'");
}

// Parses one non-comment line. Sets *skip for valid lines of other key
// types.
Status ParseLine(std::string_view line, AllowedSigner& out, bool* skip) {
  *skip = false;
  std::string_view rest = line;
  std::string_view principals, field;
  if (!NextField(rest, &principals) || !NextField(rest, &field)) {
    return Fail(Code::kInvalidArgument, "unterminated quote");
  }
  if (principals.size() >= 2 && principals.front() == '"') {
    auto unq = Dequote(principals);
    if (!unq) return Fail(Code::kInvalidArgument, "bad quoted principals");
    for (auto p : SplitList(*unq)) out.principals.emplace_back(p);
  } else {
    for (auto p : SplitList(principals)) out.principals.emplace_back(p);
  }
  for (const auto& p : out.principals) {
    if (p.empty()) return Fail(Code::kInvalidArgument, "empty principal");
  }
  if (field.empty()) {
    return Fail(Code::kInvalidArgument, "no key after the principals");
  }

  // The field after the principals is the key type, or options before it.
  if (field != kKeyType && !IsOtherKeyType(field)) {
    for (auto opt : SplitList(field)) {
      if (auto s = ApplyOption(opt, out); !s) return s;
    }
    if (!NextField(rest, &field) || field.empty()) {
      return Fail(Code::kInvalidArgument, "no key type after the options");
    }
  }
  std::string_view key_text;
  if (!NextField(rest, &key_text) || key_text.empty()) {
    return Fail(Code::kInvalidArgument, "no base64 key");
  }
  if (IsOtherKeyType(field)) {
    if (!Base64Decode(key_text)) {
      return Fail(Code::kInvalidArgument, "key is not valid base64");
    }
    *skip = true;
    return {};
  }
  if (field != kKeyType) {
    return Fail(Code::kInvalidArgument,
                "unknown key type '" + std::string(field) + "'");
  }
  auto blob = Base64Decode(key_text);
  if (!blob) return Fail(Code::kInvalidArgument, "key is not valid base64");
  auto key = ParsePublicKeyBlob(*blob);
  if (!key) return Fail(key.error());
  out.key = *key;
  if (out.valid_after && out.valid_before &&
      *out.valid_after >= *out.valid_before) {
    return Fail(Code::kInvalidArgument,
                "valid-after is not before valid-before");
  }
  return {};
}

}  // namespace

Result<AllowedSigners> AllowedSigners::Parse(std::string_view text,
                                             std::string origin) {
  AllowedSigners out;
  out.origin_ = std::move(origin);
  int number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') continue;
    if (line.find('\0') != std::string_view::npos) {
      return Fail(Code::kInvalidArgument, "'" + out.origin_ + "' line " +
                                              std::to_string(number) +
                                              ": NUL byte");
    }
    AllowedSigner signer;
    signer.line = number;
    bool skip = false;
    if (auto s = ParseLine(line.substr(first), signer, &skip); !s) {
      return Fail(s.error().Wrap("'" + out.origin_ + "' line " +
                                 std::to_string(number)));
    }
    if (!skip) out.signers_.push_back(std::move(signer));
  }
  return out;
}

Result<AllowedSigners> AllowedSigners::Load(const std::string& path) {
  auto text = ReadFileToString(path, kMaxTrustFileBytes);
  if (!text) return Fail(text.error());
  return Parse(*text, path);
}

TrustDecision AllowedSigners::Decide(const PublicKey& key,
                                     std::string_view ns, int64_t now,
                                     int64_t signed_time) const {
  TrustDecision d;
  d.reason = "untrusted key";
  bool named = false;
  for (const auto& s : signers_) {
    if (s.key != key) continue;
    std::string where = " (" + origin_ + " line " + std::to_string(s.line) +
                        ")";
    std::string why;
    if (!s.namespaces.empty() &&
        !MatchPatternList(ns, s.namespaces)) {
      why = "key is not allowed for namespace " + std::string(ns);
    } else if (s.valid_after && (now < *s.valid_after ||
                                 signed_time < *s.valid_after)) {
      why = "key is not valid before " +
            FormatUtc(static_cast<uint64_t>(*s.valid_after));
    } else if (s.valid_before && (now > *s.valid_before ||
                                  signed_time > *s.valid_before)) {
      why = "key expired at " +
            FormatUtc(static_cast<uint64_t>(*s.valid_before));
    } else {
      d.trusted = true;
      d.principals = s.principals;
      d.reason.clear();
      return d;
    }
    if (!named) d.reason = why + where;
    named = true;
  }
  return d;
}

std::optional<std::string> DefaultAllowedSignersPath() {
  std::string dir;
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  if (xdg != nullptr && xdg[0] == '/') {
    dir = xdg;
  } else {
    const char* home = std::getenv("HOME");
    if (home == nullptr || home[0] != '/') return std::nullopt;
    dir = std::string(home) + "/.config";
  }
  std::string path = dir + "/egg/allowed_signers";
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return path;
}

}  // namespace egg::crypto
