// Credentials from Docker/containers auth files and parsing of
// WWW-Authenticate challenges.
#include <cctype>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "common/fd.h"
#include "egg/registry.h"
#include "registry/internal.h"

namespace egg {
namespace registry_internal {

std::optional<Challenge> ParseChallenge(std::string_view header) {
  size_t i = 0;
  auto skip_space = [&] {
    while (i < header.size() && (header[i] == ' ' || header[i] == '\t')) ++i;
  };
  skip_space();
  Challenge c;
  while (i < header.size() && header[i] != ' ') {
    c.scheme += static_cast<char>(std::tolower(header[i++]));
  }
  if (c.scheme.empty()) return std::nullopt;
  while (i < header.size()) {
    skip_space();
    std::string name;
    while (i < header.size() && header[i] != '=' && header[i] != ',') {
      name += static_cast<char>(std::tolower(header[i++]));
    }
    if (i >= header.size() || header[i] != '=') return std::nullopt;
    ++i;
    std::string value;
    if (i < header.size() && header[i] == '"') {
      ++i;
      while (i < header.size() && header[i] != '"') {
        if (header[i] == '\\' && i + 1 < header.size()) ++i;
        value += header[i++];
      }
      if (i >= header.size()) return std::nullopt;  // unterminated
      ++i;
    } else {
      while (i < header.size() && header[i] != ',' && header[i] != ' ') {
        value += header[i++];
      }
    }
    c.params[name] = value;
    skip_space();
    if (i < header.size()) {
      if (header[i] != ',') return std::nullopt;
      ++i;
    }
  }
  return c;
}

std::string UrlEncode(std::string_view text) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::optional<UrlParts> SplitUrl(std::string_view url) {
  UrlParts parts;
  size_t colon = url.find("://");
  if (colon == std::string_view::npos) return std::nullopt;
  for (char c : url.substr(0, colon)) {
    parts.scheme += static_cast<char>(std::tolower(c));
  }
  if (parts.scheme != "http" && parts.scheme != "https") return std::nullopt;
  std::string_view rest = url.substr(colon + 3);
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  // userinfo in a URL from a server is refused outright.
  if (authority.empty() || authority.find('@') != std::string_view::npos) {
    return std::nullopt;
  }
  for (char c : authority) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' &&
        c != ':') {
      return std::nullopt;
    }
    parts.authority += static_cast<char>(std::tolower(c));
  }
  parts.path_and_query =
      end == std::string_view::npos ? "/" : std::string(rest.substr(end));
  if (parts.path_and_query[0] != '/') {
    parts.path_and_query = "/" + parts.path_and_query;
  }
  for (char c : parts.path_and_query) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return std::nullopt;
    }
  }
  return parts;
}

std::optional<std::string> ResolveLocation(std::string_view base,
                                           std::string_view location) {
  if (location.empty()) return std::nullopt;
  if (location.find("://") != std::string_view::npos) {
    auto parts = SplitUrl(location);
    if (!parts) return std::nullopt;
    return parts->scheme + "://" + parts->authority + parts->path_and_query;
  }
  auto b = SplitUrl(base);
  if (!b) return std::nullopt;
  if (location.starts_with("//")) {
    return ResolveLocation(base, b->scheme + ":" + std::string(location));
  }
  std::string path;
  if (location[0] == '/') {
    path = std::string(location);
  } else {
    // Relative to the base's folder.
    std::string_view bp = b->path_and_query;
    bp = bp.substr(0, bp.find('?'));
    path = std::string(bp.substr(0, bp.rfind('/') + 1)) + std::string(location);
  }
  return ResolveLocation(base, b->scheme + "://" + b->authority + path);
}

}  // namespace registry_internal

namespace {

std::string HomeDir() {
  const char* home = std::getenv("HOME");
  return home ? home : "";
}

// Auth files key hosts as "host[:port]", "https://host[:port]" or
// "https://host/v1/"; all name the same registry.
std::string NormalizeKey(std::string_view key) {
  if (key.starts_with("https://")) key.remove_prefix(8);
  if (key.starts_with("http://")) key.remove_prefix(7);
  key = key.substr(0, key.find('/'));
  std::string out(key);
  for (char& c : out) c = static_cast<char>(std::tolower(c));
  return out;
}

}  // namespace

Result<std::optional<Credentials>> CredentialsFromFile(
    const std::string& path, std::string_view authority) {
  auto text = ReadFileToString(path, 4 << 20);
  if (!text) {
    if (text.error().code() == Code::kNotFound) {
      return std::optional<Credentials>();
    }
    return Fail(text.error());
  }
  nlohmann::json doc = nlohmann::json::parse(*text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return Fail(Code::kInvalidArgument, path + ": not a JSON object");
  }
  auto auths = doc.find("auths");
  if (auths == doc.end()) return std::optional<Credentials>();
  if (!auths->is_object()) {
    return Fail(Code::kInvalidArgument, path + ": \"auths\" not an object");
  }
  std::string want = NormalizeKey(authority);
  for (auto it = auths->begin(); it != auths->end(); ++it) {
    if (NormalizeKey(it.key()) != want) continue;
    const auto& entry = it.value();
    auto auth = entry.is_object() ? entry.find("auth") : entry.end();
    if (auth == entry.end() || !auth->is_string()) {
      return Fail(Code::kNotSupported,
                  path + ": entry for \"" + want +
                      "\" has no \"auth\" (credential helpers are not "
                      "supported)");
    }
    auto decoded = Base64Decode(auth->get<std::string>());
    size_t colon = decoded ? decoded->find(':') : std::string::npos;
    if (colon == std::string::npos) {
      return Fail(Code::kInvalidArgument,
                  path + ": \"auth\" for \"" + want +
                      "\" is not base64 of user:password");
    }
    return std::optional<Credentials>(
        Credentials{decoded->substr(0, colon), decoded->substr(colon + 1)});
  }
  return std::optional<Credentials>();
}

Result<std::optional<Credentials>> FindCredentials(std::string_view authority) {
  std::vector<std::string> files;
  if (const char* f = std::getenv("REGISTRY_AUTH_FILE"); f && *f) {
    files.push_back(f);
  }
  if (const char* r = std::getenv("XDG_RUNTIME_DIR"); r && *r) {
    files.push_back(std::string(r) + "/containers/auth.json");
  }
  files.push_back(HomeDir() + "/.config/containers/auth.json");
  if (const char* d = std::getenv("DOCKER_CONFIG"); d && *d) {
    files.push_back(std::string(d) + "/config.json");
  } else {
    files.push_back(HomeDir() + "/.docker/config.json");
  }
  for (const auto& file : files) {
    auto found = CredentialsFromFile(file, authority);
    if (!found) return Fail(found.error());
    if (*found) return found;
  }
  return std::optional<Credentials>();
}

}  // namespace egg
