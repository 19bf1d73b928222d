// Helpers shared by the notebook library's files; not part of the API.
#ifndef EGG_NOTEBOOK_INTERNAL_H_
#define EGG_NOTEBOOK_INTERNAL_H_

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace egg::notebook_internal {

// Raw bytes as valid UTF-8; bad sequences become U+FFFD.
std::string ValidUtf8(std::string_view bytes);

// An error output from the last line of a Python traceback on stderr
// ("ZeroDivisionError: division by zero"), for runs without the display
// driver; nullopt when the line does not look like one.
std::optional<nlohmann::json> PythonErrorFromStderr(std::string_view err);

}  // namespace egg::notebook_internal

#endif  // EGG_NOTEBOOK_INTERNAL_H_
