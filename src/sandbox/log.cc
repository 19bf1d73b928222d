#include "sandbox/log.h"

#include <unistd.h>

#include <cstdlib>

#include "common/text.h"

namespace egg::sandbox_internal {
namespace {

void Emit(const char* level, const std::string& message) {
  std::string line = std::string("egg: ") + level +
                     "sandbox: " + EscapeForTerminal(message) + "\n";
  // One write so that concurrent lines do not interleave.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace

void LogWarning(const std::string& message) { Emit("warning: ", message); }

void LogInfo(const std::string& message) { Emit("", message); }

void LogDebug(const std::string& message) {
  static const bool enabled = std::getenv("EGG_SANDBOX_DEBUG") != nullptr;
  if (enabled) Emit("debug: ", message);
}

}  // namespace egg::sandbox_internal
