// Pieces of the registry client shared between its files and its tests.
// Not part of the public API.
#ifndef EGG_REGISTRY_INTERNAL_H_
#define EGG_REGISTRY_INTERNAL_H_

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "egg/registry.h"

namespace egg::registry_internal {

// A parsed WWW-Authenticate challenge: scheme ("bearer", "basic", lower
// case) and its parameters (names lower case).
struct Challenge {
  std::string scheme;
  std::map<std::string, std::string> params;
};
std::optional<Challenge> ParseChallenge(std::string_view header);

// Percent-encodes everything but unreserved characters.
std::string UrlEncode(std::string_view text);

// scheme, authority ("host[:port]", lower-case host) and the rest of an
// absolute http(s) URL; nullopt when it is not one.
struct UrlParts {
  std::string scheme;
  std::string authority;
  std::string path_and_query;
};
std::optional<UrlParts> SplitUrl(std::string_view url);
// Resolves a Location header against the URL it came from.
std::optional<std::string> ResolveLocation(std::string_view base,
                                           std::string_view location);

// An OCI descriptor {"mediaType","digest","size"}.
nlohmann::json DescriptorJson(std::string_view type, const Digest& digest,
                              uint64_t size);
// Reads a descriptor of the expected media type from a hostile manifest;
// `what` names it in errors ("config", "layer 2").
Result<Descriptor> ParseDescriptor(const nlohmann::json& j,
                                   std::string_view type,
                                   const std::string& what);
// The pack layers of a manifest: every layer after the first, each an egg
// pack no larger than kPackMaxBytes; `what` prefixes errors ("manifest").
Result<std::vector<Descriptor>> ParsePackLayers(const nlohmann::json& layers,
                                                const std::string& what);

}  // namespace egg::registry_internal

#endif  // EGG_REGISTRY_INTERNAL_H_
