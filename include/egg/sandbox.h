// Running an untrusted program tree in isolation.
//
// A sandbox is described by WHAT it contains, not by how a backend makes
// it, so that every backend (namespaces, none, gvisor, oci, vm) enforces
// the same SandboxSpec:
//
//   /            the runtime root folder, read-only (or a composition of
//                read-only host folders, for tests)
//   /data, /.egg read-only binds declared with ReadOnly()
//   /out         the one writable output folder
//   /tmp         a size-limited writable scratch (tmpfs); /scratch and
//                /dev/shm name the same space, and so share its size
//   /proc        a proc of the sandbox's own processes only
//   /dev         null, zero, full, random, urandom (and granted devices)
//
// and by the process it starts: argv (argv[0] absolute), a fixed minimal
// environment plus declared variables, cwd, stdio and extra fds. Anything
// that weakens isolation has its own builder call whose name starts with
// "Weaken" (grep for it) and logs a warning on stderr.
//
// Usage:
//   SandboxSpecBuilder b;
//   b.RuntimeRoot(root).ReadOnly(data, "/data").Output(out)
//    .Command({"/.egg/agent", "--fd=3"}).PassFd(sock.get(), 3)
//    .SetLimits(limits);
//   Result<SandboxSpec> spec = std::move(b).Build();
//   Result<std::unique_ptr<Sandbox>> box = StartSandbox(*spec);
//   Result<Outcome> outcome = (*box)->Wait();
//
// Threads: Start() must run on a thread that lives as long as the Sandbox
// (the sandbox's first process is killed when that thread exits). A
// Sandbox object is not thread-safe; Kill() may be called from any thread.
#ifndef EGG_SANDBOX_H_
#define EGG_SANDBOX_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "egg/hash.h"
#include "egg/policy.h"
#include "egg/status.h"

namespace egg {

enum class SandboxBackend {
  kNamespaces,  // Linux namespaces + seccomp + Landlock + cgroups (default)
  kNone,        // no isolation at all: limits only (WeakenToNoSandbox)
  // Stronger isolation (docs/ISOLATION.md); each needs root on the host.
  kGvisor,  // an OCI bundle run by gVisor's runsc (a user-space kernel)
  kOci,     // the same bundle run by runc or crun (SandboxSpec::oci_runtime)
  kVm,      // a QEMU microvm guest with its own kernel
};

// "namespaces", "none", "gvisor", "oci" or "vm"; anything else is
// kInvalidArgument. "auto" is not a backend: see ChooseSandboxBackend().
[[nodiscard]] Result<SandboxBackend> ParseSandboxBackend(std::string_view name);
const char* SandboxBackendName(SandboxBackend backend);

// One read-only or writable bind of a host path into the sandbox.
struct SandboxBind {
  std::string host;     // absolute canonical host path (file or folder)
  std::string sandbox;  // absolute normalised path inside the sandbox
  bool writable = false;
  bool host_path = false;  // a person's grant (WeakenHostPath), served live
  // The digest of the folder's tree when the caller knows it (the egg's
  // data layer): the vm backend caches its disk image by it.
  std::optional<Digest> content;
};

// A host fd made available as `sandbox_fd` in the first process. The host
// fd is borrowed: it must stay open until StartSandbox() returns.
struct SandboxFd {
  int host_fd = -1;
  int sandbox_fd = -1;
};

// The frozen description of a sandbox. Only SandboxSpecBuilder makes one;
// every field was validated there.
class SandboxSpec {
 public:
  SandboxBackend backend() const { return backend_; }
  // Runtime root: either a folder (root_folder) whose entries appear at /,
  // or a composition of binds (root_parts) on an empty read-only /.
  const std::string& root_folder() const { return root_folder_; }
  // The digest of root_folder()'s tree, when the caller knows it (the
  // runtime's tree digest): the vm backend caches its root image by it.
  const std::optional<Digest>& root_digest() const { return root_digest_; }
  const std::vector<SandboxBind>& root_parts() const { return root_parts_; }
  // Paths of a composed root a micro-VM guest must carry (see
  // SandboxSpecBuilder::RuntimeRootNeeds); other backends ignore them.
  const std::vector<std::string>& root_needs() const { return root_needs_; }
  const std::vector<SandboxBind>& binds() const { return binds_; }
  const std::string& output() const { return output_; }  // "" = no /out
  const std::vector<std::string>& devices() const { return devices_; }
  bool network() const { return network_; }
  const Limits& limits() const { return limits_; }  // every field set
  const std::vector<std::string>& argv() const { return argv_; }
  const std::vector<std::string>& env() const { return env_; }  // K=V
  const std::string& cwd() const { return cwd_; }
  int stdin_fd() const { return stdin_fd_; }    // -1: /dev/null
  int stdout_fd() const { return stdout_fd_; }  // -1: /dev/null
  int stderr_fd() const { return stderr_fd_; }  // -1: /dev/null
  const std::vector<SandboxFd>& fds() const { return fds_; }
  // kOci only: "runc" (default) or "crun".
  const std::string& oci_runtime() const { return oci_runtime_; }

 private:
  friend class SandboxSpecBuilder;
  SandboxSpec() = default;

  SandboxBackend backend_ = SandboxBackend::kNamespaces;
  std::string root_folder_;
  std::optional<Digest> root_digest_;
  std::vector<SandboxBind> root_parts_;
  std::vector<std::string> root_needs_;
  std::vector<SandboxBind> binds_;
  std::string output_;
  std::vector<std::string> devices_;
  bool network_ = false;
  Limits limits_;
  std::vector<std::string> argv_;
  std::vector<std::string> env_;
  std::string cwd_ = "/";
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  std::vector<SandboxFd> fds_;
  std::string oci_runtime_ = "runc";
};

// Builds a SandboxSpec. Each call validates its argument; the first error
// is kept, later calls are ignored, and Build() returns it. Paths must be
// absolute and canonical (host paths must exist and equal their realpath).
class SandboxSpecBuilder {
 public:
  SandboxSpecBuilder();

  // Host folder whose entries appear read-only at / (directories and files
  // are bound, symlinks recreated). Exclusive with RuntimeRootPart().
  SandboxSpecBuilder& RuntimeRoot(const std::string& host_folder);
  // As above, naming the folder's content by its tree digest (the store
  // materialised it from that digest): the vm backend keys its cached
  // root image by it. The caller vouches that the folder holds that tree.
  SandboxSpecBuilder& RuntimeRoot(const std::string& host_folder,
                                  const Digest& content);
  // Composes / from read-only binds, e.g. ("/usr", "/usr"). For tests and
  // for runtimes split across folders. Exclusive with RuntimeRoot().
  SandboxSpecBuilder& RuntimeRootPart(const std::string& host,
                                      const std::string& sandbox);
  // With RuntimeRootPart(): a sandbox path (file or folder) the vm backend
  // must carry into its guest. A composed root of host folders is too big
  // to image whole, so the guest gets only the command, these paths, the
  // parts that are small, and the ELF libraries all of them need
  // (docs/ISOLATION.md). The other backends bind every part whole and
  // ignore this.
  SandboxSpecBuilder& RuntimeRootNeeds(const std::string& sandbox_path);
  // A read-only bind, e.g. the egg's data at /data, agent at /.egg.
  SandboxSpecBuilder& ReadOnly(const std::string& host,
                               const std::string& sandbox);
  // As above, naming the folder's content by its tree digest (the egg's
  // data layer): the vm backend keys its cached disk image by it.
  SandboxSpecBuilder& ReadOnly(const std::string& host,
                               const std::string& sandbox,
                               const Digest& content);
  // The writable output folder, seen as /out. When the caller runs as
  // root, Start() gives the folder to the sandbox's unprivileged identity
  // (chown), so pass a fresh folder.
  SandboxSpecBuilder& Output(const std::string& host_folder);
  // A writable folder egg itself shares with the sandbox (e.g. the
  // Jupyter kernel's sockets): a fresh folder egg made, whose entries egg
  // treats as hostile. Not a weakening: nothing of the person's is in it.
  SandboxSpecBuilder& Exchange(const std::string& host_folder,
                               const std::string& sandbox);
  // Limits for the whole sandbox; unset fields take DefaultEggLimits().
  // Each value must be > 0 and within MaximumLimits().
  SandboxSpecBuilder& SetLimits(const Limits& limits);
  // argv[0] must be an absolute path inside the sandbox (no PATH search).
  SandboxSpecBuilder& Command(std::vector<std::string> argv);
  // Adds NAME=value to the fixed environment (PATH, HOME=/scratch,
  // TMPDIR=/tmp, LANG=C.UTF-8). NAME is [A-Za-z_][A-Za-z0-9_]*.
  SandboxSpecBuilder& Env(const std::string& name, const std::string& value);
  SandboxSpecBuilder& Cwd(const std::string& sandbox_path);
  // Borrowed fds for the first process's stdio (default /dev/null).
  SandboxSpecBuilder& Stdin(int host_fd);
  SandboxSpecBuilder& Stdout(int host_fd);
  SandboxSpecBuilder& Stderr(int host_fd);
  // An extra borrowed fd, seen as sandbox_fd (>= 3, < 1024, unique).
  SandboxSpecBuilder& PassFd(int host_fd, int sandbox_fd);

  // --- Weakenings: each logs a warning. ---
  // Keeps the host's network (no private network namespace).
  SandboxSpecBuilder& WeakenNetwork();
  // Binds a host path (read-only unless path.writable).
  SandboxSpecBuilder& WeakenHostPath(const HostPath& path);
  // Binds a host device node (e.g. /dev/dri/renderD128) at the same path.
  SandboxSpecBuilder& WeakenDevice(const std::string& host_device);
  // Applies every weakening `permissions` grants (none if empty).
  SandboxSpecBuilder& WeakenPermissions(const Permissions& permissions);
  // Runs on the host with no isolation at all: the `none` backend.
  SandboxSpecBuilder& WeakenToNoSandbox();

  // Chooses a backend by name; "none" is only accepted through
  // WeakenToNoSandbox(). "auto" runs ChooseSandboxBackend() and logs which
  // backend it picked and why. "oci:runc" / "oci:crun" also choose the
  // OCI runtime.
  SandboxSpecBuilder& Backend(std::string_view name);
  // The OCI runtime of the oci backend: "runc" or "crun".
  SandboxSpecBuilder& OciRuntime(std::string_view name);

  // The frozen spec, or the first error (kInvalidArgument, kNotFound).
  [[nodiscard]] Result<SandboxSpec> Build() &&;

 private:
  bool Ok() const { return !error_.has_value(); }
  void Keep(Error error);
  Status CheckSandboxPath(const std::string& path, const char* what);
  Status CheckHostPath(const std::string& path, const char* what);

  SandboxSpec spec_;
  std::optional<Error> error_;
};

// The limit that stopped a run, if any.
enum class LimitKind {
  kNone,
  kMemory,     // the kernel's OOM killer fired in the sandbox
  kProcesses,  // the task limit was reached and the run then failed
  kCpu,        // CPU time (user + system, whole tree) ran out
  kWall,       // wall-clock time ran out
  kScratch,    // scratch was full and the run then failed
};
const char* LimitKindName(LimitKind kind);

// Resource use of the whole sandbox so far. Values the host cannot measure
// are 0.
struct Usage {
  uint64_t cpu_ms = 0;             // user + system time
  uint64_t memory_peak_bytes = 0;  // peak of the tree (cgroup) or of the
                                   // largest process (rusage fallback)
  uint64_t scratch_used_bytes = 0;
};

// How a sandbox ended. Exactly one of exit_code/signal is meaningful.
struct Outcome {
  bool exited = false;  // true: exit_code holds the status
  int exit_code = 0;
  int signal = 0;  // the signal that ended the first process
  LimitKind stopped_by = LimitKind::kNone;
  bool killed = false;  // egg killed it (limit or Kill())
  // Limits reached without necessarily stopping the run.
  bool processes_limit_hit = false;
  bool scratch_full = false;
  Usage usage;
};

// A running sandbox. Destruction kills every process in it and removes
// every mount, cgroup and temporary file it made.
class Sandbox {
 public:
  virtual ~Sandbox() = default;

  // Host pid of the first process (for logs; do not signal it directly).
  virtual int pid() const = 0;
  // Kills the whole tree with SIGKILL; Wait() then reports killed = true.
  [[nodiscard]] virtual Status Kill() = 0;
  // Non-blocking: enforces the wall and CPU limits, and returns the
  // outcome once the sandbox has ended (std::nullopt while it runs).
  [[nodiscard]] virtual Result<std::optional<Outcome>> Poll() = 0;
  // Blocks until the sandbox ends, enforcing every limit.
  [[nodiscard]] virtual Result<Outcome> Wait() = 0;
  [[nodiscard]] virtual Result<Usage> GetUsage() = 0;
  // Between cells: replaces the memory and process limits, and restarts
  // the CPU and wall budgets (cpu_ms and wall_ms count from this call).
  // Unset fields keep their value; scratch and output are ignored.
  // Raising memory or processes above the spec's limits is
  // kInvalidArgument.
  [[nodiscard]] virtual Status SetLimits(const Limits& limits) = 0;
  // Limit events counted since the sandbox started, whether or not they
  // ended it: OOM kills in its memory cgroup, and forks its task limit
  // refused. Zeros where the backend or host cannot count them.
  struct LimitEvents {
    uint64_t oom_kills = 0;
    uint64_t pids_max = 0;
  };
  virtual LimitEvents GetLimitEvents() { return {}; }
  // The host pids of every process in the sandbox, from its control
  // group (which no process in it can leave); nullopt where the backend
  // cannot list them so (then walk the tree from pid()).
  virtual std::optional<std::vector<int>> Members() { return std::nullopt; }
  // Between cells: makes the host's output folder show what the sandbox
  // wrote to /out so far. A no-op where /out is the host folder itself;
  // the vm backend flushes the guest's /out disk and reads it back.
  [[nodiscard]] virtual Status SyncOutput() { return {}; }
};

// Starts the sandbox's first process. Errors: kSandboxSetup (with the
// child's one-line reason) when isolation could not be built, kNotSupported
// when the host lacks a required feature (e.g. user namespaces).
[[nodiscard]] Result<std::unique_ptr<Sandbox>> StartSandbox(
    const SandboxSpec& spec);

// Optional: starts, on a background thread, set-up work that every
// namespaces sandbox of this process shares (compiling the seccomp
// program, about a millisecond and a half), so that it overlaps whatever
// the caller does before StartSandbox(). StartSandbox() waits for it, or
// does it itself when this was not called. Never fails. A build that
// compiled the program in (every native build) has nothing to start.
void PrepareSandboxSetup();

// What the host offers, for `egg doctor` and for tests that must skip.
struct SandboxHostSupport {
  bool user_namespaces = false;  // can create a user namespace now
  int landlock_abi = 0;          // 0: unavailable
  std::string cgroup_mode;       // "v1", "v2" or "none"
  bool cgroup_memory = false;    // memory limit via cgroup works
  bool cgroup_pids = false;
  bool cgroup_cpu = false;  // tree CPU accounting via cgroup
};
SandboxHostSupport ProbeSandboxHost();

// --- Choosing a backend (src/sandbox/auto_choose.cc) ---

// Whether one backend really works here: it started a trivial sandbox
// under a deadline (a VM boots a guest), or `detail` says why not.
struct BackendProbe {
  SandboxBackend backend = SandboxBackend::kNamespaces;
  std::string oci_runtime;  // kOci only
  bool works = false;
  std::string detail;  // why not, or a caveat (e.g. "TCG: slow")
  uint64_t ms = 0;     // how long the probe took
};
[[nodiscard]] BackendProbe ProbeSandboxBackend(SandboxBackend backend,
                                               std::string_view oci_runtime);

// The strongest backend that works on this host, in the order vm (only
// where KVM runs guests: a TCG-only VM is passed over), gvisor,
// namespaces (oci adds nothing over namespaces, so auto never picks it).
// Probe results are cached per boot (keyed by the kernel's boot id) in
// the egg state folder; `reason` says what was picked and why the
// stronger ones were passed over. kNotSupported if none works.
struct BackendChoice {
  SandboxBackend backend = SandboxBackend::kNamespaces;
  std::string oci_runtime;
  std::string reason;
  std::vector<BackendProbe> probes;  // in the order tried
};
[[nodiscard]] Result<BackendChoice> ChooseSandboxBackend();

// --- The vm backend's cache of disk images (docs/ISOLATION.md) ---

struct VmImageCacheStats {
  uint64_t entries = 0;  // images looked at (kept runtime roots aside)
  uint64_t removed = 0;
  uint64_t removed_bytes = 0;
  uint64_t busy = 0;  // held by a running sandbox: kept
};

// Removes the cached disk images of the vm backend that no running
// sandbox holds, except the runtime root images whose runtime digest
// `keep_root` accepts (null: none is kept); also what interrupted makers
// left behind. The images are a cache: a later hatch makes them again.
// An absent cache folder is fine; kIo if it cannot be read.
[[nodiscard]] Result<VmImageCacheStats> CollectVmImageCache(
    const std::function<bool(const Digest&)>& keep_root);

}  // namespace egg

#endif  // EGG_SANDBOX_H_
