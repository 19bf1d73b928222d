// The gvisor and oci backends: a bundle run by runsc, runc or crun under a
// supervisor process that cleans up on every path.
//
//   egg ──ctl pipe──▶ supervisor ──fork/exec──▶ runtime run ──▶ egg-init
//       ◀─status pipe─  (own session)             (fds 0..k = slots)
//       ◀──────────────── ready pipe ('R' or "E<reason>") ──────┘
//
// The supervisor is a fork of egg that never execs: it runs the runtime,
// reports its exit status, and on 'K' (kill), 'C' (clean up) or the end of
// the ctl pipe (egg died, even by SIGKILL) runs `<runtime> delete --force`,
// detaches the scratch tmpfs, removes the container's cgroups and, if egg
// is gone, the run folder. Between fork and its exit it only makes
// async-signal-safe calls on data prepared before the fork.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string_view>

#include "common/atomic_file.h"
#include "common/fd.h"
#include "guest/seccomp_file.h"
#include "sandbox/log.h"
#include "sandbox/oci_backend.h"
#include "sandbox/seccomp_filter.h"

namespace egg::sandbox_internal {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// How long a runtime may take to start the first process (gVisor boots a
// kernel of its own: about 0.2-0.5 s here).
constexpr int kStartDeadlineMs = 60000;
// After `delete --force`, how long the runtime may take to exit.
constexpr int kDeleteGraceMs = 5000;
// Under gVisor the process limit is the guest's RLIMIT_NPROC (see
// WriteBundle); the host group only keeps the Sentry from taking the
// host down, and must never be met first: meeting it kills the Sentry.
// On the ptrace platform every guest address space is a host stub
// process with up to one thread per Sentry thread that ran it (a fork
// bomb held at 48 guest tasks peaked at 701 host tasks here), plus the
// Sentry's and the gofer's own threads.
constexpr uint64_t kGvisorHostTasksPerTask = 24;
constexpr uint64_t kGvisorTaskOverhead = 256;
// The Sentry's log (runsc --debug-log) is written to a tmpfs of this
// size in the run folder; what egg has read is punched out of it.
constexpr uint64_t kSentryLogBytes = 16u << 20;

// The host group's task limit for a sandbox of `processes` tasks.
uint64_t HostTaskLimit(bool gvisor, uint64_t processes) {
  if (!gvisor) return processes;
  uint64_t most = 1u << 24;  // far above MaximumLimits().processes
  return std::min(processes, most) * kGvisorHostTasksPerTask +
         kGvisorTaskOverhead;
}

uint64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             Clock::now().time_since_epoch())
      .count();
}

// argv storage that stays valid across fork.
struct Argv {
  std::vector<std::string> args;
  std::vector<char*> ptrs;
  void Freeze() {
    ptrs.clear();
    for (std::string& a : args) ptrs.push_back(a.data());
    ptrs.push_back(nullptr);
  }
};

// Everything the supervisor needs, prepared before fork.
struct SupervisorPlan {
  Argv run;
  Argv del;
  Argv rm;
  std::vector<int> slots;  // host fd for runtime fd i
  int devnull = -1;
  int ctl = -1;              // read end: 'K', 'C' or EOF
  int status = -1;           // write end: two int32 (kind, value)
  std::string hide_cgroup2;  // crun: unmount in the runtime's namespace
  std::string scratch;       // detach at the end
  std::string sentry_log;    // gVisor: the log tmpfs, detach at the end
  std::vector<std::string> cgroup_dirs;  // children first, then P
};

// --- Supervisor side (after fork: async-signal-safe only) ---

void HideCgroup2(const SupervisorPlan& p) {
  if (p.hide_cgroup2.empty()) return;
  if (::unshare(CLONE_NEWNS) != 0) return;
  ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
  ::umount2(p.hide_cgroup2.c_str(), MNT_DETACH);
}

void CloseFrom(int first) { ::syscall(SYS_close_range, first, ~0u, 0); }

[[noreturn]] void RuntimeChild(const SupervisorPlan& p) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  HideCgroup2(p);
  int n = static_cast<int>(p.slots.size());
  // Park, then place: a slot may be the number another slot goes to.
  int parked[1024];
  for (int i = 0; i < n && i < 1024; ++i) {
    int src = p.slots[i] >= 0 ? p.slots[i] : p.devnull;
    parked[i] = ::fcntl(src, F_DUPFD, 1024 + n);
    if (parked[i] < 0) ::_exit(126);
  }
  for (int i = 0; i < n; ++i) {
    if (::dup2(parked[i], i) < 0) ::_exit(126);
  }
  CloseFrom(n);
  ::execv(p.run.ptrs[0], p.run.ptrs.data());
  ::_exit(127);
}

// Runs argv with stdio on the run folder's stdio file and waits for it.
void RunQuietly(const SupervisorPlan& p, const Argv& argv, bool hide) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (hide) HideCgroup2(p);
    ::dup2(p.devnull, 0);
    ::dup2(p.devnull, 1);
    ::dup2(p.devnull, 2);
    CloseFrom(3);
    ::execv(argv.ptrs[0], argv.ptrs.data());
    ::_exit(127);
  }
  if (pid > 0) {
    int st;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
  }
}

void CleanUp(const SupervisorPlan& p, bool egg_gone) {
  RunQuietly(p, p.del, true);
  ::umount2(p.scratch.c_str(), MNT_DETACH);
  if (!p.sentry_log.empty()) ::umount2(p.sentry_log.c_str(), MNT_DETACH);
  for (const std::string& dir : p.cgroup_dirs) ::rmdir(dir.c_str());
  if (egg_gone) RunQuietly(p, p.rm, false);
}

// Closes every fd but the plan's own (egg's other fds must not be kept
// alive by the supervisor).
void CloseAllBut(const SupervisorPlan& p) {
  int keep[1030];
  int n = 0;
  keep[n++] = p.devnull;
  keep[n++] = p.ctl;
  keep[n++] = p.status;
  for (int fd : p.slots) {
    if (fd >= 0 && n < 1030) keep[n++] = fd;
  }
  std::sort(keep, keep + n);
  int from = 0;
  for (int i = 0; i < n; ++i) {
    if (keep[i] > from) ::syscall(SYS_close_range, from, keep[i] - 1, 0);
    from = std::max(from, keep[i] + 1);
  }
  CloseFrom(from);
}

[[noreturn]] void Supervise(const SupervisorPlan& p) {
  ::setsid();  // a Ctrl-C for egg must not kill the cleaner
  ::signal(SIGPIPE, SIG_IGN);
  CloseAllBut(p);
  pid_t runtime = ::fork();
  if (runtime == 0) RuntimeChild(p);
  if (runtime < 0) ::_exit(120);
  for (int fd : p.slots) {
    if (fd > 2 && fd != p.ctl && fd != p.status && fd != p.devnull) {
      ::close(fd);
    }
  }

  bool egg_gone = false;
  bool deleting = false;
  int64_t kill_at_ms = -1;  // SIGKILL the runtime if it lingers
  int waited_ms = 0;
  int st = 0;
  for (;;) {
    pid_t r = ::waitpid(runtime, &st, WNOHANG);
    if (r == runtime) break;
    pollfd pf{p.ctl, POLLIN, 0};
    int ready = ::poll(&pf, egg_gone ? 0 : 1, 20);
    waited_ms += 20;
    if (ready > 0) {
      char c = 0;
      ssize_t n = ::read(p.ctl, &c, 1);
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        egg_gone = true;
      }
      if ((n == 0 || c == 'K' || egg_gone) && !deleting) {
        deleting = true;
        RunQuietly(p, p.del, true);
        kill_at_ms = waited_ms + kDeleteGraceMs;
      }
    }
    if (kill_at_ms >= 0 && waited_ms >= kill_at_ms) {
      ::kill(runtime, SIGKILL);
      kill_at_ms = -1;
    }
  }

  // Report, then wait for egg to read its counters ('C') or to be gone.
  int32_t report[2] = {WIFEXITED(st) ? 0 : 1,
                       WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st)};
  if (!egg_gone) {
    ssize_t ignored = ::write(p.status, report, sizeof(report));
    (void)ignored;
    for (;;) {
      char c = 0;
      ssize_t n = ::read(p.ctl, &c, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) egg_gone = true;
      if (n <= 0 || c == 'C') break;
    }
  }
  CleanUp(p, egg_gone);
  ::_exit(0);
}

// --- egg side ---

std::string ExeDir() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  std::string path(buf, n);
  return path.substr(0, path.rfind('/'));
}

// The cgroup2 mount to hide from crun on a v1/v2 hybrid host ("" if none).
std::string HybridCgroup2Mount() {
  auto text = ReadFileToString("/proc/self/mountinfo", 1 << 20);
  if (!text) return "";
  std::string v2;
  bool v1 = false;
  size_t pos = 0;
  while (pos < text->size()) {
    size_t end = text->find('\n', pos);
    if (end == std::string::npos) end = text->size();
    std::string line = text->substr(pos, end - pos);
    pos = end + 1;
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::string rest = line.substr(dash + 3);
    if (rest.rfind("cgroup2 ", 0) == 0) {
      size_t a = 0;
      for (int i = 0; i < 4; ++i) a = line.find(' ', a) + 1;
      v2 = line.substr(a, line.find(' ', a) - a);
    } else if (rest.rfind("cgroup ", 0) == 0) {
      v1 = true;
    }
  }
  return v1 ? v2 : "";
}

std::string Tail(const std::string& path) {
  auto text = ReadFileToString(path, 1 << 20);
  if (!text || text->empty()) return "";
  std::string t = *text;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  size_t nl = t.rfind('\n');
  if (nl != std::string::npos) t = t.substr(nl + 1);
  return t.size() > 400 ? t.substr(t.size() - 400) : t;
}

class OciSandbox final : public Sandbox {
 public:
  OciSandbox(pid_t supervisor, UniqueFd pidfd, UniqueFd ctl, UniqueFd status,
             std::string dir, UniqueFd scratch, ContainerCgroup cgroup,
             const Limits& limits, bool gvisor, std::string sentry_log)
      : supervisor_(supervisor),
        pidfd_(std::move(pidfd)),
        ctl_(std::move(ctl)),
        status_(std::move(status)),
        dir_(std::move(dir)),
        scratch_(std::move(scratch)),
        cgroup_(std::move(cgroup)),
        spec_limits_(limits),
        gvisor_(gvisor),
        sentry_log_(std::move(sentry_log)) {
    deadline_ns_ = NowNs() + *limits.wall_ms * 1000000ull;
    cpu_budget_ns_ = *limits.cpu_ms * 1000000ull;
  }

  ~OciSandbox() override {
    if (!outcome_) {
      (void)Kill();
      (void)Wait();
    }
    Release();
  }

  int pid() const override { return supervisor_; }
  // Readable once the runtime has ended (used while starting).
  int status_fd() const { return status_.get(); }

  Status Kill() override {
    if (outcome_) return {};
    killed_ = true;
    SendKill();
    return {};
  }

  Result<std::optional<Outcome>> Poll() override {
    if (outcome_) return outcome_;
    SampleLimitEvents();
    pollfd p{status_.get(), POLLIN, 0};
    if (RetryEintr([&] { return ::poll(&p, 1, 0); }) > 0) {
      Finish();
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
      pollfd p{status_.get(), POLLIN, 0};
      RetryEintr([&] { return ::poll(&p, 1, 50); });
    }
  }

  Result<Usage> GetUsage() override {
    if (outcome_) return outcome_->usage;
    Usage u;
    u.cpu_ms = cgroup_.CpuNs() / 1000000;
    u.memory_peak_bytes = cgroup_.MemoryPeak();
    u.scratch_used_bytes = ScratchUsed();
    return u;
  }

  // Counted while the runtime's child group exists, so that the hatcher
  // can charge an OOM kill or a refused fork to the cell that caused it.
  // The highest counts seen are kept: when a limit takes the sandbox down
  // (gVisor's Sentry dies if its host tasks meet the host limit), the
  // child group goes with it, and the hatcher still learns which limit
  // was met. Under gVisor the forks the guest refused (its RLIMIT_NPROC,
  // read from the Sentry's log) are added.
  LimitEvents GetLimitEvents() override {
    SampleLimitEvents();
    return seen_events_;
  }

  void SampleLimitEvents() {
    if (outcome_) return;
    seen_events_.oom_kills =
        std::max(seen_events_.oom_kills, cgroup_.OomKills());
    seen_host_pids_ = std::max(seen_host_pids_, cgroup_.PidsMaxEvents());
    guest_refused_ = sentry_log_.Refused();
    seen_events_.pids_max = seen_host_pids_ + guest_refused_;
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
    if (limits.memory_bytes && cgroup_.has_memory()) {
      if (auto s = cgroup_.SetMemory(*limits.memory_bytes); !s) return s;
    }
    if (limits.processes && cgroup_.has_pids()) {
      // TODO(security): under gVisor a cell limit below the sandbox's is
      // only the host's (scaled) limit; the guest keeps the sandbox's
      // RLIMIT_NPROC, which cannot be changed from outside.
      if (auto s = cgroup_.SetPids(HostTaskLimit(gvisor_, *limits.processes));
          !s) {
        return s;
      }
    }
    if (limits.cpu_ms) {
      cpu_base_ns_ = cgroup_.CpuNs();
      cpu_budget_ns_ = *limits.cpu_ms * 1000000ull;
    }
    if (limits.wall_ms) deadline_ns_ = NowNs() + *limits.wall_ms * 1000000ull;
    return {};
  }

 private:
  void SendKill() {
    if (!kill_sent_ && ctl_.valid()) {
      kill_sent_ = true;
      ssize_t ignored = ::write(ctl_.get(), "K", 1);
      (void)ignored;
    }
  }

  void Stop(LimitKind reason) {
    if (!reason_) reason_ = reason;
    killed_ = true;
    SendKill();
  }

  void Enforce() {
    // Sampled while the runtime's child group exists (see PidsMaxReached).
    if (!pids_hit_) {
      pids_hit_ = guest_refused_ > 0 || cgroup_.PidsMaxReached();
    }
    if (reason_) return;
    if (NowNs() >= deadline_ns_) return Stop(LimitKind::kWall);
    uint64_t cpu = cgroup_.CpuNs();
    if (cgroup_.has_cpu() &&
        cpu - std::min(cpu_base_ns_, cpu) >= cpu_budget_ns_) {
      return Stop(LimitKind::kCpu);
    }
    if (cgroup_.OomKills() > 0) return Stop(LimitKind::kMemory);
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

  void Finish() {
    SampleLimitEvents();
    int32_t report[2] = {1, SIGKILL};
    ssize_t n = RetryEintr(
        [&] { return ::read(status_.get(), report, sizeof(report)); });
    Outcome o;
    if (n == sizeof(report) && report[0] == 0) {
      // runc, crun and runsc exit 128+N when the first process died of
      // signal N.
      if (report[1] > 128 && report[1] <= 128 + 64) {
        o.signal = report[1] - 128;
      } else {
        o.exited = true;
        o.exit_code = report[1];
      }
    } else {
      o.signal = n == sizeof(report) ? report[1] : SIGKILL;
    }
    o.killed = killed_;
    LogDebug("ended: report " + std::to_string(report[0]) + "/" +
             std::to_string(report[1]) + ", oom kills " +
             std::to_string(cgroup_.OomKills()) + ", memory limit hit " +
             std::to_string(cgroup_.MemoryLimitHit()));
    o.usage.cpu_ms = cgroup_.CpuNs() / 1000000;
    o.usage.memory_peak_bytes = cgroup_.MemoryPeak();
    o.usage.scratch_used_bytes = ScratchUsed();
    o.processes_limit_hit =
        pids_hit_ || guest_refused_ > 0 || cgroup_.PidsMaxReached();
    o.scratch_full = ScratchFull();
    bool failed = !o.exited || o.exit_code != 0;
    if (reason_) {
      o.stopped_by = *reason_;
    } else if (cgroup_.OomKills() > 0 ||
               (!o.exited && o.signal == SIGKILL && !killed_ &&
                cgroup_.MemoryLimitHit())) {
      // A SIGKILL egg did not send, after the tree met its memory limit:
      // the kernel's OOM killer (whose count v1 keeps in the runtime's
      // child group, already gone) or, under gVisor, the Sentry's death.
      o.stopped_by = LimitKind::kMemory;
    } else if (failed && o.processes_limit_hit) {
      o.stopped_by = LimitKind::kProcesses;
    } else if (failed && o.scratch_full) {
      o.stopped_by = LimitKind::kScratch;
    }
    outcome_ = o;
    Release();
  }

  // Lets the supervisor clean up, waits for it, removes what is left.
  void Release() {
    if (ctl_.valid()) {
      ssize_t ignored = ::write(ctl_.get(), "C", 1);
      (void)ignored;
      ctl_.Reset();
    }
    if (pidfd_.valid()) {
      siginfo_t info{};
      RetryEintr(
          [&] { return ::waitid(P_PIDFD, pidfd_.get(), &info, WEXITED); });
      pidfd_.Reset();
    }
    scratch_.Reset();
    cgroup_.Remove();
    if (!dir_.empty()) {
      RemoveRunDir(dir_);
      dir_.clear();
    }
  }

  pid_t supervisor_;
  UniqueFd pidfd_;
  UniqueFd ctl_;
  UniqueFd status_;
  std::string dir_;
  UniqueFd scratch_;
  ContainerCgroup cgroup_;
  Limits spec_limits_;
  bool gvisor_;
  SentryLog sentry_log_;
  uint64_t seen_host_pids_ = 0;
  uint64_t guest_refused_ = 0;
  uint64_t deadline_ns_ = 0;
  uint64_t cpu_base_ns_ = 0;
  uint64_t cpu_budget_ns_ = 0;
  bool killed_ = false;
  bool kill_sent_ = false;
  bool pids_hit_ = false;
  std::optional<LimitKind> reason_;
  std::optional<Outcome> outcome_;
  LimitEvents seen_events_;
};

// Which host fd the runtime gets at each number, and where egg-init moves
// it. runc and crun pass any number of fds (--preserve-fds); the runsc of
// this Debian release passes only 0-2, so there distinct fds are packed
// into those three.
struct FdPlan {
  std::vector<int> slots;
  std::vector<std::string> moves;  // "SLOT:TARGET" / "n:TARGET"
  int ready_slot = -1;
};

// A stdio fd on a character device (the caller's /dev/null or terminal)
// is replaced by `private_stdio`: crun and runsc give the stdio they are
// handed to the container's user, which would change the owner of the
// host's device node. Output meant for such a device is not kept.
int SafeStdio(int host, int private_stdio) {
  struct stat st;
  if (host >= 0 && ::fstat(host, &st) == 0 && S_ISCHR(st.st_mode)) {
    return private_stdio;
  }
  return host;
}

Result<FdPlan> PlanFds(const SandboxSpec& spec, bool gvisor, int ready_w,
                       int private_stdio) {
  std::vector<std::pair<int, int>> wanted = {
      // host fd, sandbox fd
      {SafeStdio(spec.stdin_fd(), private_stdio), 0},
      {SafeStdio(spec.stdout_fd(), private_stdio), 1},
      {SafeStdio(spec.stderr_fd(), private_stdio), 2}};
  for (const SandboxFd& f : spec.fds())
    wanted.push_back({f.host_fd, f.sandbox_fd});

  FdPlan plan;
  if (!gvisor) {
    for (const auto& [host, target] : wanted) {
      int slot = static_cast<int>(plan.slots.size());
      plan.slots.push_back(host);
      plan.moves.push_back(host < 0 ? "n:" + std::to_string(target)
                                    : std::to_string(slot) + ":" +
                                          std::to_string(target));
    }
    plan.ready_slot = static_cast<int>(plan.slots.size());
    plan.slots.push_back(ready_w);
    return plan;
  }
  for (const auto& [host, target] : wanted) {
    if (host < 0) {
      plan.moves.push_back("n:" + std::to_string(target));
      continue;
    }
    auto it = std::find(plan.slots.begin(), plan.slots.end(), host);
    if (it == plan.slots.end()) {
      if (plan.slots.size() == 3) {
        return Fail(Code::kNotSupported,
                    "gvisor: this runsc passes at most 3 distinct fds "
                    "(stdin, stdout, stderr and extra fds together)");
      }
      plan.slots.push_back(host);
      it = plan.slots.end() - 1;
    }
    plan.moves.push_back(std::to_string(it - plan.slots.begin()) + ":" +
                         std::to_string(target));
  }
  if (plan.slots.size() < 3) {
    plan.ready_slot = static_cast<int>(plan.slots.size());
    plan.slots.push_back(ready_w);
  }
  while (plan.slots.size() < 3) plan.slots.push_back(-1);
  return plan;
}

// Waits for egg-init's 'R' (or "E<reason>"), or for the runtime to end.
Status AwaitReady(int ready_r, int status_r, const std::string& dir,
                  const std::string& runtime) {
  uint64_t deadline = NowNs() + kStartDeadlineMs * 1000000ull;
  for (;;) {
    pollfd p[2] = {{ready_r, POLLIN, 0}, {status_r, POLLIN, 0}};
    uint64_t now = NowNs();
    if (now >= deadline) {
      return Fail(Code::kSandboxSetup,
                  runtime + " did not start the sandbox within " +
                      std::to_string(kStartDeadlineMs / 1000) + " s");
    }
    int n = RetryEintr([&] {
      return ::poll(p, 2, static_cast<int>((deadline - now) / 1000000 + 1));
    });
    if (n <= 0) continue;
    if (p[0].revents & POLLIN) {
      char buf[512];
      ssize_t got =
          RetryEintr([&] { return ::read(ready_r, buf, sizeof(buf)); });
      if (got > 0 && buf[0] == 'R') return {};
      if (got > 1 && buf[0] == 'E') {
        return Fail(Code::kSandboxSetup,
                    "sandbox setup failed: " + std::string(buf + 1, got - 1));
      }
    }
    if (p[1].revents & (POLLIN | POLLHUP)) {
      std::string why = Tail(dir + "/runtime.log");
      return Fail(Code::kSandboxSetup, runtime +
                                           " failed to start the sandbox" +
                                           (why.empty() ? "" : ": " + why));
    }
  }
}

// Maps a sandbox path to the host through the spec's binds (best effort,
// for a clear error before the runtime starts).
std::string HostPathOf(const SandboxSpec& spec, const std::string& path) {
  std::string best_host, best_target;
  auto consider = [&](const std::string& host, const std::string& target) {
    if ((path == target || path.rfind(target + "/", 0) == 0) &&
        target.size() > best_target.size()) {
      best_host = host;
      best_target = target;
    }
  };
  if (!spec.root_folder().empty()) consider(spec.root_folder(), "");
  for (const SandboxBind& b : spec.root_parts()) consider(b.host, b.sandbox);
  for (const SandboxBind& b : spec.binds()) consider(b.host, b.sandbox);
  if (best_host.empty()) return "";
  return best_host + path.substr(best_target.size());
}

std::atomic<uint64_t> run_counter{0};

}  // namespace

bool IsRefusedForkLine(std::string_view line) {
  size_t at = line.find("strace.go:");
  if (at == std::string_view::npos) return false;
  if (line.find(" errno=11 (", at) == std::string_view::npos) return false;
  for (const char* call :
       {" X clone(", " X clone3(", " X fork(", " X vfork("}) {
    if (line.find(call, at) != std::string_view::npos) return true;
  }
  return false;
}

uint64_t SentryLog::Refused() {
  Read();
  return refused_;
}

void SentryLog::Read() {
  if (path_.empty()) return;
  if (!fd_.valid()) {
    int fd = ::open(path_.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return;  // the Sentry has not started yet
    fd_ = UniqueFd(fd);
  }
  char buf[1 << 16];
  for (int i = 0; i < 256; ++i) {
    ssize_t n = RetryEintr(
        [&] { return ::pread(fd_.get(), buf, sizeof(buf), offset_); });
    if (n <= 0) break;
    offset_ += static_cast<uint64_t>(n);
    Scan(std::string_view(buf, static_cast<size_t>(n)));
  }
  uint64_t done = offset_ & ~uint64_t{4095};
  if (done > 0) {
    (void)::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                      static_cast<off_t>(done));
  }
}

void SentryLog::Scan(std::string_view bytes) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t nl = bytes.find('\n', pos);
    if (nl == std::string_view::npos) {
      // Lines of interest are short; a longer one is dropped.
      if (partial_.size() < 8192) partial_.append(bytes.substr(pos));
      return;
    }
    partial_.append(bytes.substr(pos, nl - pos));
    if (IsRefusedForkLine(partial_)) ++refused_;
    partial_.clear();
    pos = nl + 1;
  }
}

Result<std::string> FindHostProgram(const std::string& name,
                                    const std::string& package) {
  for (const char* dir : {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
                          "/usr/bin", "/sbin", "/bin"}) {
    std::string path = std::string(dir) + "/" + name;
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return Fail(Code::kNotSupported, "'" + name +
                                       "' is not installed (Debian "
                                       "package " +
                                       package + ")");
}

Result<std::string> FindGuestInit() {
  if (const char* env = std::getenv("EGG_INIT"); env && *env) {
    if (::access(env, X_OK) == 0) return std::string(env);
    return Fail(Code::kNotFound, "EGG_INIT '" + std::string(env) +
                                     "' is not an executable file");
  }
  std::string dir = ExeDir();
  for (int up = 0; up < 3 && !dir.empty(); ++up) {
    std::string path = dir + "/egg-init";
    if (::access(path.c_str(), X_OK) == 0) return path;
    dir = dir.substr(0, dir.rfind('/'));
  }
  return Fail(Code::kNotFound,
              "egg-init was not found beside the program (set EGG_INIT)");
}

Result<std::string> MakeRunDir(const std::string& kind) {
  ::mkdir("/run", 0755);
  if (::mkdir(kIsolationStateDir, 0711) != 0 && errno != EEXIST) {
    return Fail(ErrnoError(std::string("making '") + kIsolationStateDir + "'"));
  }
  std::string tmpl = std::string(kIsolationStateDir) + "/" + kind + "-" +
                     std::to_string(::getpid()) + "-" +
                     std::to_string(run_counter.fetch_add(1)) + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return Fail(ErrnoError("making a run folder in '" +
                           std::string(kIsolationStateDir) + "'"));
  }
  ::chmod(tmpl.c_str(), 0711);
  return tmpl;
}

void RemoveRunDir(const std::string& dir) {
  // Mounts made in the run folder (the scratch tmpfs) go first, so that
  // removing the tree never reaches into them.
  auto mounts = ReadFileToString("/proc/self/mounts", 4 << 20);
  if (mounts) {
    size_t pos = 0;
    while ((pos = mounts->find(" " + dir + "/", pos)) != std::string::npos) {
      size_t start = pos + 1;
      size_t end = mounts->find(' ', start);
      std::string point = mounts->substr(start, end - start);
      ::umount2(point.c_str(), MNT_DETACH);
      pos = end;
    }
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
}

void SweepStaleIsolationState() {
  DIR* d = ::opendir(kIsolationStateDir);
  if (d != nullptr) {
    std::vector<std::string> stale;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name.rfind("oci-", 0) != 0 && name.rfind("vm-", 0) != 0) continue;
      size_t dash = name.find('-');
      pid_t owner = std::atoi(name.c_str() + dash + 1);
      if (owner > 0 && ::kill(owner, 0) != 0 && errno == ESRCH) {
        stale.push_back(name);
      }
    }
    ::closedir(d);
    for (const std::string& name : stale) {
      std::string dir = std::string(kIsolationStateDir) + "/" + name;
      LogDebug("removing stale run folder '" + dir + "'");
      // A container whose supervisor died too: its runtime deletes it.
      auto runtime = ReadFileToString(dir + "/runtime", 4096);
      if (runtime && !runtime->empty() && runtime->front() == '/') {
        std::string cmd;
        pid_t pid = ::fork();
        if (pid == 0) {
          int null = ::open("/dev/null", O_RDWR);
          ::dup2(null, 0);
          ::dup2(null, 1);
          ::dup2(null, 2);
          std::string root = dir + "/state";
          ::execl(runtime->c_str(), runtime->c_str(), "--root", root.c_str(),
                  "delete", "--force", name.c_str(), nullptr);
          ::_exit(127);
        }
        if (pid > 0) ::waitpid(pid, nullptr, 0);
      }
      RemoveRunDir(dir);
    }
  }
  RemoveStaleContainerCgroups();
}

Result<std::unique_ptr<Sandbox>> StartOciSandbox(const SandboxSpec& spec) {
  bool gvisor = spec.backend() == SandboxBackend::kGvisor;
  std::string runtime_name = gvisor ? "runsc" : spec.oci_runtime();
  if (::geteuid() != 0) {
    return Fail(Code::kNotSupported,
                std::string(SandboxBackendName(spec.backend())) +
                    " backend: egg must run as root to use " + runtime_name);
  }
  if (gvisor && !spec.devices().empty()) {
    return Fail(Code::kNotSupported,
                "gvisor backend: granted devices are not supported: gVisor's "
                "own kernel serves /dev and passes no host device through");
  }
  auto runtime = FindHostProgram(runtime_name, runtime_name);
  if (!runtime) return Fail(runtime.error());
  auto init = FindGuestInit();
  if (!init) return Fail(init.error());
  std::string command_host = HostPathOf(spec, spec.argv()[0]);
  if (!command_host.empty() && ::access(command_host.c_str(), F_OK) != 0 &&
      errno == ENOENT) {
    return Fail(Code::kSandboxSetup, "sandbox setup failed: exec '" +
                                         spec.argv()[0] +
                                         "': no such file in the sandbox");
  }
  SweepStaleIsolationState();

  // The run folder: state, bundle, scratch, seccomp, runtime log.
  auto dir_made = MakeRunDir("oci");
  if (!dir_made) return Fail(dir_made.error());
  std::string dir = *dir_made;
  struct DirGuard {
    std::string dir;
    ~DirGuard() {
      if (!dir.empty()) RemoveRunDir(dir);
    }
  } guard{dir};
  std::string id = dir.substr(dir.rfind('/') + 1);
  if (auto s = WriteFileAtomic(dir + "/runtime", *runtime, 0644, false); !s) {
    return Fail(s.error());
  }

  // Scratch: one tmpfs on the host, so its use can be measured and it
  // dies with the run, whatever the runtime does inside.
  std::string scratch = dir + "/scratch";
  uint64_t size = *spec.limits().scratch_bytes;
  std::string opts = "size=" + std::to_string(size) + ",nr_inodes=" +
                     std::to_string(std::max<uint64_t>(1024, size / 4096)) +
                     ",mode=1777";
  if (::mkdir(scratch.c_str(), 0700) != 0 ||
      ::mount("egg-scratch", scratch.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
              opts.c_str()) != 0) {
    return Fail(ErrnoError("mounting the scratch tmpfs at '" + scratch + "'"));
  }
  auto scratch_fd = OpenFile(scratch, O_RDONLY | O_DIRECTORY);
  if (!scratch_fd) return Fail(scratch_fd.error());

  // gVisor: the Sentry's log, where its strace of the fork calls shows
  // the forks the guest's task limit refused (SentryLog).
  std::string sentry_log;
  if (gvisor) {
    sentry_log = dir + "/sentry";
    std::string log_opts =
        "size=" + std::to_string(kSentryLogBytes) + ",nr_inodes=64,mode=0700";
    if (::mkdir(sentry_log.c_str(), 0700) != 0 ||
        ::mount("egg-sentry-log", sentry_log.c_str(), "tmpfs",
                MS_NOSUID | MS_NODEV | MS_NOEXEC, log_opts.c_str()) != 0) {
      return Fail(ErrnoError("mounting the Sentry's log tmpfs at '" +
                             sentry_log + "'"));
    }
  }

  // Seccomp: the namespaces backend's own programs, loaded by egg-init.
  auto program = BuildSeccompProgram();
  if (!program) return Fail(program.error());
  std::string seccomp = dir + "/seccomp";
  if (auto s = WriteFileAtomic(
          seccomp,
          guest::EncodeSeccompFile(program->code, program->ioctl_guard), 0644,
          false);
      !s) {
    return Fail(s.error());
  }

  // The output folder belongs to the sandbox's identity on the host.
  if (!spec.output().empty()) {
    if (auto s = ChownFolder(spec.output(), kOciNobody, kOciNobody); !s) {
      return Fail(s.error().Wrap("giving the output folder to the sandbox "
                                 "user"));
    }
  }

  ContainerCgroup cgroup = ContainerCgroup::Create(runtime_name == "crun");
  const Limits& limits = spec.limits();
  if (cgroup.has_memory()) {
    if (auto s = cgroup.SetMemory(*limits.memory_bytes); !s) {
      return Fail(s.error());
    }
  } else {
    LogWarning("no memory cgroup: the " + runtime_name +
               " sandbox has no memory limit");
  }
  if (cgroup.has_pids()) {
    if (auto s = cgroup.SetPids(HostTaskLimit(gvisor, *limits.processes)); !s) {
      return Fail(s.error());
    }
  } else {
    LogWarning("no pids cgroup: the " + runtime_name +
               " sandbox has no process limit");
  }

  // Pipes: ready (egg-init -> egg), ctl (egg -> supervisor), status.
  int ready[2], ctl[2], status[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) return Fail(ErrnoError("pipe"));
  UniqueFd ready_r(ready[0]), ready_w(ready[1]);
  if (::pipe2(ctl, O_CLOEXEC) != 0) return Fail(ErrnoError("pipe"));
  UniqueFd ctl_r(ctl[0]), ctl_w(ctl[1]);
  if (::pipe2(status, O_CLOEXEC) != 0) return Fail(ErrnoError("pipe"));
  UniqueFd status_r(status[0]), status_w(status[1]);
  // The runtimes' stdio. Not the host's /dev/null: crun and runsc give
  // their stdio to the container's user (fchown), which made the host's
  // /dev/null nobody's. A private file in the run folder does as well:
  // with one shared offset and O_APPEND, reads always meet its end (EOF,
  // as /dev/null gives) and writes land in it, bounded by RLIMIT_FSIZE
  // inside the container and removed with the run folder.
  auto devnull =
      OpenFile(dir + "/stdio", O_RDWR | O_CREAT | O_EXCL | O_APPEND, 0600);
  if (!devnull) return Fail(devnull.error());

  auto fds = PlanFds(spec, gvisor, ready_w.get(), devnull->get());
  if (!fds) return Fail(fds.error());

  BundlePlan bundle;
  bundle.dir = dir;
  bundle.gvisor = gvisor;
  bundle.init_host = *init;
  bundle.seccomp_host = seccomp;
  bundle.scratch_host = scratch;
  bundle.cgroup_name = cgroup.runtime_path();
  bundle.args = {kOciInitPath, "shim"};
  for (const std::string& m : fds->moves) {
    bundle.args.push_back("--fd");
    bundle.args.push_back(m);
  }
  if (fds->ready_slot >= 0) {
    bundle.args.push_back("--ready-fd");
    bundle.args.push_back(std::to_string(fds->ready_slot));
  }
  bundle.args.push_back("--seccomp");
  bundle.args.push_back(kOciSeccompPath);
  bundle.args.push_back("--");
  for (const std::string& a : spec.argv()) bundle.args.push_back(a);
  if (auto s = WriteBundle(spec, bundle); !s) return Fail(s.error());

  SupervisorPlan plan;
  std::string state = dir + "/state";
  std::string log = dir + "/runtime.log";
  plan.run.args = {*runtime, "--root", state, "--log", log};
  if (gvisor) {
    // ptrace: the kvm platform hangs on hosts with a paravirtual KVM.
    plan.run.args.push_back("--platform=ptrace");
    plan.run.args.push_back(spec.network() ? "--network=host"
                                           : "--network=none");
    plan.run.args.push_back("--debug-log=" + sentry_log + "/%COMMAND%.log");
    plan.run.args.push_back("--strace");
    plan.run.args.push_back("--strace-syscalls=clone,clone3,fork,vfork");
  }
  plan.run.args.insert(plan.run.args.end(),
                       {"run", "--bundle", dir + "/bundle"});
  if (!gvisor) {
    plan.run.args.push_back("--preserve-fds");
    plan.run.args.push_back(std::to_string(fds->slots.size() - 3));
  }
  plan.run.args.push_back(id);
  plan.del.args = {*runtime, "--root", state, "delete", "--force", id};
  auto rm = FindHostProgram("rm", "coreutils");
  plan.rm.args = {rm ? *rm : "/bin/rm", "-rf", "--one-file-system", dir};
  plan.run.Freeze();
  plan.del.Freeze();
  plan.rm.Freeze();
  plan.slots = fds->slots;
  plan.devnull = devnull->get();
  plan.ctl = ctl_r.get();
  plan.status = status_w.get();
  if (runtime_name == "crun") plan.hide_cgroup2 = HybridCgroup2Mount();
  plan.scratch = scratch;
  plan.sentry_log = sentry_log;
  for (const std::string& d : cgroup.dirs()) {
    plan.cgroup_dirs.push_back(d + "/c");
    plan.cgroup_dirs.push_back(d);
  }
  LogDebug("starting " + runtime_name + " bundle '" + dir + "'");

  pid_t pid = ::fork();
  if (pid == 0) Supervise(plan);
  if (pid < 0) return Fail(ErrnoError("fork"));
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  ctl_r.Reset();
  status_w.Reset();
  ready_w.Reset();
  guard.dir.clear();  // the sandbox (or the supervisor) owns it now

  auto sandbox = std::make_unique<OciSandbox>(
      pid, std::move(pidfd), std::move(ctl_w), std::move(status_r), dir,
      std::move(*scratch_fd), std::move(cgroup), limits, gvisor,
      gvisor ? sentry_log + "/boot.log" : "");
  if (fds->ready_slot >= 0) {
    if (auto s =
            AwaitReady(ready_r.get(), sandbox->status_fd(), dir, runtime_name);
        !s) {
      return Fail(s.error());  // the destructor kills and cleans up
    }
  }
  return std::unique_ptr<Sandbox>(std::move(sandbox));
}

}  // namespace egg::sandbox_internal
