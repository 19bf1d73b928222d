// Rules for names and relative paths that egg stores or maps: file names in
// data and runtime trees, in-egg paths, paths in a manifest. One place so
// that the builder, the format reader and the sandbox agree on what a name
// may be and when two names are the same.
#ifndef EGG_COMMON_NAMES_H_
#define EGG_COMMON_NAMES_H_

#include <string>
#include <string_view>

#include "egg/status.h"

namespace egg {

// Longest single component and longest relative path, in bytes (Linux's
// NAME_MAX and PATH_MAX).
inline constexpr size_t kMaxNameComponentBytes = 255;
inline constexpr size_t kMaxRelativePathBytes = 4096;

// Checks one path component: not empty, not "." or "..", no '/', no NUL,
// valid UTF-8, no C0/C1 control character (nor bidi or line separators),
// at most kMaxNameComponentBytes. kInvalidArgument names the first problem.
[[nodiscard]] Status CheckName(std::string_view name);

// Turns a relative path into its one spelling: "a//b", "./a/" and "a/./b"
// become "a/b" and "a". Rejects (kInvalidArgument) absolute paths, any ".."
// component, an empty result, and any component CheckName rejects.
[[nodiscard]] Result<std::string> NormalizeRelativePath(std::string_view path);

// The key under which two names count as the same on a case-insensitive or
// normalising filesystem: Unicode NFC, then case folding (utf8proc). Input
// must be valid UTF-8 (kInvalidArgument otherwise).
[[nodiscard]] Result<std::string> FoldName(std::string_view name);

// True if `text` is valid UTF-8 with no control character other than
// newline and tab (for descriptions and cell sources).
bool IsTextUtf8(std::string_view text);

}  // namespace egg

#endif  // EGG_COMMON_NAMES_H_
