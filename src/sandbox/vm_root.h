// The micro-VM's view of a runtime root composed of host folders
// (SandboxSpecBuilder::RuntimeRootPart). A host's /usr is gigabytes, far
// too much to image per run, so the guest gets a selection of it: the
// command, the spec's RuntimeRootNeeds paths, every part that is small
// (below kWholePartBytes), python's standard library beside a python
// binary, and, transitively, the ELF interpreter and DT_NEEDED libraries
// of every ELF file selected or found in the read-only binds. Symlinks
// met on the way are kept as symlinks, resolved inside the sandbox's
// namespace.
#ifndef EGG_SANDBOX_VM_ROOT_H_
#define EGG_SANDBOX_VM_ROOT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "egg/sandbox.h"
#include "egg/status.h"

namespace egg::sandbox_internal {

// A part at most this big (apparent size) is carried whole.
inline constexpr uint64_t kWholePartBytes = 64ull << 20;

// One entry of the composed root, by its path in the sandbox.
struct RootEntry {
  enum Kind { kDir, kFile, kSymlink };
  Kind kind = kDir;
  std::string host;  // kFile: the host file to copy
  std::string link;  // kSymlink: the link's text
  uint32_t mode = 0755;
};
using RootSelection = std::map<std::string, RootEntry>;

// What the guest needs of the spec's composed root. kNotFound when the
// command is not in it; kIo on a host file that cannot be read.
[[nodiscard]] Result<RootSelection> SelectComposedRoot(const SandboxSpec& spec);

// The ELF interpreter and DT_NEEDED names of an ELF64 file's bytes; empty
// for anything else (a script, a static binary, a malformed file).
struct ElfDeps {
  std::string interpreter;
  std::vector<std::string> needed;
};
ElfDeps ReadElfDeps(const std::string& bytes);

// A key of the selection's content (paths, modes, link texts, and each
// host file's device, inode, size, mtime and ctime).
std::string SelectionKey(const RootSelection& selection);

// Writes the selection as a folder tree under `folder` (which must be
// empty), copying each file.
[[nodiscard]] Status StageSelection(const RootSelection& selection,
                                    const std::string& folder);

}  // namespace egg::sandbox_internal

#endif  // EGG_SANDBOX_VM_ROOT_H_
