// The sandbox's seccomp-bpf program.
//
// Policy: a default-deny allowlist for x86_64 only. A call from a foreign
// architecture (i386, x32) kills the process. A call that is not on the
// allowlist fails with ENOSYS, as if the kernel were older, so that libc
// falls back (clone3 -> clone). Calls denied on purpose (ptrace, mount and
// the new mount API, namespaces, keys, bpf, perf, userfaultfd, io_uring,
// modules, kexec, TIOCSTI/TIOCLINUX, personality changes ...) fail with
// EPERM.
#ifndef EGG_SANDBOX_SECCOMP_FILTER_H_
#define EGG_SANDBOX_SECCOMP_FILTER_H_

#include <linux/filter.h>

#include <vector>

#include "egg/status.h"

namespace egg::sandbox_internal {

struct SeccompProgram {
  std::vector<sock_filter> code;         // the allowlist (libseccomp)
  std::vector<sock_filter> ioctl_guard;  // stacked after it
};

// Compiles the filter (kSandboxSetup on failure). The child loads it with
// prctl(PR_SET_SECCOMP), code then ioctl_guard, without allocating.
[[nodiscard]] Result<SeccompProgram> BuildSeccompProgram();

// The program BuildSeccompProgram() made when egg was built: the build
// runs it once (egg_seccomp_gen, src/sandbox/CMakeLists.txt) and compiles
// its output in, so a sandbox start only copies it. nullptr in a build
// that could not run the generator (cross-compiling): callers compile.
const SeccompProgram* PrebuiltSeccompProgram();

}  // namespace egg::sandbox_internal

#endif  // EGG_SANDBOX_SECCOMP_FILTER_H_
