// A deterministic cpio "newc" archive, the micro-VM's initramfs.
#ifndef EGG_SANDBOX_VM_INITRAMFS_H_
#define EGG_SANDBOX_VM_INITRAMFS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace egg::sandbox_internal {

struct CpioEntry {
  std::string name;  // relative, no leading '/', e.g. "egg/plan"
  uint32_t mode = 0;  // file type and permission bits (S_IFREG | 0755)
  std::string data;   // file contents or symlink target
  uint32_t rdev_major = 0, rdev_minor = 0;  // character devices
};

// Entries sorted by name, inode numbers from 1, uid/gid 0, mtime 0, one
// link each, then the trailer: the same entries give the same bytes.
std::string WriteCpioNewc(std::vector<CpioEntry> entries);

}  // namespace egg::sandbox_internal

#endif  // EGG_SANDBOX_VM_INITRAMFS_H_
