// Name and path rules shared by the egg.yaml parser and the stored
// manifest check, so that what build accepts and what hatch accepts are
// the same rules.
#include "manifest/rules.h"

#include <algorithm>
#include <string>

#include "common/names.h"

namespace egg::manifest_rules {

bool IsSafeName(std::string_view s) {
  if (s.empty() || s.size() > 64 || s[0] == '.' || s[0] == '-') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

bool IsCanonicalAbsolute(std::string_view p) {
  if (p.empty() || p[0] != '/') return false;
  if (p == "/") return true;
  auto rel = NormalizeRelativePath(p.substr(1));
  return rel && "/" + *rel == p;
}

// Sandbox paths egg itself mounts (docs/SANDBOX.md layout); a host path
// may not cover them.
bool IsReservedSandboxPath(std::string_view p) {
  for (std::string_view r : {"/proc", "/dev", "/sys", "/data", "/tmp",
                             "/scratch", "/out", "/.egg"}) {
    if (p == r || (p.starts_with(r) && p[r.size()] == '/')) return true;
  }
  return p == "/";
}

bool IsCellId(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

bool IsLanguage(std::string_view s) {
  if (s.empty() || s.size() > 32) return false;
  if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9'))) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '.' || c == '_' || c == '-';
  });
}

// Languages with a live session in hatch; a manifest cannot redefine them.
bool IsBuiltinLanguage(std::string_view s) {
  for (std::string_view b : {"python", "python3", "py", "bash", "sh", "r"}) {
    if (s == b) return true;
  }
  return false;
}

bool IsLanguageSuffix(std::string_view s) {
  return s.size() >= 2 && s.size() <= 17 && s[0] == '.' &&
         std::all_of(s.begin() + 1, s.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9');
         });
}

std::string MinimumLimitText(std::string_view key) {
  if (key == "wall_time" || key == "cpu_time" || key == "wall_ms" ||
      key == "cpu_ms") {
    return "100ms";
  }
  if (key == "memory" || key == "memory_bytes") return "16MiB";
  if (key == "processes") return "4";
  if (key == "scratch" || key == "scratch_bytes") return "1MiB";
  return "4KiB";
}

}  // namespace egg::manifest_rules
