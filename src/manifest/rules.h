// Rules shared by the egg.yaml parser (manifest.cc) and the stored
// manifest check (stored.cc). Internal to egg_manifest.
#ifndef EGG_MANIFEST_RULES_H_
#define EGG_MANIFEST_RULES_H_

#include <string>
#include <string_view>

namespace egg::manifest_rules {

// Egg name: 1-64 of [A-Za-z0-9._-], not starting with '.' or '-'.
bool IsSafeName(std::string_view s);
// "/" or "/a/b" with no '.', '..', '//' or trailing '/', each component
// a valid name.
bool IsCanonicalAbsolute(std::string_view p);
// "/", /proc, /dev, /sys, /data and anything under them.
bool IsReservedSandboxPath(std::string_view p);
// 1-64 of [A-Za-z0-9_-].
bool IsCellId(std::string_view s);
// 1-32 of [a-z0-9+._-], starting with a letter or digit.
bool IsLanguage(std::string_view s);
// python, python3, py, bash, sh, r: languages with a live session.
bool IsBuiltinLanguage(std::string_view s);
// '.' and 1-16 of [A-Za-z0-9].
bool IsLanguageSuffix(std::string_view s);
// The minimum of a limit, as the manifest would write it ("16MiB"); `key`
// is the YAML key or the stored JSON key.
std::string MinimumLimitText(std::string_view key);

}  // namespace egg::manifest_rules

#endif  // EGG_MANIFEST_RULES_H_
