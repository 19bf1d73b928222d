// What egg does to a hatch's output folder once no sandboxed process is
// left: the files stay, but nothing in them keeps a privilege the cell
// gave it on the host's file system.
#ifndef EGG_HATCH_OUT_TREE_H_
#define EGG_HATCH_OUT_TREE_H_

#include <cstdint>
#include <string>

#include "egg/status.h"

namespace egg::hatch {

struct SanitizeStats {
  uint64_t entries = 0;  // files, folders and others seen
  uint64_t changed = 0;  // whose mode lost a bit
  uint64_t depth = 0;    // deepest folder level reached (top = 0)
};

// Walks the whole tree below `dir` at any depth (one folder open at a
// time, going back up through ".."; never follows a link) and clears
// the set-user-ID, set-group-ID and sticky bits and the group and other
// write bits of every entry; folders also get u+rx. Run as root, every
// entry (a link itself) also becomes the hatching user's (the sandbox's
// user was nobody on the host). Must run only when
// nothing else can change the tree (the sandbox is gone). Fails on an
// I/O error or past `max_entries` entries, leaving what it has not
// reached unchanged.
// `give_to_caller` false keeps the owners (a later sandbox of the same
// run, as nobody, still writes there; the last pass gives them back).
[[nodiscard]] Result<SanitizeStats> SanitizeOutputTree(
    const std::string& dir, uint64_t max_entries = 10'000'000,
    bool give_to_caller = true);

}  // namespace egg::hatch

#endif  // EGG_HATCH_OUT_TREE_H_
