// The vm backend: a QEMU microvm guest (docs/ISOLATION.md).
#ifndef EGG_SANDBOX_VM_BACKEND_H_
#define EGG_SANDBOX_VM_BACKEND_H_

#include <memory>
#include <string>

#include "egg/sandbox.h"
#include "egg/status.h"

namespace egg::sandbox_internal {

// Boots a guest that runs the spec's command. kNotSupported when QEMU or
// the guest kernel (scripts/vm-kernel.sh) is missing.
[[nodiscard]] Result<std::unique_ptr<Sandbox>> StartVmSandbox(
    const SandboxSpec& spec);

// Whether /dev/kvm really runs a guest here (probed once per process,
// under a deadline); `detail` says why not.
struct KvmProbe {
  bool works = false;
  std::string detail;
};
KvmProbe ProbeKvm();

}  // namespace egg::sandbox_internal

#endif  // EGG_SANDBOX_VM_BACKEND_H_
