#include "egg/status.h"

namespace egg {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kCorruption: return "corruption";
    case Code::kVerificationFailed: return "verification failed";
    case Code::kPermissionDenied: return "permission denied";
    case Code::kNotSupported: return "not supported";
    case Code::kNotFound: return "not found";
    case Code::kIo: return "i/o error";
    case Code::kSandboxSetup: return "sandbox setup failed";
    case Code::kInternal: return "internal error";
  }
  return "unknown";
}

int ExitCodeFor(Code code) {
  switch (code) {
    case Code::kVerificationFailed: return kExitVerificationFailed;
    case Code::kSandboxSetup: return kExitSandbox;
    case Code::kPermissionDenied: return kExitRefused;
    case Code::kInternal: return kExitInternal;
    default: return kExitUsage;
  }
}

}  // namespace egg
