// StartSandbox and the running Sandbox: prepares the child's plan, clones,
// finishes the parent's half of the setup, then enforces limits.
#include "egg/sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <future>
#include <mutex>
#include <system_error>

#include "common/fd.h"
#include "common/trace.h"
#include "sandbox/cgroup.h"
#include "sandbox/child.h"
#include "sandbox/log.h"
#include "sandbox/oci_backend.h"
#include "sandbox/seccomp_filter.h"
#include "sandbox/vm_backend.h"

namespace egg {
namespace {

using sandbox_internal::CgroupSet;
using sandbox_internal::ChildPlan;
using sandbox_internal::PlanBind;
using Clock = std::chrono::steady_clock;

// The host identity of the sandbox user when egg runs as root.
constexpr unsigned kNobody = 65534;
constexpr const char* kDevNodes[] = {"/dev/null", "/dev/zero", "/dev/full",
                                     "/dev/random", "/dev/urandom"};
constexpr const char* kReservedTop[] = {"proc", "dev", "tmp", "scratch", "out"};

int LandlockAbi() {
  long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0,
                       1u /* LANDLOCK_CREATE_RULESET_VERSION */);
  return abi > 0 ? static_cast<int>(abi) : 0;
}

int LastCap() {
  auto text = ReadFileToString("/proc/sys/kernel/cap_last_cap", 64);
  if (!text) return 63;
  return std::max(0, std::min(63, std::atoi(text->c_str())));
}

// The seccomp program: the one compiled when egg was built, or else
// compiled once per process. PrepareSandboxSetup() may start that compile
// early on another thread; otherwise the first Seccomp() compiles it on
// the calling thread.
std::mutex g_seccomp_mu;
std::shared_future<Result<sandbox_internal::SeccompProgram>> g_seccomp;

void StartSeccompBuild(std::launch how) {
  std::lock_guard<std::mutex> lock(g_seccomp_mu);
  if (!g_seccomp.valid()) {
    g_seccomp = std::async(how, sandbox_internal::BuildSeccompProgram).share();
  }
}

Result<const sandbox_internal::SeccompProgram*> Seccomp() {
  // The same instructions BuildSeccompProgram() returns (the build ran
  // it; test_sandbox compares the two), without 1.5 ms of libseccomp.
  if (const auto* prebuilt = sandbox_internal::PrebuiltSeccompProgram()) {
    return prebuilt;
  }
  StartSeccompBuild(std::launch::deferred);
  std::shared_future<Result<sandbox_internal::SeccompProgram>> built;
  {
    std::lock_guard<std::mutex> lock(g_seccomp_mu);
    built = g_seccomp;
  }
  const Result<sandbox_internal::SeccompProgram>& program = built.get();
  if (!program) return Fail(program.error());
  return &*program;
}

std::string Relative(const std::string& sandbox_path) {
  return sandbox_path.substr(1);
}

Result<PlanBind> MakeBind(const std::string& host, const std::string& target,
                          bool writable) {
  struct stat st;
  if (::stat(host.c_str(), &st) != 0) {
    return Fail(ErrnoError("reading '" + host + "'"));
  }
  PlanBind b;
  b.source = host;
  b.target = Relative(target);
  b.directory = S_ISDIR(st.st_mode);
  b.writable = writable;
  b.device = S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode);
  return b;
}

Status AddRootFolder(const std::string& folder, ChildPlan& plan) {
  DIR* d = ::opendir(folder.c_str());
  if (d == nullptr) return Fail(ErrnoError("listing '" + folder + "'"));
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (std::find(std::begin(kReservedTop), std::end(kReservedTop), name) !=
        std::end(kReservedTop)) {
      continue;
    }
    names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());

  for (const std::string& name : names) {
    std::string host = folder + "/" + name;
    struct stat st;
    if (::lstat(host.c_str(), &st) != 0) {
      return Fail(ErrnoError("reading '" + host + "'"));
    }
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = ::readlink(host.c_str(), target, sizeof(target) - 1);
      if (n < 0) return Fail(ErrnoError("reading link '" + host + "'"));
      plan.root_symlinks.push_back({std::string(target, n), name});
    } else if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
      PlanBind b;
      b.source = host;
      b.target = name;
      b.directory = S_ISDIR(st.st_mode);
      plan.root_binds.push_back(b);
    }
    // Sockets, fifos and device nodes in a runtime are not carried over.
  }
  return {};
}

Result<ChildPlan> MakePlan(const SandboxSpec& spec, bool isolate, int sync_fd,
                           int devnull_fd) {
  ChildPlan plan;
  plan.isolate = isolate;
  plan.drop_groups = ::geteuid() == 0;
  plan.sync_fd = sync_fd;
  plan.last_cap = LastCap();
  plan.landlock_abi = LandlockAbi();
  plan.trace = TraceEnabled();
  plan.network = spec.network();

  if (isolate) {
    if (!spec.root_folder().empty()) {
      if (auto s = AddRootFolder(spec.root_folder(), plan); !s) {
        return Fail(s.error());
      }
    }
    for (const SandboxBind& part : spec.root_parts()) {
      auto b = MakeBind(part.host, part.sandbox, false);
      if (!b) return Fail(b.error());
      plan.root_binds.push_back(*b);
    }
    for (const char* node : kDevNodes) {
      auto b = MakeBind(node, node, true);
      if (!b) return Fail(b.error());
      plan.dev_binds.push_back(*b);
    }
    for (const std::string& device : spec.devices()) {
      auto b = MakeBind(device, device, true);
      if (!b) return Fail(b.error());
      plan.dev_binds.push_back(*b);
    }
    if (!spec.output().empty()) {
      auto b = MakeBind(spec.output(), "/out", true);
      if (!b) return Fail(b.error());
      plan.binds.push_back(*b);
      plan.writable_targets.push_back("/out");
    }
    for (const SandboxBind& bind : spec.binds()) {
      auto b = MakeBind(bind.host, bind.sandbox, bind.writable);
      if (!b) return Fail(b.error());
      plan.binds.push_back(*b);
      if (bind.writable) plan.writable_targets.push_back(bind.sandbox);
    }
    auto by_target = [](const PlanBind& a, const PlanBind& b) {
      return a.target < b.target;
    };
    std::stable_sort(plan.root_binds.begin(), plan.root_binds.end(), by_target);
    std::stable_sort(plan.binds.begin(), plan.binds.end(), by_target);

    uint64_t scratch = *spec.limits().scratch_bytes;
    uint64_t inodes = std::max<uint64_t>(1024, scratch / 4096);
    plan.tmpfs_options = "size=" + std::to_string(scratch) +
                         ",nr_inodes=" + std::to_string(inodes) + ",mode=1777";
  }

  // stdio and extra fds.
  auto or_null = [&](int fd) { return fd >= 0 ? fd : devnull_fd; };
  plan.fds.push_back({or_null(spec.stdin_fd()), 0});
  plan.fds.push_back({or_null(spec.stdout_fd()), 1});
  plan.fds.push_back({or_null(spec.stderr_fd()), 2});
  for (const SandboxFd& f : spec.fds()) {
    plan.fds.push_back({f.host_fd, f.sandbox_fd});
    plan.max_fd = std::max(plan.max_fd, f.sandbox_fd);
  }

  // Environment: fixed, then the spec's (which may override).
  std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin",
                                  "HOME=/scratch", "TMPDIR=/tmp",
                                  "LANG=C.UTF-8"};
  if (!isolate) env[1] = "HOME=/tmp";
  for (const std::string& e : spec.env()) {
    std::string prefix = e.substr(0, e.find('=') + 1);
    std::erase_if(env, [&](const std::string& x) {
      return x.compare(0, prefix.size(), prefix) == 0;
    });
    env.push_back(e);
  }
  plan.argv_storage = spec.argv();
  plan.env_storage = std::move(env);
  for (std::string& a : plan.argv_storage) plan.argv.push_back(a.data());
  plan.argv.push_back(nullptr);
  for (std::string& e : plan.env_storage) plan.envp.push_back(e.data());
  plan.envp.push_back(nullptr);
  plan.cwd = spec.cwd();

  TraceStep("sandbox: plan laid out");
  if (isolate) {
    auto program = Seccomp();
    if (!program) return Fail(program.error());
    plan.seccomp = (*program)->code;
    plan.ioctl_guard = (*program)->ioctl_guard;
  }
  return plan;
}

Status WriteProcFile(pid_t pid, const char* name, const std::string& text) {
  std::string path = "/proc/" + std::to_string(pid) + "/" + name;
  auto fd = OpenFile(path, O_WRONLY);
  if (!fd) return Fail(fd.error());
  if (auto s = WriteAll(fd->get(), text); !s) {
    return Fail(s.error().Wrap("writing " + path));
  }
  return {};
}

Status WriteIdMaps(pid_t pid) {
  if (::geteuid() == 0) {
    std::string uid = std::to_string(sandbox_internal::kSandboxUid) + " " +
                      std::to_string(kNobody) + " 1\n";
    std::string gid = std::to_string(sandbox_internal::kSandboxGid) + " " +
                      std::to_string(kNobody) + " 1\n";
    if (auto s = WriteProcFile(pid, "uid_map", uid); !s) return s;
    return WriteProcFile(pid, "gid_map", gid);
  }
  std::string uid = std::to_string(sandbox_internal::kSandboxUid) + " " +
                    std::to_string(::geteuid()) + " 1\n";
  std::string gid = std::to_string(sandbox_internal::kSandboxGid) + " " +
                    std::to_string(::getegid()) + " 1\n";
  if (auto s = WriteProcFile(pid, "setgroups", "deny"); !s) return s;
  if (auto s = WriteProcFile(pid, "uid_map", uid); !s) return s;
  return WriteProcFile(pid, "gid_map", gid);
}

uint64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             Clock::now().time_since_epoch())
      .count();
}

class RunningSandbox final : public Sandbox {
 public:
  RunningSandbox(pid_t pid, UniqueFd pidfd, CgroupSet cgroups, UniqueFd scratch,
                 const Limits& limits, bool isolate)
      : pid_(pid),
        pidfd_(std::move(pidfd)),
        cgroups_(std::move(cgroups)),
        scratch_(std::move(scratch)),
        spec_limits_(limits),
        isolate_(isolate) {
    deadline_ns_ = NowNs() + *limits.wall_ms * 1000000ull;
    cpu_budget_ns_ = *limits.cpu_ms * 1000000ull;
  }

  ~RunningSandbox() override {
    if (!outcome_) {
      KillTree();
      siginfo_t info{};
      rusage ru{};
      ::syscall(SYS_waitid, P_PIDFD, pidfd_.get(), &info, WEXITED, &ru);
      Finish(info, ru);
    }
  }

  int pid() const override { return pid_; }

  std::optional<std::vector<int>> Members() override {
    if (outcome_) return std::vector<int>{};
    auto members = cgroups_.Members(65536);
    if (!members) return std::nullopt;
    return std::vector<int>(members->begin(), members->end());
  }

  Status Kill() override {
    if (outcome_) return {};
    if (!reason_) reason_ = LimitKind::kNone;
    killed_ = true;
    KillTree();
    return {};
  }

  Result<std::optional<Outcome>> Poll() override {
    if (outcome_) return outcome_;
    siginfo_t info{};
    rusage ru{};
    long r = RetryEintr([&] {
      return ::syscall(SYS_waitid, P_PIDFD, pidfd_.get(), &info,
                       WEXITED | WNOHANG, &ru);
    });
    if (r != 0) return Fail(ErrnoError("waiting for the sandbox"));
    if (info.si_pid != 0) {
      Finish(info, ru);
      return outcome_;
    }
    Enforce();
    return std::optional<Outcome>();
  }

  Result<Outcome> Wait() override {
    for (;;) {
      auto polled = Poll();
      if (!polled) return Fail(polled.error());
      if (*polled) return **polled;
      uint64_t now = NowNs();
      int timeout_ms = 50;
      if (deadline_ns_ > now) {
        timeout_ms = static_cast<int>(
            std::min<uint64_t>(50, (deadline_ns_ - now) / 1000000 + 1));
      }
      pollfd p{pidfd_.get(), POLLIN, 0};
      RetryEintr([&] { return ::poll(&p, 1, timeout_ms); });
    }
  }

  Result<Usage> GetUsage() override {
    if (outcome_) return outcome_->usage;
    Usage u;
    u.cpu_ms = cgroups_.CpuNs() / 1000000;
    u.memory_peak_bytes = cgroups_.MemoryPeak();
    u.scratch_used_bytes = ScratchUsed();
    return u;
  }

  LimitEvents GetLimitEvents() override {
    return {cgroups_.OomKills(), cgroups_.PidsMaxEvents()};
  }

  Status SetLimits(const Limits& limits) override {
    if (outcome_) {
      return Fail(Code::kInvalidArgument, "the sandbox has ended");
    }
    auto above = [](const std::optional<uint64_t>& v,
                    const std::optional<uint64_t>& max) {
      return v && (*v == 0 || *v > *max);
    };
    if (above(limits.memory_bytes, spec_limits_.memory_bytes) ||
        above(limits.processes, spec_limits_.processes) ||
        above(limits.cpu_ms, spec_limits_.cpu_ms) ||
        above(limits.wall_ms, spec_limits_.wall_ms)) {
      return Fail(Code::kInvalidArgument,
                  "a cell limit is zero or above the sandbox's limit");
    }
    if (limits.memory_bytes) {
      if (cgroups_.has_memory()) {
        if (auto s = cgroups_.SetMemory(*limits.memory_bytes); !s) return s;
      } else {
        rlimit r{*limits.memory_bytes, *limits.memory_bytes};
        if (::prlimit(pid_, RLIMIT_AS, &r, nullptr) != 0) {
          return Fail(ErrnoError("lowering RLIMIT_AS"));
        }
      }
    }
    if (limits.processes) {
      if (cgroups_.has_pids()) {
        if (auto s = cgroups_.SetPids(*limits.processes); !s) return s;
      } else {
        rlimit r{*limits.processes, *limits.processes};
        if (::prlimit(pid_, RLIMIT_NPROC, &r, nullptr) != 0) {
          return Fail(ErrnoError("lowering RLIMIT_NPROC"));
        }
      }
    }
    // Without a CPU accounting cgroup there is no tree budget to restart:
    // each process keeps the RLIMIT_CPU set at the start (the sandbox's
    // CPU limit, per process), and a cell's own CPU limit is not applied
    // (the start warned; its wall time still bounds it).
    if (limits.cpu_ms && cgroups_.has_cpu()) {
      cpu_base_ns_ = cgroups_.CpuNs();
      cpu_budget_ns_ = *limits.cpu_ms * 1000000ull;
    }
    if (limits.wall_ms) deadline_ns_ = NowNs() + *limits.wall_ms * 1000000ull;
    return {};
  }

 private:
  void KillTree() {
    // The first process is PID 1 of its namespace: its death kills the
    // rest. Without a PID namespace, kill the session and the cgroups.
    ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
    if (!isolate_) {
      ::kill(-pid_, SIGKILL);
      cgroups_.KillAll();
    }
  }

  void Stop(LimitKind reason) {
    if (!reason_) reason_ = reason;
    killed_ = true;
    KillTree();
  }

  void Enforce() {
    if (reason_) return;
    if (NowNs() >= deadline_ns_) return Stop(LimitKind::kWall);
    if (cgroups_.has_cpu() &&
        cgroups_.CpuNs() - std::min(cpu_base_ns_, cgroups_.CpuNs()) >=
            cpu_budget_ns_) {
      return Stop(LimitKind::kCpu);
    }
    // The OOM killer takes one task; a limit stops the whole sandbox.
    if (cgroups_.OomKills() > 0) return Stop(LimitKind::kMemory);
  }

  uint64_t ScratchUsed() const {
    struct statfs st;
    if (!scratch_.valid() || ::fstatfs(scratch_.get(), &st) != 0) return 0;
    return (st.f_blocks - st.f_bfree) * st.f_bsize;
  }

  bool ScratchFull() const {
    struct statfs st;
    if (!scratch_.valid() || ::fstatfs(scratch_.get(), &st) != 0) {
      return false;
    }
    return st.f_bavail == 0 || st.f_ffree == 0;
  }

  void Finish(const siginfo_t& info, const rusage& ru) {
    TraceStep("sandbox: first process reaped");
    // Without a PID namespace, children may outlive the first process.
    if (!isolate_) {
      ::kill(-pid_, SIGKILL);
      cgroups_.KillAll();
    }

    Outcome o;
    o.exited = info.si_code == CLD_EXITED;
    if (o.exited) {
      o.exit_code = info.si_status;
    } else {
      o.signal = info.si_status;
    }
    o.killed = killed_;
    o.usage.cpu_ms =
        cgroups_.has_cpu()
            ? cgroups_.CpuNs() / 1000000
            : (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
                  (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
    o.usage.memory_peak_bytes =
        cgroups_.has_memory() ? cgroups_.MemoryPeak()
                              : static_cast<uint64_t>(ru.ru_maxrss) * 1024;
    o.usage.scratch_used_bytes = ScratchUsed();
    o.processes_limit_hit = cgroups_.PidsMaxReached();
    o.scratch_full = ScratchFull();

    bool failed = !o.exited || o.exit_code != 0;
    if (reason_) {
      o.stopped_by = *reason_;
    } else if (cgroups_.OomKills() > 0) {
      o.stopped_by = LimitKind::kMemory;
    } else if (!o.exited && (o.signal == SIGXCPU ||
                             (o.signal == SIGKILL && !cgroups_.has_cpu() &&
                              o.usage.cpu_ms * 1000000ull >= cpu_budget_ns_))) {
      // RLIMIT_CPU: SIGXCPU, or SIGKILL at the hard limit for a PID 1,
      // which the kernel spares from SIGXCPU.
      o.stopped_by = LimitKind::kCpu;
    } else if (failed && o.processes_limit_hit) {
      o.stopped_by = LimitKind::kProcesses;
    } else if (failed && o.scratch_full) {
      o.stopped_by = LimitKind::kScratch;
    }
    outcome_ = o;

    cgroups_.Destroy();
    scratch_.Reset();
    TraceStep("sandbox: cgroups removed");
  }

  pid_t pid_;
  UniqueFd pidfd_;
  CgroupSet cgroups_;
  UniqueFd scratch_;
  Limits spec_limits_;
  bool isolate_;
  uint64_t deadline_ns_ = 0;
  uint64_t cpu_base_ns_ = 0;
  uint64_t cpu_budget_ns_ = 0;
  bool killed_ = false;
  std::optional<LimitKind> reason_;
  std::optional<Outcome> outcome_;
};

// Reads child messages until EOF (exec done) or an error line.
Status ReadChildMessages(int sock, UniqueFd& scratch) {
  for (;;) {
    char buf[1024];
    iovec iov{buf, sizeof(buf)};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n =
        RetryEintr([&] { return ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); });
    if (n < 0) return Fail(ErrnoError("reading the sandbox setup channel"));
    if (n == 0) return {};
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
         c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
          c->cmsg_len == CMSG_LEN(sizeof(int))) {
        int fd;
        memcpy(&fd, CMSG_DATA(c), sizeof(int));
        scratch.Reset(fd);
      }
    }
    if (buf[0] == 'T') {
      std::string line(buf + 1, n - 1);
      TraceStep("sandbox: child at " + line);
      continue;
    }
    if (buf[0] == 'E') {
      return Fail(Code::kSandboxSetup,
                  "sandbox setup failed: " + std::string(buf + 1, n - 1));
    }
  }
}

}  // namespace

Result<std::unique_ptr<Sandbox>> StartSandbox(const SandboxSpec& spec) {
  // Stronger backends live in oci_*.cc and vm_*.cc.
  if (spec.backend() == SandboxBackend::kGvisor ||
      spec.backend() == SandboxBackend::kOci) {
    return sandbox_internal::StartOciSandbox(spec);
  }
  if (spec.backend() == SandboxBackend::kVm) {
    return sandbox_internal::StartVmSandbox(spec);
  }
  bool isolate = spec.backend() == SandboxBackend::kNamespaces;
  if (!isolate) {
    sandbox_internal::LogWarning("running '" + spec.argv()[0] +
                                 "' with NO SANDBOX (none backend)");
  }
  const Limits& limits = spec.limits();

  // Limits: cgroups where the host lets us, rlimits otherwise.
  TraceStep("sandbox: start");
  CgroupSet cgroups = CgroupSet::Create();
  TraceStep("sandbox: cgroups created");
  // RLIMIT_FSIZE: no file the sandbox writes (in /out, a writable host
  // path or scratch) grows past the output limit, whatever the caller's
  // polling sees. One byte more than the cap, so that a file stopped by
  // it always shows as over the cap to a caller that sums /out. A writer
  // gets SIGXFSZ (EFBIG where ignored, as Python does). It cannot be
  // raised again: the hard limit is the same and no capability is left.
  std::vector<sandbox_internal::PlanRlimit> rlimits = {
      {RLIMIT_CORE, 0}, {RLIMIT_FSIZE, *limits.output_bytes + 1}};
  if (cgroups.has_memory()) {
    if (auto s = cgroups.SetMemory(*limits.memory_bytes); !s)
      return Fail(s.error());
  } else {
    sandbox_internal::LogWarning(
        "no memory cgroup: falling back to RLIMIT_AS, which limits address "
        "space per process, not memory of the tree");
    rlimits.push_back({RLIMIT_AS, *limits.memory_bytes});
  }
  if (cgroups.has_pids()) {
    if (auto s = cgroups.SetPids(*limits.processes); !s) return Fail(s.error());
  } else {
    sandbox_internal::LogWarning(
        "no pids cgroup: falling back to RLIMIT_NPROC");
    rlimits.push_back({RLIMIT_NPROC, *limits.processes});
  }
  if (!cgroups.has_cpu()) {
    // Per process, in whole seconds: a fallback, not a tree budget.
    sandbox_internal::LogWarning(
        "no CPU accounting cgroup: falling back to RLIMIT_CPU per process; "
        "a cell's own CPU limit is not applied (its wall time still is)");
    rlimits.push_back({RLIMIT_CPU, (*limits.cpu_ms + 999) / 1000});
  }
  sandbox_internal::LogDebug(std::string("cgroups: ") + cgroups.mode());

  auto devnull = OpenFile("/dev/null", O_RDWR);
  if (!devnull) return Fail(devnull.error());
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    return Fail(ErrnoError("socketpair"));
  }
  UniqueFd parent_sock(pair[0]), child_sock(pair[1]);

  TraceStep("sandbox: limits set");
  auto plan = MakePlan(spec, isolate, child_sock.get(), devnull->get());
  if (!plan) return Fail(plan.error());
  TraceStep("sandbox: plan made");
  plan->rlimits = rlimits;
  auto join_fds = cgroups.OpenSelfJoin();
  if (!join_fds) return Fail(join_fds.error());
  plan->cgroup_join_fds = *join_fds;
  plan->wait_for_cgroups = cgroups.NeedsParentJoin();

  // Clone: the child starts inside every new namespace at once.
  int pidfd = -1;
  clone_args args{};
  args.flags = CLONE_PIDFD;
  if (isolate) {
    args.flags |= CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC |
                  CLONE_NEWUTS;
    if (!spec.network()) args.flags |= CLONE_NEWNET;
  }
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  long pid = ::syscall(SYS_clone3, &args, sizeof(args));
  if (pid == 0) sandbox_internal::RunChild(*plan);
  if (pid < 0) {
    int err = errno;
    if (isolate &&
        (err == EPERM || err == EINVAL || err == ENOSPC || err == EUSERS)) {
      return Fail(Code::kNotSupported,
                  std::string("this host does not let egg create "
                              "namespaces (") +
                      strerror(err) + ")");
    }
    return Fail(ErrnoError("clone3", err));
  }
  UniqueFd pidfd_owner(pidfd);
  child_sock.Reset();
  cgroups.CloseSelfJoin();
  TraceStep("sandbox: cloned");

  auto abandon = [&](const Error& error) -> Error {
    ::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
    siginfo_t info{};
    ::waitid(P_PIDFD, pidfd, &info, WEXITED);
    return error;
  };

  // Parent's half: user namespace maps, then let the child build its
  // root while we join it to the v2 cgroups (it joined the v1 ones
  // itself). A move by pid waits for an RCU grace period (milliseconds);
  // the child's mounts take about as long, so the two overlap. The child
  // waits for "C" before anything of the caller's runs, so no limit is
  // late.
  if (isolate) {
    if (auto s = WriteIdMaps(pid); !s) {
      return Fail(abandon(Error(Code::kSandboxSetup, s.error().message())));
    }
  }
  TraceStep("sandbox: id maps written");
  if (::send(parent_sock.get(), "G", 1, MSG_NOSIGNAL) != 1) {
    return Fail(abandon(ErrnoError("starting the sandbox")));
  }
  UniqueFd scratch;
  // The child may have failed while we worked: its line says more.
  auto abandon_with_child = [&](const Error& error) -> Error {
    abandon(error);
    if (auto child = ReadChildMessages(parent_sock.get(), scratch); !child) {
      return child.error();
    }
    return error;
  };
  // The unprivileged sandbox identity must be able to write /out: given
  // to it while the child builds its root. The caller's program may have
  // started by the time this is done, but it is told nothing to run
  // before this function returns.
  if (isolate && ::geteuid() == 0 && !spec.output().empty()) {
    if (auto s = ChownFolder(spec.output(), kNobody, kNobody); !s) {
      return Fail(abandon_with_child(s.error().Wrap(
          "giving the output folder to the sandbox user")));
    }
  }
  if (plan->wait_for_cgroups) {
    if (auto s = cgroups.AddProcess(pid, /*except_self_joined=*/true); !s) {
      return Fail(abandon_with_child(s.error()));
    }
    TraceStep("sandbox: joined v2 cgroups");
    if (::send(parent_sock.get(), "C", 1, MSG_NOSIGNAL) != 1) {
      return Fail(abandon_with_child(ErrnoError("starting the sandbox")));
    }
  }
  if (auto s = ReadChildMessages(parent_sock.get(), scratch); !s) {
    return Fail(abandon(s.error()));
  }
  sandbox_internal::LogDebug("started pid " + std::to_string(pid));
  TraceStep("sandbox: child set up and exec'd");

  return std::unique_ptr<Sandbox>(new RunningSandbox(
      static_cast<pid_t>(pid), std::move(pidfd_owner), std::move(cgroups),
      std::move(scratch), limits, isolate));
}

void PrepareSandboxSetup() {
  if (sandbox_internal::PrebuiltSeccompProgram() != nullptr) return;
  // A thread that cannot start leaves the compile to StartSandbox().
  try {
    StartSeccompBuild(std::launch::async);
  } catch (const std::system_error&) {
  }
}

SandboxHostSupport ProbeSandboxHost() {
  SandboxHostSupport s;
  s.landlock_abi = LandlockAbi();

  int pidfd = -1;
  clone_args args{};
  args.flags = CLONE_PIDFD | CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID;
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  long pid = ::syscall(SYS_clone3, &args, sizeof(args));
  if (pid == 0) ::_exit(0);
  if (pid > 0) {
    siginfo_t info{};
    ::waitid(P_PIDFD, pidfd, &info, WEXITED);
    ::close(pidfd);
    s.user_namespaces = info.si_code == CLD_EXITED && info.si_status == 0;
  }

  CgroupSet cg = CgroupSet::Create();
  s.cgroup_mode = cg.mode();
  s.cgroup_memory = cg.has_memory();
  s.cgroup_pids = cg.has_pids();
  s.cgroup_cpu = cg.has_cpu();
  return s;
}

}  // namespace egg
