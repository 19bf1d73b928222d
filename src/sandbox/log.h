// The sandbox's operational log: one line per event on stderr.
#ifndef EGG_SANDBOX_LOG_H_
#define EGG_SANDBOX_LOG_H_

#include <string>

namespace egg::sandbox_internal {

// "egg: warning: sandbox: <message>" (control characters escaped).
void LogWarning(const std::string& message);
// "egg: sandbox: <message>": lifecycle lines (e.g. the backend auto chose).
void LogInfo(const std::string& message);
// Debug lines appear only when EGG_SANDBOX_DEBUG is set in the environment.
void LogDebug(const std::string& message);

}  // namespace egg::sandbox_internal

#endif  // EGG_SANDBOX_LOG_H_
