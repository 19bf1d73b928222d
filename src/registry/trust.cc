// The trust config: which hosts may be reached over plain HTTP, where
// downloads may be redirected, who may serve and sign runtimes.
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cstdlib>
#include <string>

#include "common/fd.h"
#include "egg/registry.h"

namespace egg {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(c));
  return out;
}

// "host" matches the host on any port; "host:port" only that port.
bool AuthorityMatches(std::string_view entry, std::string_view authority) {
  std::string e = Lower(entry);
  std::string a = Lower(authority);
  if (e == a) return true;
  if (e.find(':') != std::string::npos) return false;
  return a.size() > e.size() && a.compare(0, e.size(), e) == 0 &&
         a[e.size()] == ':';
}

bool AnyMatches(const std::vector<std::string>& entries,
                std::string_view authority) {
  for (const auto& e : entries) {
    if (AuthorityMatches(e, authority)) return true;
  }
  return false;
}

Result<std::vector<std::string>> StringList(const YAML::Node& node,
                                            const char* key) {
  std::vector<std::string> out;
  if (!node) return out;
  if (!node.IsSequence()) {
    return Fail(Code::kInvalidArgument, std::string("trust config: \"") + key +
                                            "\" must be a list of strings");
  }
  for (const auto& item : node) {
    if (!item.IsScalar() || item.Scalar().empty()) {
      return Fail(Code::kInvalidArgument,
                  std::string("trust config: \"") + key +
                      "\" holds an empty or non-string entry");
    }
    out.push_back(item.Scalar());
  }
  return out;
}

std::string Resolve(const std::string& dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || dir.empty()) return path;
  return dir + "/" + path;
}

}  // namespace

bool TrustConfig::AllowsPlainHttp(std::string_view authority) const {
  return AnyMatches(plain_http, authority);
}

bool TrustConfig::AllowsRedirectTo(std::string_view authority) const {
  return AnyMatches(redirect_hosts, authority);
}

bool TrustConfig::AllowsRuntimeFrom(const Reference& ref) const {
  for (const auto& entry : runtime_registries) {
    size_t slash = entry.find('/');
    std::string_view auth = std::string_view(entry).substr(0, slash);
    if (!AuthorityMatches(auth, ref.Authority())) continue;
    if (slash == std::string::npos) return true;
    std::string prefix = entry.substr(slash + 1);
    if (ref.repository == prefix || ref.repository.starts_with(prefix + "/")) {
      return true;
    }
  }
  return false;
}

std::string DefaultTrustConfigPath() {
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  if (xdg && xdg[0] == '/') return std::string(xdg) + "/egg/trust.yaml";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "") + "/.config/egg/trust.yaml";
}

Result<TrustConfig> ParseTrustConfig(std::string_view yaml,
                                     const std::string& dir) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return Fail(Code::kInvalidArgument,
                std::string("trust config: not YAML: ") + e.what());
  }
  TrustConfig config;
  if (root.IsNull()) return config;
  if (!root.IsMap()) {
    return Fail(Code::kInvalidArgument, "trust config: expected a mapping");
  }
  for (const auto& kv : root) {
    std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
    if (key != "plain_http" && key != "redirect_hosts" &&
        key != "runtime_registries" && key != "runtime_signers" &&
        key != "runtime_versions") {
      return Fail(Code::kInvalidArgument,
                  "trust config: unknown key \"" + key + "\"");
    }
  }
  if (root["plain_http"]) {
    auto list = StringList(root["plain_http"], "plain_http");
    if (!list) return Fail(list.error());
    config.plain_http = *list;
  }
  auto redirects = StringList(root["redirect_hosts"], "redirect_hosts");
  if (!redirects) return Fail(redirects.error());
  config.redirect_hosts = *redirects;
  auto runtimes = StringList(root["runtime_registries"], "runtime_registries");
  if (!runtimes) return Fail(runtimes.error());
  config.runtime_registries = *runtimes;
  for (const char* key : {"runtime_signers", "runtime_versions"}) {
    const YAML::Node node = root[key];
    if (!node) continue;
    if (!node.IsScalar() || node.Scalar().empty()) {
      return Fail(Code::kInvalidArgument,
                  std::string("trust config: \"") + key + "\" must be a path");
    }
    std::string& field = std::string_view(key) == "runtime_signers"
                             ? config.runtime_signers
                             : config.runtime_versions;
    field = node.Scalar();
  }
  config.runtime_signers = Resolve(dir, config.runtime_signers);
  config.runtime_versions = Resolve(dir, config.runtime_versions);
  return config;
}

Result<TrustConfig> LoadTrustConfig(const std::string& path, bool must_exist) {
  std::string dir = path.substr(0, path.rfind('/'));
  auto text = ReadFileToString(path, 1 << 20);
  if (!text) {
    if (!must_exist && text.error().code() == Code::kNotFound) {
      return ParseTrustConfig("", dir);
    }
    return Fail(text.error().Wrap("trust config"));
  }
  auto config = ParseTrustConfig(*text, dir);
  if (!config) return Fail(config.error().Wrap(path));
  return config;
}

}  // namespace egg
