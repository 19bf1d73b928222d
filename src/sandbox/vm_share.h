// The micro-VM's granted host paths and disk image cache (see
// docs/ISOLATION.md, "The micro-VM").
#ifndef EGG_SANDBOX_VM_SHARE_H_
#define EGG_SANDBOX_VM_SHARE_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "common/fd.h"
#include "egg/sandbox.h"
#include "egg/status.h"

namespace egg::sandbox_internal {

// A running virtiofsd serving granted host paths to one guest.
struct VirtiofsServer {
  pid_t pid = -1;
  std::string socket;  // its vhost-user socket, for QEMU
};

// Starts `virtiofsd` (as `program`) on "<dir>/share", whose entries "0",
// "1", ... are the host paths of `binds`, in their order. The binds are
// made in a mount namespace private to virtiofsd (so the run folder never
// holds them on the host), one level deep (mounts below a granted path
// are not carried), and read-only ones are read-only mounts: the host
// kernel refuses their writes whatever the guest sends. The server dies
// with the calling thread. kSandboxSetup with virtiofsd's reason when it
// does not come up; its log is "<dir>/virtiofsd.log".
[[nodiscard]] Result<VirtiofsServer> StartVirtiofsd(
    const std::string& program, const std::vector<SandboxBind>& binds,
    const std::string& dir);

// Kills and reaps a server (no-op for pid -1).
void StopVirtiofsd(VirtiofsServer& server);

// --- The disk image cache ---
//
// One folder per image in the cache folder, published by a rename (the
// first of two concurrent makers wins; the other uses its image):
//
//   <cache>/<name>/image.erofs   0444
//   <cache>/<name>/SUM           "egg-vm-image 1\nsha256 <hex>\n
//                                 size <n>\nid <dev>:<ino>:<ctime>\n"
//
// <name> is "root-e1-<runtime tree digest>", "data-e1-<data tree
// digest>", or, for content the caller could not name by digest,
// "folder-..." / "parts-..." keyed by file identities.

// An image in use: its path, and a shared lock on its folder that keeps
// `egg store gc` from removing it.
struct CachedImage {
  std::string path;
  UniqueFd lock;
};

// The image cached as `name` in `cache_dir`, after checking it: the
// folder and image belong to this user and are not writable by others,
// the image has the recorded size and the erofs magic, and it is the very
// file that was hashed (device, inode, ctime) or, failing that, hashes to
// the recorded SHA-256. A missing or damaged image is made again with
// `make(path)` (which writes an erofs image at `path`).
[[nodiscard]] Result<CachedImage> CachedErofs(
    const std::string& cache_dir, const std::string& name,
    const std::function<Status(const std::string&)>& make);

// The folder of cached images: $EGG_VM_IMAGE_CACHE, or
// $EGG_VM_CACHE/roots, or /var/cache/egg-vm/roots.
std::string VmImageCacheDir();

}  // namespace egg::sandbox_internal

#endif  // EGG_SANDBOX_VM_SHARE_H_
