// Parsing of "host[:port]/repo:tag@sha256:..." references.
#include <cctype>
#include <string>

#include "egg/registry.h"

namespace egg {
namespace {

constexpr size_t kMaxReference = 1024;
constexpr size_t kMaxTag = 128;

bool IsLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// Host names and IPv4 literals: letters, digits, '-' and '.', no empty
// label. IPv6 literals are not supported.
bool ValidHost(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  if (host.front() == '.' || host.back() == '.') return false;
  char prev = 0;
  for (char c : host) {
    bool ok =
        std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
    if (!ok || (c == '.' && prev == '.')) return false;
    prev = c;
  }
  return true;
}

// One path component: [a-z0-9]+ joined by '.', '_', '__' or '-'+.
bool ValidComponent(std::string_view c) {
  if (c.empty() || !IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) {
    return false;
  }
  for (size_t i = 0; i < c.size(); ++i) {
    char ch = c[i];
    if (IsLowerAlnum(ch)) continue;
    if (ch == '-') continue;
    if (ch == '.' && IsLowerAlnum(c[i + 1])) continue;
    if (ch == '_') {
      if (IsLowerAlnum(c[i + 1])) continue;
      if (c[i + 1] == '_' && i + 2 < c.size() && IsLowerAlnum(c[i + 2])) {
        ++i;
        continue;
      }
    }
    return false;
  }
  return true;
}

bool ValidRepository(std::string_view repo) {
  if (repo.empty() || repo.size() > 255) return false;
  size_t start = 0;
  while (true) {
    size_t slash = repo.find('/', start);
    std::string_view part = repo.substr(
        start, slash == std::string_view::npos ? repo.npos : slash - start);
    if (!ValidComponent(part)) return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

bool ValidTag(std::string_view tag) {
  if (tag.empty() || tag.size() > kMaxTag) return false;
  for (size_t i = 0; i < tag.size(); ++i) {
    char c = tag[i];
    bool word = std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    if (!word && (i == 0 || (c != '.' && c != '-'))) return false;
  }
  return true;
}

Result<Reference> Invalid(std::string_view text, const std::string& why) {
  return Fail(Code::kInvalidArgument,
              "reference \"" + std::string(text) + "\": " + why);
}

}  // namespace

std::string Reference::Authority() const {
  return port ? host + ":" + std::to_string(*port) : host;
}

std::string Reference::Target() const {
  return digest ? DigestRef(*digest) : tag;
}

std::string Reference::ToString() const {
  std::string out = Authority() + "/" + repository;
  if (digest) return out + "@" + DigestRef(*digest);
  return out + ":" + tag;
}

Result<Reference> ParseReference(std::string_view text) {
  if (text.size() > kMaxReference) {
    return Invalid(text.substr(0, 64), "longer than 1024 characters");
  }
  std::string_view rest = text;
  if (rest.starts_with("oci://")) rest.remove_prefix(6);

  Reference ref;
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    return Invalid(text, "expected host[:port]/repository:tag");
  }
  std::string_view authority = rest.substr(0, slash);
  rest.remove_prefix(slash + 1);

  // host[:port]
  size_t colon = authority.find(':');
  std::string_view host = authority.substr(0, colon);
  if (!ValidHost(host)) return Invalid(text, "malformed host");
  ref.host = std::string(host);
  for (char& c : ref.host) c = static_cast<char>(std::tolower(c));
  if (colon != std::string_view::npos) {
    std::string_view port = authority.substr(colon + 1);
    if (port.empty() || port.size() > 5) return Invalid(text, "bad port");
    uint32_t value = 0;
    for (char c : port) {
      if (c < '0' || c > '9') return Invalid(text, "bad port");
      value = value * 10 + static_cast<uint32_t>(c - '0');
    }
    if (value == 0 || value > 65535) return Invalid(text, "bad port");
    ref.port = static_cast<uint16_t>(value);
  }

  // @sha256:<hex>
  size_t at = rest.find('@');
  if (at != std::string_view::npos) {
    std::string_view digest = rest.substr(at + 1);
    if (!digest.starts_with("sha256:")) {
      return Invalid(text, "only sha256 digests are supported");
    }
    auto parsed = ParseDigest(digest);
    if (!parsed) return Invalid(text, "malformed digest");
    ref.digest = *parsed;
    rest = rest.substr(0, at);
  }

  // :tag (after the last '/')
  size_t last_slash = rest.rfind('/');
  size_t tag_colon = rest.rfind(':');
  if (tag_colon != std::string_view::npos &&
      (last_slash == std::string_view::npos || tag_colon > last_slash)) {
    std::string_view tag = rest.substr(tag_colon + 1);
    if (!ValidTag(tag)) return Invalid(text, "malformed tag");
    ref.tag = std::string(tag);
    rest = rest.substr(0, tag_colon);
  }
  if (!ValidRepository(rest)) {
    return Invalid(text, "malformed repository (lower-case a-z0-9._-/)");
  }
  ref.repository = std::string(rest);
  if (ref.tag.empty() && !ref.digest) {
    return Invalid(text, "needs a :tag or an @sha256: digest");
  }
  return ref;
}

Result<Reference> ParsePinnedReference(std::string_view text) {
  auto ref = ParseReference(text);
  if (!ref) return ref;
  if (!ref->digest) {
    return Invalid(text, "a tag alone is refused, pin it with @sha256:");
  }
  return ref;
}

}  // namespace egg
