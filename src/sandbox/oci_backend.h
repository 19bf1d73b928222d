// The stronger backends' internals (docs/ISOLATION.md): gvisor and oci run
// an OCI bundle with runsc, runc or crun (oci_*.cc); vm boots a QEMU
// microvm guest (vm_*.cc). StartSandbox() dispatches here.
#ifndef EGG_SANDBOX_OCI_BACKEND_H_
#define EGG_SANDBOX_OCI_BACKEND_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/fd.h"
#include "egg/sandbox.h"
#include "egg/status.h"

namespace egg::sandbox_internal {

// Folder of per-run state of the oci, gvisor and vm backends (root only).
// Each run owns "<kind>-<pid>-<n>-<random>"; a start removes the folders
// of runs whose egg process is gone (SIGKILLed).
constexpr char kIsolationStateDir[] = "/run/egg-isolation";

// Starts a gvisor or oci sandbox. kNotSupported when the runtime is
// missing or egg is not root; kSandboxSetup when the runtime fails.
[[nodiscard]] Result<std::unique_ptr<Sandbox>> StartOciSandbox(
    const SandboxSpec& spec);

// egg-init, the static first process (src/guest): $EGG_INIT, else
// "egg-init" beside the running program or up to two folders above it.
[[nodiscard]] Result<std::string> FindGuestInit();

// An absolute path to `name` in the usual system folders, or kNotSupported
// naming the Debian package that provides it.
[[nodiscard]] Result<std::string> FindHostProgram(const std::string& name,
                                                  const std::string& package);

// Removes state folders (and containers, mounts) of dead egg processes.
void SweepStaleIsolationState();

// Makes "<kIsolationStateDir>/<kind>-<pid>-<n>-XXXXXX" (0711).
[[nodiscard]] Result<std::string> MakeRunDir(const std::string& kind);

// Removes a run folder: detaches any mount in it, then deletes the tree.
void RemoveRunDir(const std::string& dir);

// What WriteBundle() needs beyond the spec.
struct BundlePlan {
  std::string dir;  // the run folder; the bundle is <dir>/bundle
  bool gvisor = false;
  std::string init_host;          // egg-init, bound at /.egg-init/egg-init
  std::string seccomp_host;       // seccomp file, bound at /.egg-init/seccomp
  std::string scratch_host;       // the run's tmpfs, bound at /tmp
  std::string cgroup_name;        // relative cgroupsPath
  std::vector<std::string> args;  // the first process: egg-init shim ...
};

// In the bundle the init and seccomp files appear here.
constexpr char kOciInitPath[] = "/.egg-init/egg-init";
constexpr char kOciSeccompPath[] = "/.egg-init/seccomp";
// runc/crun map the sandbox's uid/gid 1000 to nobody, as the namespaces
// backend does; their setup runs as container root, mapped to this id,
// which owns nothing on the host.
constexpr unsigned kOciSetupHostId = 2147418112;
constexpr unsigned kOciNobody = 65534;

// Makes <dir>/bundle: an empty rootfs with one mount point per bind
// (symlinks of a root folder recreated) and config.json.
[[nodiscard]] Status WriteBundle(const SandboxSpec& spec,
                                 const BundlePlan& plan);

// The control group of one container. egg makes a parent group "P" of the
// same name under its own group in every hierarchy, puts the limits on it,
// and gives the runtime the relative cgroupsPath "P/c". The runtime removes
// "c" when the container ends; P keeps the counters (CPU, memory peak,
// OOM kills, task-limit events) that egg reads afterwards.
class ContainerCgroup {
 public:
  ContainerCgroup() = default;
  ~ContainerCgroup() { Remove(); }
  ContainerCgroup(ContainerCgroup&& o) noexcept { *this = std::move(o); }
  ContainerCgroup& operator=(ContainerCgroup&& o) noexcept;
  ContainerCgroup(const ContainerCgroup&) = delete;
  ContainerCgroup& operator=(const ContainerCgroup&) = delete;

  // Makes "egg-oci-<pid>-<n>" wherever egg may; never fails (controllers
  // that cannot be had are absent, as has_*() says). `rooted`: at the root
  // of each hierarchy, where crun resolves a relative cgroupsPath (runc
  // and runsc resolve it under their own group).
  static ContainerCgroup Create(bool rooted);

  const std::string& name() const { return name_; }
  std::string runtime_path() const { return name_ + "/c"; }
  bool has_memory() const { return !memory_.empty(); }
  bool has_pids() const { return !pids_.empty(); }
  bool has_cpu() const { return !cpu_.empty(); }
  // Every folder made, children first order is handled by Remove().
  const std::vector<std::string>& dirs() const { return dirs_; }

  uint64_t CpuNs() const;
  uint64_t MemoryPeak() const;
  uint64_t OomKills() const;
  // Usage reached the memory limit at least once (v1 memory.failcnt).
  bool MemoryLimitHit() const;
  bool PidsMaxReached() const;
  // Forks refused by the process limit so far, in this group and the
  // runtime's child (0 where the host cannot tell).
  uint64_t PidsMaxEvents() const;
  [[nodiscard]] Status SetMemory(uint64_t bytes) const;
  [[nodiscard]] Status SetPids(uint64_t count) const;

  // Kills what is left, removes "c" (if the runtime did not) and P.
  void Remove();

 private:
  bool v2_ = false;
  std::string name_;
  std::string memory_, pids_, cpu_;
  std::vector<std::string> dirs_;
};

// Removes egg-oci-<pid>-* groups whose egg process is gone.
void RemoveStaleContainerCgroups();

// A line of the Sentry's strace (runsc --strace) that reports a fork
// (clone, clone3, fork, vfork) refused with EAGAIN: under gVisor, the
// guest's RLIMIT_NPROC was met. The command name in the line is the
// cell's to choose, so a cell can at most make its own cell look as if it
// met the limit.
bool IsRefusedForkLine(std::string_view line);

// Counts the forks the Sentry refused, from its log file at `path`,
// reading on from where it last stopped (a missing file counts nothing
// yet). The bytes read are punched out of the file, so the tmpfs it lives
// on holds only what is unread; lines the Sentry dropped because that
// tmpfs was full are not counted.
class SentryLog {
 public:
  explicit SentryLog(std::string path) : path_(std::move(path)) {}

  // Refused forks seen so far, after reading what is new.
  uint64_t Refused();

 private:
  void Read();
  void Scan(std::string_view bytes);

  std::string path_;
  UniqueFd fd_;
  uint64_t offset_ = 0;
  std::string partial_;
  uint64_t refused_ = 0;
};

}  // namespace egg::sandbox_internal

#endif  // EGG_SANDBOX_OCI_BACKEND_H_
