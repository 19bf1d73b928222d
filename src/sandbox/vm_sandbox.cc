// The vm backend. See vm_backend.h and docs/ISOLATION.md.
#include "sandbox/vm_backend.h"

namespace egg::sandbox_internal {

Result<std::unique_ptr<Sandbox>> StartVmSandbox(const SandboxSpec& spec) {
  // TODO(security): the micro-VM backend is not finished.
  return Fail(Code::kNotSupported, "the vm backend is not finished");
}

KvmProbe ProbeKvm() { return {false, "not probed"}; }

}  // namespace egg::sandbox_internal
