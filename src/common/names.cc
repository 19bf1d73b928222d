#include "common/names.h"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>

#include "common/text.h"

namespace egg {

Status CheckName(std::string_view name) {
  if (name.empty()) return Fail(Code::kInvalidArgument, "empty name");
  if (name == "." || name == "..") {
    return Fail(Code::kInvalidArgument,
                "name '" + std::string(name) + "' is not allowed");
  }
  if (name.size() > kMaxNameComponentBytes) {
    return Fail(Code::kInvalidArgument,
                "name longer than " + std::to_string(kMaxNameComponentBytes) +
                    " bytes");
  }
  if (name.find('/') != std::string_view::npos) {
    return Fail(Code::kInvalidArgument, "name contains '/'");
  }
  // IsPrintableUtf8 also rejects NUL, invalid UTF-8 and bidi controls.
  if (!IsPrintableUtf8(name)) {
    return Fail(Code::kInvalidArgument,
                "name '" + EscapeForTerminal(name) +
                    "' has a control character or invalid UTF-8");
  }
  return {};
}

Result<std::string> NormalizeRelativePath(std::string_view path) {
  if (path.empty()) return Fail(Code::kInvalidArgument, "empty path");
  if (path.size() > kMaxRelativePathBytes) {
    return Fail(
        Code::kInvalidArgument,
        "path longer than " + std::to_string(kMaxRelativePathBytes) + " bytes");
  }
  if (path.front() == '/') {
    return Fail(Code::kInvalidArgument,
                "path '" + EscapeForTerminal(path) + "' is absolute");
  }
  std::string out;
  size_t i = 0;
  while (i < path.size()) {
    size_t end = path.find('/', i);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(i, end - i);
    i = end + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      return Fail(Code::kInvalidArgument,
                  "path '" + EscapeForTerminal(path) + "' contains '..'");
    }
    if (Status s = CheckName(part); !s) {
      return Fail(s.error().Wrap("path '" + EscapeForTerminal(path) + "'"));
    }
    if (!out.empty()) out += '/';
    out += part;
  }
  if (out.empty()) {
    return Fail(Code::kInvalidArgument,
                "path '" + EscapeForTerminal(path) + "' names no file");
  }
  return out;
}

Result<std::string> FoldName(std::string_view name) {
  utf8proc_uint8_t* folded = nullptr;
  utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(name.data()),
                   static_cast<utf8proc_ssize_t>(name.size()), &folded,
                   static_cast<utf8proc_option_t>(
                       UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD));
  if (n < 0) {
    return Fail(Code::kInvalidArgument, "name '" + EscapeForTerminal(name) +
                                            "': " + utf8proc_errmsg(n));
  }
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owner(folded,
                                                                &std::free);
  return std::string(reinterpret_cast<const char*>(folded),
                     static_cast<size_t>(n));
}

bool IsTextUtf8(std::string_view text) {
  std::string copy(text);
  for (char& c : copy) {
    if (c == '\n' || c == '\t' || c == '\r') c = ' ';
  }
  return IsPrintableUtf8(copy);
}

}  // namespace egg
