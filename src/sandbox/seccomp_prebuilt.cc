// The seccomp program compiled when egg was built (see seccomp_gen.cc).
#include "sandbox/seccomp_filter.h"

#include <iterator>

#ifdef EGG_SECCOMP_PREBUILT
#include "seccomp_program.inc"
#endif

namespace egg::sandbox_internal {

const SeccompProgram* PrebuiltSeccompProgram() {
#ifdef EGG_SECCOMP_PREBUILT
  static const SeccompProgram* const program = new SeccompProgram{
      {std::begin(prebuilt::kCode), std::end(prebuilt::kCode)},
      {std::begin(prebuilt::kIoctlGuard), std::end(prebuilt::kIoctlGuard)}};
  return program;
#else
  return nullptr;
#endif
}

}  // namespace egg::sandbox_internal
