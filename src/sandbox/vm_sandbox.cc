// The vm backend: a QEMU microvm guest. See vm_backend.h and
// docs/ISOLATION.md ("The micro-VM").
//
//   egg ──socketpair── QEMU chardev ── virtio-serial "egg.status" ── PID 1
//   spec fd (socket) ── QEMU chardev ── virtio-serial "egg.fd.N" ── cell fd N
//   disks: runtime root (erofs, cached), read-only binds (erofs), /out (ext4
//   image, read back with debugfs after the run)
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "common/atomic_file.h"
#include "common/fd.h"
#include "egg/hash.h"
#include "guest/seccomp_file.h"
#include "guest/vm_plan.h"
#include "sandbox/log.h"
#include "sandbox/oci_backend.h"
#include "sandbox/seccomp_filter.h"
#include "sandbox/vm_backend.h"
#include "sandbox/vm_initramfs.h"
#include "sandbox/vm_root.h"
#include "sandbox/vm_share.h"

namespace egg::sandbox_internal {
namespace {

namespace fs = std::filesystem;

// Booting the guest up to the cell's first instruction; TCG is slow.
constexpr uint64_t kBootTimeoutMs = 60000;
// After the guest's own wall limit: flushing /out and the reboot.
constexpr uint64_t kWallGraceMs = 15000;
// After Kill(): PID 1 kills the cell, flushes /out and reboots.
constexpr uint64_t kKillGraceMs = 5000;
// PID 1 answers a control line within this (TCG is slow).
constexpr uint64_t kControlTimeoutMs = 10000;
// Guest memory beyond the cell's limit: kernel, PID 1, tmpfs metadata.
constexpr uint64_t kGuestOverheadBytes = 160ull << 20;
constexpr char kErofsUuid[] = "6567672d-766d-4000-8000-000000000001";

uint64_t NowMs() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

std::string CacheRoot() {
  const char* env = ::getenv("EGG_VM_CACHE");
  return env != nullptr && *env == '/' ? env : "/var/cache/egg-vm";
}

// The newest folder scripts/vm-kernel.sh made.
Result<std::string> FindKernelDir() {
  if (const char* env = ::getenv("EGG_VM_KERNEL_DIR"); env && *env == '/') {
    return std::string(env);
  }
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(CacheRoot(), ec)) {
    std::string p = e.path();
    if (fs::exists(p + "/vmlinuz") && fs::exists(p + "/modules.load") &&
        fs::exists(p + "/SOURCE")) {
      found.push_back(p);
    }
  }
  if (found.empty()) {
    return Fail(Code::kNotSupported, "no guest kernel in '" + CacheRoot() +
                                         "' (run scripts/vm-kernel.sh)");
  }
  std::sort(found.begin(), found.end());
  return found.back();
}

// Runs a host tool to completion, its output in `log`.
Status RunTool(const std::vector<std::string>& argv, const std::string& log) {
  pid_t pid = ::fork();
  if (pid < 0) return Fail(ErrnoError("fork"));
  if (pid == 0) {
    int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    int null = ::open("/dev/null", O_RDONLY);
    if (out >= 0) {
      ::dup2(out, 1);
      ::dup2(out, 2);
    }
    if (null >= 0) ::dup2(null, 0);
    std::vector<char*> args;
    for (const std::string& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  if (RetryEintr([&] { return ::waitpid(pid, &status, 0); }) < 0) {
    return Fail(ErrnoError("waiting for '" + argv[0] + "'"));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Fail(Code::kSandboxSetup,
                "'" + argv[0] + "' failed (see '" + log + "')");
  }
  return {};
}

Status MakeErofs(const std::string& mkfs, const std::string& image,
                 const std::string& folder, const std::string& log) {
  // Fixed time, owner and UUID, no xattrs: same folder, same image.
  return RunTool({mkfs, "--quiet", "-T0", "--all-root", "-x-1",
                  std::string("-U") + kErofsUuid, image, folder},
                 log);
}

// Kept up to date with MakeErofs: a change of its options or of the
// image layout must change this, so that older images are not reused.
constexpr char kImageFormat[] = "e1";

// The runtime root's image. Named by the runtime's tree digest when the
// spec carries it; otherwise by the folder's identity (runtime folders
// in the store are immutable and named by digest; tests pass others).
Result<CachedImage> RootImage(const std::string& mkfs, const SandboxSpec& spec,
                              const std::string& log) {
  const std::string& folder = spec.root_folder();
  std::string name;
  if (spec.root_digest()) {
    name = std::string("root-") + kImageFormat + "-" +
           DigestHex(*spec.root_digest());
  } else {
    struct stat st;
    if (::stat(folder.c_str(), &st) != 0) {
      return Fail(ErrnoError("stat '" + folder + "'"));
    }
    std::string key = folder + "\n" + std::to_string(st.st_dev) + "\n" +
                      std::to_string(st.st_ino) + "\n" +
                      std::to_string(st.st_mtim.tv_sec) + "." +
                      std::to_string(st.st_mtim.tv_nsec) + "\n" +
                      std::to_string(st.st_ctim.tv_sec) + "." +
                      std::to_string(st.st_ctim.tv_nsec);
    name = std::string("folder-") + kImageFormat + "-" +
           DigestHex(Sha256Of(key)).substr(0, 32);
  }
  return CachedErofs(VmImageCacheDir(), name, [&](const std::string& image) {
    return MakeErofs(mkfs, image, folder, log);
  });
}

// A composed root: the selection the guest needs (vm_root.h), staged in
// the run folder and imaged, cached by a key of its content.
Result<CachedImage> ComposedRootImage(const std::string& mkfs,
                                      const SandboxSpec& spec,
                                      const std::string& run_dir,
                                      const std::string& log) {
  auto selection = SelectComposedRoot(spec);
  if (!selection) return Fail(selection.error());
  std::string name = std::string("parts-") + kImageFormat + "-" +
                     SelectionKey(*selection).substr(0, 32);
  return CachedErofs(VmImageCacheDir(), name,
                     [&](const std::string& image) -> Status {
                       std::string stage = run_dir + "/root-stage";
                       std::error_code ec;
                       fs::remove_all(stage, ec);
                       if (auto s = StageSelection(*selection, stage); !s)
                         return s;
                       Status made = MakeErofs(mkfs, image, stage, log);
                       fs::remove_all(stage, ec);
                       return made;
                     });
}

// The host TSC in kHz, from the CPU's MHz; 0 if unknown.
uint64_t HostTscKhz() {
  auto text = ReadFileToString("/proc/cpuinfo", 1 << 20);
  if (!text) return 0;
  size_t pos = text->find("cpu MHz");
  if (pos == std::string::npos) return 0;
  pos = text->find(':', pos);
  if (pos == std::string::npos) return 0;
  return static_cast<uint64_t>(std::strtod(text->c_str() + pos + 1, nullptr) *
                               1000);
}

bool IsSocket(int fd) {
  struct stat st;
  return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

struct QemuFd {
  int host = -1;   // the fd in egg
  int child = -1;  // its number in QEMU
};

// Forks QEMU with `fds` at their numbers; it dies with this thread.
Result<pid_t> SpawnQemu(const std::vector<std::string>& argv,
                        const std::vector<QemuFd>& fds,
                        const std::string& log) {
  pid_t pid = ::fork();
  if (pid < 0) return Fail(ErrnoError("fork"));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    int null = ::open("/dev/null", O_RDONLY);
    std::vector<int> parked;
    for (const QemuFd& f : fds) parked.push_back(::fcntl(f.host, F_DUPFD, 200));
    for (size_t i = 0; i < fds.size(); ++i) ::dup2(parked[i], fds[i].child);
    ::dup2(null, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    std::vector<char*> args;
    for (const std::string& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

std::string LastGuestError(const std::string& dir) {
  std::string found;
  for (const char* name : {"/console.log", "/qemu.log"}) {
    auto text = ReadFileToString(dir + name, 1 << 20);
    if (!text) continue;
    std::istringstream lines(*text);
    for (std::string line; std::getline(lines, line);) {
      if (line.find("egg-init:") != std::string::npos ||
          line.find("qemu-system") != std::string::npos) {
        found = line;
      }
    }
  }
  return found.empty()
             ? "the guest ended during boot (see '" + dir + "/console.log')"
             : found;
}

// A fork of egg (no exec until egg is gone; async-signal-safe calls
// only) that removes the run folder if egg dies without doing it: it
// waits on a pipe egg holds, and on its end without a 'D' (done) execs
// rm. QEMU itself dies with egg (PR_SET_PDEATHSIG).
Result<UniqueFd> StartRunDirWatcher(const std::string& dir) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Fail(ErrnoError("pipe"));
  const char* rm =
      ::access("/usr/bin/rm", X_OK) == 0 ? "/usr/bin/rm" : "/bin/rm";
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return Fail(ErrnoError("fork"));
  }
  if (pid == 0) {
    ::setsid();
    // Holding none of egg's fds: a reader of egg's stdout must see its end.
    int keep = fds[0];
    for (int fd = 0; fd < 4096; ++fd) {
      if (fd != keep) ::close(fd);
    }
    // Detached from egg: a second fork makes init its parent.
    if (::fork() != 0) ::_exit(0);
    char c = 0;
    ssize_t n;
    do {
      n = ::read(keep, &c, 1);
    } while (n < 0 && errno == EINTR);
    if (n == 1 && c == 'D') ::_exit(0);
    timespec pause{0, 200000000};  // QEMU is dying with egg
    ::nanosleep(&pause, nullptr);
    const char* argv[] = {"rm", "-rf", "--", dir.c_str(), nullptr};
    ::execv(rm, const_cast<char* const*>(argv));
    ::_exit(127);
  }
  ::close(fds[0]);
  RetryEintr([&] { return ::waitpid(pid, nullptr, 0); });
  return UniqueFd(fds[1]);
}

bool SameFile(const fs::path& a, const fs::path& b) {
  struct stat sa, sb;
  if (::lstat(a.c_str(), &sa) != 0 || ::lstat(b.c_str(), &sb) != 0) {
    return false;
  }
  if (!S_ISREG(sa.st_mode) || !S_ISREG(sb.st_mode) ||
      sa.st_size != sb.st_size || sa.st_mtime != sb.st_mtime ||
      sa.st_mode != sb.st_mode) {
    return false;
  }
  auto x = ReadFileToString(a, 1ull << 40);
  auto y = ReadFileToString(b, 1ull << 40);
  return x && y && *x == *y;
}

// Copies one entry of the read-back /out (the run folder is on another
// file system than the output folder, so it cannot be renamed there).
Status CopyEntry(const fs::path& from, const fs::path& to) {
  struct stat st;
  if (::lstat(from.c_str(), &st) != 0) {
    return Fail(ErrnoError("lstat '" + from.string() + "'"));
  }
  std::error_code ec;
  if (S_ISDIR(st.st_mode)) {
    fs::create_directory(to, ec);
  } else if (S_ISLNK(st.st_mode)) {
    fs::copy_symlink(from, to, ec);
  } else if (S_ISREG(st.st_mode)) {
    fs::path tmp = to.string() + ".egg-vm-tmp";
    fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
    if (!ec) fs::rename(tmp, to, ec);
    if (ec) fs::remove(tmp);
  } else {
    return {};  // devices, fifos: never results
  }
  if (ec)
    return Fail(Code::kIo, "copying '" + from.string() + "' to '" +
                               to.string() + "': " + ec.message());
  timespec times[2] = {st.st_atim, st.st_mtim};
  // The host's nobody, as on the other backends: the guest's uid 1000 may
  // be a real account on the host.
  ::lchown(to.c_str(), kOciNobody, kOciNobody);
  if (!S_ISLNK(st.st_mode)) ::chmod(to.c_str(), st.st_mode & 07777);
  ::utimensat(AT_FDCWD, to.c_str(), times, AT_SYMLINK_NOFOLLOW);
  return {};
}

// Makes `dst` hold what `src` holds; unchanged files are left alone.
Status MirrorTree(const fs::path& src, const fs::path& dst) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dst, ec)) {
    if (!fs::exists(fs::symlink_status(src / e.path().filename()))) {
      fs::remove_all(e.path(), ec);
    }
  }
  for (const auto& e : fs::directory_iterator(src, ec)) {
    fs::path target = dst / e.path().filename();
    fs::file_status here = fs::symlink_status(e.path());
    fs::file_status there = fs::symlink_status(target);
    if (SameFile(e.path(), target)) continue;
    if (!(fs::is_directory(here) && fs::is_directory(there)) &&
        fs::exists(there)) {
      fs::remove_all(target, ec);
    }
    if (auto s = CopyEntry(e.path(), target); !s) return s;
    if (fs::is_directory(here)) {
      if (auto s = MirrorTree(e.path(), target); !s) return s;
    }
  }
  if (ec)
    return Fail(Code::kIo, "reading '" + src.string() + "': " + ec.message());
  return {};
}

class VmSandbox : public Sandbox {
 public:
  VmSandbox(const SandboxSpec& spec, std::string dir, pid_t qemu,
            UniqueFd status, std::string debugfs, uint64_t started_ms,
            UniqueFd watcher, VirtiofsServer share, std::vector<UniqueFd> locks)
      : watcher_(std::move(watcher)),
        share_(std::move(share)),
        locks_(std::move(locks)),
        dir_(std::move(dir)),
        output_(spec.output()),
        qemu_(qemu),
        status_(std::move(status)),
        debugfs_(std::move(debugfs)),
        limits_(spec.limits()),
        deadline_ms_(started_ms + *spec.limits().wall_ms + kWallGraceMs),
        wall_ms_(*spec.limits().wall_ms) {}

  ~VmSandbox() override {
    // A Kill() in flight: let PID 1 finish (it flushes /out) for a while.
    while (!outcome_ && killed_ && !qemu_killed_) {
      auto o = Poll();
      if (!o) break;
      if (!*o) ::usleep(20000);
    }
    if (!outcome_) {
      ::kill(qemu_, SIGKILL);
      RetryEintr([&] { return ::waitpid(qemu_, nullptr, 0); });
    }
    StopVirtiofsd(share_);
    if (!::getenv("EGG_VM_KEEP")) RemoveRunDir(dir_);
    (void)WriteAll(watcher_.get(), "D");
  }

  int pid() const override { return qemu_; }

  // Asks PID 1 to kill the cell's group and end as usual (so /out is
  // flushed and read back); QEMU itself is SIGKILLed if the guest has not
  // ended within kKillGraceMs.
  Status Kill() override {
    if (outcome_ || killed_) return {};
    killed_ = true;
    kill_deadline_ms_ = NowMs() + kKillGraceMs;
    guest::VmControl c;
    c.op = 'K';
    c.seq = ++seq_;
    if (!Send(c)) return KillQemu();
    return {};
  }

  Result<std::optional<Outcome>> Poll() override {
    if (outcome_) return outcome_;
    ReadStatus();
    if (!killed_ && NowMs() >= deadline_ms_) {
      wall_ = true;
      if (auto s = Kill(); !s) return Fail(s.error());
    }
    if (killed_ && !qemu_killed_ && NowMs() >= kill_deadline_ms_) {
      if (auto s = KillQemu(); !s) return Fail(s.error());
    }
    int status = 0;
    pid_t got = ::waitpid(qemu_, &status, WNOHANG);
    if (got == 0) return std::optional<Outcome>();
    if (got < 0) return Fail(ErrnoError("waiting for QEMU"));
    ReadStatus();
    Finish();
    return outcome_;
  }

  Result<Outcome> Wait() override {
    for (;;) {
      auto o = Poll();
      if (!o) return Fail(o.error());
      if (*o) return **o;
      pollfd p{status_.get(), POLLIN, 0};
      ::poll(&p, 1, 50);
    }
  }

  Result<Usage> GetUsage() override {
    return outcome_ ? outcome_->usage : Usage{};
  }

  Status SetLimits(const Limits& limits) override {
    if ((limits.memory_bytes && *limits.memory_bytes > *limits_.memory_bytes) ||
        (limits.processes && *limits.processes > *limits_.processes)) {
      return Fail(Code::kInvalidArgument,
                  "limits may not be raised above the sandbox's own");
    }
    if (limits.wall_ms) deadline_ms_ = NowMs() + *limits.wall_ms + kWallGraceMs;
    guest::VmControl c;
    c.op = 'L';
    c.seq = ++seq_;
    c.memory_bytes = limits.memory_bytes.value_or(0);
    c.processes = limits.processes.value_or(0);
    c.cpu_ms = limits.cpu_ms.value_or(0);
    c.wall_ms = limits.wall_ms.value_or(0);
    if (!limits.wall_ms) {
      deadline_ms_ = NowMs() + wall_ms_ + kWallGraceMs;
    } else {
      wall_ms_ = *limits.wall_ms;
    }
    return Request(c);
  }

  // The guest's OOM kills and refused forks so far (an 'E' request), so
  // that the hatcher charges a limit to the cell that met it; once the
  // guest has ended, the counts of its last report.
  LimitEvents GetLimitEvents() override {
    if (outcome_) return events_;
    guest::VmControl c;
    c.op = 'E';
    c.seq = ++seq_;
    if (!Request(c)) return events_;
    std::string want = "\nV " + std::to_string(c.seq) + " ";
    size_t at = text_.find(want);
    if (at == std::string::npos) return events_;
    size_t end = text_.find('\n', at + 1);
    std::istringstream words(
        text_.substr(at + want.size(), end - at - want.size()));
    for (std::string w; words >> w;) {
      size_t eq = w.find('=');
      if (eq == std::string::npos) continue;
      uint64_t n = std::strtoull(w.c_str() + eq + 1, nullptr, 10);
      std::string key = w.substr(0, eq);
      if (key == "oom") events_.oom_kills = std::max(events_.oom_kills, n);
      if (key == "pids_max") events_.pids_max = std::max(events_.pids_max, n);
    }
    return events_;
  }

  Status SyncOutput() override {
    if (output_.empty() || outcome_) return {};
    guest::VmControl c;
    c.op = 'S';
    c.seq = ++seq_;
    if (auto s = Request(c); !s) return s;
    return ReadOutBack();
  }

 private:
  bool Send(const guest::VmControl& c) {
    std::string line = guest::EncodeVmControl(c);
    return ::send(status_.get(), line.data(), line.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(line.size());
  }

  Status KillQemu() {
    qemu_killed_ = true;
    if (::kill(qemu_, SIGKILL) != 0 && errno != ESRCH) {
      return Fail(ErrnoError("killing QEMU"));
    }
    return {};
  }

  // Sends `c` and waits for PID 1's answer. A guest that has already
  // ended has nothing left to change: that is not an error.
  Status Request(const guest::VmControl& c) {
    if (outcome_) return {};
    if (!Send(c)) {
      return Fail(Code::kSandboxSetup, "vm: the guest's control port is gone");
    }
    std::string want = "\nA " + std::to_string(c.seq);
    // "A 1" must not match the answer to 10.
    uint64_t deadline = NowMs() + kControlTimeoutMs;
    while (NowMs() < deadline) {
      ReadStatus();
      if (text_.find(want + "\n") != std::string::npos) return {};
      size_t at = text_.find(want + " ");
      if (at != std::string::npos) {
        size_t end = text_.find('\n', at + 1);
        if (end != std::string::npos) {
          return Fail(Code::kSandboxSetup,
                      "vm: guest:" + text_.substr(at + want.size(),
                                                  end - at - want.size()));
        }
      }
      siginfo_t info{};
      if (text_.find("X ") != std::string::npos ||
          ::waitid(P_PID, qemu_, &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
          info.si_pid != 0) {
        return {};  // the guest has ended: nothing left to change
      }
      pollfd p{status_.get(), POLLIN, 0};
      ::poll(&p, 1, 20);
    }
    return Fail(Code::kSandboxSetup,
                "vm: the guest did not answer a control message in " +
                    std::to_string(kControlTimeoutMs / 1000) + " s");
  }

  void ReadStatus() {
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(status_.get(), buf, sizeof(buf), MSG_DONTWAIT);
      if (n <= 0) break;
      text_.append(buf, n);
    }
  }

  std::map<std::string, std::string> Report() const {
    std::map<std::string, std::string> fields;
    size_t x = text_.find("X ");
    if (x == std::string::npos) return fields;
    std::istringstream words(text_.substr(x + 2, text_.find('\n', x) - x - 2));
    for (std::string w; words >> w;) {
      size_t eq = w.find('=');
      if (eq != std::string::npos) fields[w.substr(0, eq)] = w.substr(eq + 1);
    }
    return fields;
  }

  void Finish() {
    Outcome o;
    std::map<std::string, std::string> r = Report();
    auto num = [&r](const char* key) -> uint64_t {
      auto it = r.find(key);
      return it == r.end() ? 0 : std::strtoull(it->second.c_str(), nullptr, 10);
    };
    if (r.count("exited")) {
      o.exited = true;
      o.exit_code = static_cast<int>(num("exited"));
    } else {
      o.signal = r.count("signal") ? static_cast<int>(num("signal")) : SIGKILL;
    }
    o.killed = killed_ || r["stopped"] == "cpu" || r["stopped"] == "wall" ||
               r["stopped"] == "memory";
    o.usage.cpu_ms = num("cpu_ms");
    o.usage.memory_peak_bytes = num("peak");
    o.usage.scratch_used_bytes = num("scratch");
    o.processes_limit_hit = num("pids_max") > 0;
    events_.oom_kills = std::max(events_.oom_kills, num("oom"));
    events_.pids_max = std::max(events_.pids_max, num("pids_max"));
    o.scratch_full = num("scratch_full") > 0;
    bool failed = !o.exited || o.exit_code != 0;
    if (wall_ || r["stopped"] == "wall") {
      o.stopped_by = LimitKind::kWall;
    } else if (r["stopped"] == "cpu") {
      o.stopped_by = LimitKind::kCpu;
    } else if (num("oom") > 0) {
      o.stopped_by = LimitKind::kMemory;
    } else if (failed && o.processes_limit_hit) {
      o.stopped_by = LimitKind::kProcesses;
    } else if (failed && o.scratch_full) {
      o.stopped_by = LimitKind::kScratch;
    }
    if (!r.empty()) CopyOut();
    outcome_ = o;
  }

  void CopyOut() {
    if (auto s = ReadOutBack(); !s) {
      LogWarning("reading /out back: " + s.error().message());
    }
  }

  // /out: the guest's ext4 image, read in user space (debugfs), never
  // mounted on the host, into a fresh folder, then mirrored into the
  // output folder (unchanged files keep their inode, so a cell's changed
  // files can be told from the others).
  Status ReadOutBack() {
    if (output_.empty()) return {};
    std::string image = dir_ + "/out.img";
    std::string dump = dir_ + "/dump-" + std::to_string(++dumps_);
    std::error_code ec;
    fs::create_directory(dump, ec);
    if (ec) return Fail(Code::kIo, "creating '" + dump + "': " + ec.message());
    Status s = RunTool({debugfs_, "-R", "rdump / " + dump, image},
                       dir_ + "/debugfs.log");
    if (s) fs::remove_all(dump + "/lost+found", ec);
    if (s) s = MirrorTree(dump, output_);
    fs::remove_all(dump, ec);
    return s;
  }

  UniqueFd watcher_;
  VirtiofsServer share_;
  std::vector<UniqueFd> locks_;  // the cached images in use
  std::string dir_;
  std::string output_;
  pid_t qemu_;
  UniqueFd status_;
  std::string debugfs_;
  Limits limits_;
  uint64_t deadline_ms_;
  std::string text_ = "\n";  // every line, newline first, as sent
  LimitEvents events_;
  uint64_t wall_ms_;
  uint64_t seq_ = 0;
  uint64_t kill_deadline_ms_ = 0;
  int dumps_ = 0;
  bool killed_ = false;
  bool qemu_killed_ = false;
  bool wall_ = false;
  std::optional<Outcome> outcome_;
};

// Everything but QEMU itself: the disks, the initramfs, the plan.
struct VmFiles {
  std::vector<std::string> qemu_args;  // -drive/-device pairs
  guest::VmPlan plan;
};

}  // namespace

KvmProbe ProbeKvm() {
  static std::once_flag once;
  static KvmProbe probe;
  std::call_once(once, [] {
    const char* force = ::getenv("EGG_VM_ACCEL");
    if (force != nullptr && std::string(force) == "tcg") {
      probe = {false, "EGG_VM_ACCEL=tcg"};
      return;
    }
    if (::access("/dev/kvm", R_OK | W_OK) != 0) {
      probe = {false, "no usable /dev/kvm"};
      return;
    }
    auto kernel = FindKernelDir();
    auto qemu = FindHostProgram("qemu-system-x86_64", "qemu-system-x86");
    if (!kernel || !qemu) {
      probe = {false, "no kernel or QEMU to probe with"};
      return;
    }
    // A kernel with no root panics and reboots; -no-reboot ends QEMU. A
    // KVM that cannot run the guest leaves QEMU paused instead.
    std::vector<std::string> argv = {*qemu,
                                     "-M",
                                     "microvm",
                                     "-accel",
                                     "kvm",
                                     "-cpu",
                                     "host",
                                     "-m",
                                     "256",
                                     "-nodefaults",
                                     "-no-user-config",
                                     "-nographic",
                                     "-no-reboot",
                                     "-kernel",
                                     *kernel + "/vmlinuz",
                                     "-append",
                                     "console=ttyS0 panic=-1 quiet"};
    auto pid = SpawnQemu(argv, {}, "/dev/null");
    if (!pid) {
      probe = {false, pid.error().message()};
      return;
    }
    uint64_t deadline = NowMs() + 5000;
    int status = 0;
    while (::waitpid(*pid, &status, WNOHANG) == 0) {
      if (NowMs() > deadline) {
        ::kill(*pid, SIGKILL);
        ::waitpid(*pid, &status, 0);
        probe = {false,
                 "a probe guest did not finish booting under KVM in 5 s"};
        return;
      }
      ::usleep(20000);
    }
    // QEMU can also abort at once on a KVM it cannot drive.
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      probe = {false, "QEMU failed under KVM"};
      return;
    }
    probe = {true, ""};
  });
  return probe;
}

Result<std::unique_ptr<Sandbox>> StartVmSandbox(const SandboxSpec& spec) {
  // What this backend cannot carry is refused, never weakened: a host
  // device node means nothing to the guest's kernel, and egg never gives
  // a sandbox stdin (docs/ISOLATION.md).
  if (!spec.devices().empty()) {
    return Fail(Code::kNotSupported,
                "the vm backend cannot pass host devices into its guest");
  }
  if (spec.stdin_fd() >= 0) {
    return Fail(Code::kNotSupported, "the vm backend passes no stdin");
  }
  std::vector<SandboxBind> shared;
  for (const SandboxBind& b : spec.binds()) {
    if (b.host_path) {
      shared.push_back(b);
    } else if (b.writable) {
      return Fail(Code::kNotSupported,
                  "the vm backend has no writable exchange folder for '" +
                      b.sandbox + "'");
    }
  }
  if (::geteuid() != 0) {
    return Fail(Code::kNotSupported, "the vm backend needs root");
  }
  auto kernel = FindKernelDir();
  if (!kernel) return Fail(kernel.error());
  auto qemu = FindHostProgram("qemu-system-x86_64", "qemu-system-x86");
  if (!qemu) return Fail(qemu.error());
  auto mkfs = FindHostProgram("mkfs.erofs", "erofs-utils");
  if (!mkfs) return Fail(mkfs.error());
  auto mke2fs = FindHostProgram("mke2fs", "e2fsprogs");
  if (!mke2fs) return Fail(mke2fs.error());
  auto debugfs = FindHostProgram("debugfs", "e2fsprogs");
  if (!debugfs) return Fail(debugfs.error());
  auto init = FindGuestInit();
  if (!init) return Fail(init.error());

  SweepStaleIsolationState();
  auto dir_or = MakeRunDir("vm");
  if (!dir_or) return Fail(dir_or.error());
  std::string dir = *dir_or;
  struct Cleanup {
    std::string dir;
    bool armed = true;
    UniqueFd watcher;
    VirtiofsServer share;
    ~Cleanup() {
      if (!armed) return;
      StopVirtiofsd(share);
      if (!::getenv("EGG_VM_KEEP")) RemoveRunDir(dir);
      if (watcher.get() >= 0) (void)WriteAll(watcher.get(), "D");
    }
  } cleanup;
  cleanup.dir = dir;
  if (!::getenv("EGG_VM_KEEP")) {
    auto watcher = StartRunDirWatcher(dir);
    if (!watcher) return Fail(watcher.error());
    cleanup.watcher = std::move(*watcher);
  }
  std::string log = dir + "/tools.log";
  const Limits& limits = spec.limits();

  // Disks: the root, each read-only bind, /out.
  guest::VmPlan plan;
  std::vector<std::string> args;
  int serial = 0;
  auto add_disk = [&](const std::string& image, guest::VmDisk::Kind kind,
                      const std::string& target, bool readonly) {
    std::string id = "egg-" + std::to_string(serial++);
    args.push_back("-drive");
    args.push_back("id=" + id + ",file=" + image + ",format=raw,if=none" +
                   (readonly ? ",readonly=on" : ""));
    args.push_back("-device");
    args.push_back("virtio-blk-device,drive=" + id + ",serial=" + id);
    plan.disks.push_back({id, kind, target});
  };
  std::vector<UniqueFd> locks;
  auto root = spec.root_parts().empty()
                  ? RootImage(*mkfs, spec, log)
                  : ComposedRootImage(*mkfs, spec, dir, log);
  if (!root) return Fail(root.error());
  add_disk(root->path, guest::VmDisk::kRoot, "", true);
  locks.push_back(std::move(root->lock));
  for (const SandboxBind& b : spec.binds()) {
    if (b.host_path) continue;  // virtiofs, below
    bool file = !fs::is_directory(b.host);
    if (b.content && !file) {
      // The egg's data: cached by its tree digest.
      std::string name =
          std::string("data-") + kImageFormat + "-" + DigestHex(*b.content);
      auto image =
          CachedErofs(VmImageCacheDir(), name, [&](const std::string& path) {
            return MakeErofs(*mkfs, path, b.host, log);
          });
      if (!image) return Fail(image.error());
      add_disk(image->path, guest::VmDisk::kDir, b.sandbox, true);
      locks.push_back(std::move(image->lock));
      continue;
    }
    std::string image = dir + "/bind-" + std::to_string(serial) + ".erofs";
    std::string folder = b.host;
    if (file) {
      folder = dir + "/stage-" + std::to_string(serial);
      std::error_code ec;
      fs::create_directory(folder, ec);
      fs::copy_file(b.host, folder + "/f", ec);
      if (ec)
        return Fail(Code::kIo, "copying '" + b.host + "': " + ec.message());
    }
    if (auto s = MakeErofs(*mkfs, image, folder, log); !s)
      return Fail(s.error());
    add_disk(image, file ? guest::VmDisk::kFile : guest::VmDisk::kDir,
             b.sandbox, true);
  }
  if (!spec.output().empty()) {
    std::string image = dir + "/out.img";
    uint64_t kib = std::max<uint64_t>(*limits.scratch_bytes, 64ull << 20) >> 10;
    // No journal: debugfs reads the image as it is on disk.
    if (auto s =
            RunTool({*mke2fs, "-q", "-F", "-t", "ext4", "-O", "^has_journal",
                     "-E", "root_owner=1000:1000", image, std::to_string(kib)},
                    log);
        !s) {
      return Fail(s.error());
    }
    add_disk(image, guest::VmDisk::kOut, "/out", false);
  }

  // Granted host paths (virtiofs) and network (QEMU's user mode), each
  // only when granted: without a grant the guest has no such device.
  auto modules = ReadFileToString(*kernel + "/modules.load", 1 << 16);
  if (!modules) return Fail(modules.error());
  auto has_module = [&](const std::string& name) {
    return ("\n" + *modules).find("\n" + name + "\n") != std::string::npos;
  };
  std::string machine = "microvm";
  if (!shared.empty()) {
    if (!has_module("virtiofs.ko")) {
      return Fail(Code::kNotSupported,
                  "the guest kernel folder '" + *kernel +
                      "' has no virtiofs module (run scripts/vm-kernel.sh)");
    }
    std::string virtiofsd;
    for (const char* p :
         {"/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd"}) {
      if (virtiofsd.empty() && ::access(p, X_OK) == 0) virtiofsd = p;
    }
    if (virtiofsd.empty()) {
      return Fail(Code::kNotSupported,
                  "'virtiofsd' is not installed (Debian package "
                  "qemu-system-common or virtiofsd), needed for host paths");
    }
    auto server = StartVirtiofsd(virtiofsd, shared, dir);
    if (!server) return Fail(server.error());
    args.push_back("-chardev");
    args.push_back("socket,id=egg-fs,path=" + server->socket);
    args.push_back("-device");
    args.push_back(std::string("vhost-user-fs-device,chardev=egg-fs,tag=") +
                   guest::kVmShareTag);
    cleanup.share = std::move(*server);
    // vhost-user needs the guest's memory shared with virtiofsd.
    machine += ",memory-backend=egg-mem";
    for (size_t i = 0; i < shared.size(); ++i) {
      plan.shares.push_back(
          {std::to_string(i), shared[i].writable, shared[i].sandbox});
    }
  }
  if (spec.network()) {
    if (!has_module("virtio_net.ko")) {
      return Fail(Code::kNotSupported,
                  "the guest kernel folder '" + *kernel +
                      "' has no virtio_net module (run scripts/vm-kernel.sh)");
    }
    // No host port is forwarded into the guest.
    args.push_back("-netdev");
    args.push_back("user,id=egg-net,ipv6=off");
    args.push_back("-device");
    args.push_back("virtio-net-device,netdev=egg-net");
    plan.network = true;
  }

  // Ports: the status channel, then the cell's stdout, stderr, extra fds.
  int status_pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, status_pair) != 0) {
    return Fail(ErrnoError("socketpair"));
  }
  UniqueFd status(status_pair[0]);
  UniqueFd status_qemu(status_pair[1]);
  std::vector<QemuFd> fds;
  int next_fd = 10;
  args.push_back("-device");
  args.push_back("virtio-serial-device,max_ports=32");
  auto add_port = [&](int host_fd, const std::string& name) -> Status {
    std::string id = "c" + std::to_string(next_fd);
    if (IsSocket(host_fd)) {
      args.push_back("-chardev");
      args.push_back("socket,id=" + id + ",fd=" + std::to_string(next_fd));
    } else if (name == "egg.fd.1" || name == "egg.fd.2") {
      args.push_back("-chardev");
      args.push_back("file,id=" + id + ",path=/dev/fd/" +
                     std::to_string(next_fd) + ",append=on");
    } else {
      return Fail(Code::kNotSupported,
                  "the vm backend passes only sockets as extra fds");
    }
    fds.push_back({host_fd, next_fd++});
    args.push_back("-device");
    args.push_back("virtserialport,chardev=" + id + ",name=" + name);
    return {};
  };
  if (auto s = add_port(status_qemu.get(), "egg.status"); !s) {
    return Fail(s.error());
  }
  std::vector<std::pair<int, int>> cell_fds;
  if (spec.stdout_fd() >= 0) cell_fds.push_back({spec.stdout_fd(), 1});
  if (spec.stderr_fd() >= 0) cell_fds.push_back({spec.stderr_fd(), 2});
  for (const SandboxFd& f : spec.fds())
    cell_fds.push_back({f.host_fd, f.sandbox_fd});
  for (auto [host_fd, target] : cell_fds) {
    std::string name = "egg.fd." + std::to_string(target);
    if (auto s = add_port(host_fd, name); !s) return Fail(s.error());
    plan.ports.push_back({name, target});
  }

  // The plan and the initramfs.
  plan.argv = spec.argv();
  plan.env = spec.env();
  plan.cwd = spec.cwd();
  auto program = BuildSeccompProgram();
  if (!program) return Fail(program.error());
  plan.scratch_bytes = *limits.scratch_bytes;
  plan.memory_bytes = *limits.memory_bytes;
  plan.processes = *limits.processes;
  plan.cpu_ms = *limits.cpu_ms;
  plan.wall_ms = *limits.wall_ms;
  std::vector<CpioEntry> entries;
  auto init_bytes = ReadFileToString(*init, 64 << 20);
  if (!init_bytes) return Fail(init_bytes.error());
  entries.push_back({"init", S_IFREG | 0755, *init_bytes});
  for (const char* d : {"dev", "egg", "egg/modules", "mnt", "proc", "sys"}) {
    entries.push_back({d, S_IFDIR | 0755, ""});
  }
  entries.push_back({"dev/console", S_IFCHR | 0600, "", 5, 1});
  entries.push_back({"egg/plan", S_IFREG | 0400, guest::EncodeVmPlan(plan)});
  entries.push_back(
      {"egg/seccomp", S_IFREG | 0400,
       guest::EncodeSeccompFile(program->code, program->ioctl_guard)});
  const std::string* order = &*modules;
  entries.push_back({"egg/modules.load", S_IFREG | 0444, *order});
  std::istringstream names(*order);
  for (std::string name; std::getline(names, name);) {
    if (name.empty() || name.find('/') != std::string::npos) continue;
    auto ko = ReadFileToString(*kernel + "/modules/" + name, 64 << 20);
    if (!ko) return Fail(ko.error());
    entries.push_back({"egg/modules/" + name, S_IFREG | 0444, *ko});
  }
  std::string initrd = dir + "/initrd.cpio";
  if (auto s = WriteFileAtomic(initrd, WriteCpioNewc(std::move(entries)), 0600,
                               false);
      !s) {
    return Fail(s.error());
  }

  // QEMU: TCG unless a KVM probe boot worked.
  KvmProbe kvm = ProbeKvm();
  if (!kvm.works) {
    LogWarning("vm: KVM unusable (" + kvm.detail +
               "); running the guest under TCG emulation, which is slow");
  }
  uint64_t mem_mib = (*limits.memory_bytes + kGuestOverheadBytes) >> 20;
  std::string append = "console=ttyS0 quiet panic=-1 reboot=t";
  if (uint64_t khz = HostTscKhz(); khz > 0) {
    append += " tsc_early_khz=" + std::to_string(khz);
  }
  append += " -- vm";
  std::vector<std::string> argv = {*qemu,
                                   "-M",
                                   machine,
                                   "-accel",
                                   kvm.works ? "kvm" : "tcg",
                                   "-cpu",
                                   kvm.works ? "host" : "max",
                                   "-smp",
                                   "1",
                                   "-m",
                                   std::to_string(mem_mib),
                                   "-nodefaults",
                                   "-no-user-config",
                                   "-nographic",
                                   "-no-reboot",
                                   "-kernel",
                                   *kernel + "/vmlinuz",
                                   "-initrd",
                                   initrd,
                                   "-append",
                                   append,
                                   "-serial",
                                   "file:" + dir + "/console.log"};
  if (!shared.empty()) {
    argv.push_back("-object");
    argv.push_back("memory-backend-memfd,id=egg-mem,share=on,size=" +
                   std::to_string(mem_mib) + "M");
    // virtiofsd (libvhost-user) serves only virtio 1.0 devices; microvm's
    // virtio-mmio transports are legacy unless told otherwise.
    argv.push_back("-global");
    argv.push_back("virtio-mmio.force-legacy=false");
  }
  argv.insert(argv.end(), args.begin(), args.end());
  uint64_t started = NowMs();
  auto pid = SpawnQemu(argv, fds, dir + "/qemu.log");
  if (!pid) return Fail(pid.error());
  status_qemu.Reset();

  // Wait for PID 1's 'R' (or its error, or QEMU's end).
  std::string text;
  auto fail = [&](const std::string& why) -> Result<std::unique_ptr<Sandbox>> {
    ::kill(*pid, SIGKILL);
    RetryEintr([&] { return ::waitpid(*pid, nullptr, 0); });
    return Fail(Code::kSandboxSetup, "vm: " + why);
  };
  while (text.find('\n') == std::string::npos) {
    if (NowMs() - started > kBootTimeoutMs) {
      return fail("the guest did not start the command in " +
                  std::to_string(kBootTimeoutMs / 1000) + " s");
    }
    pollfd p{status.get(), POLLIN, 0};
    ::poll(&p, 1, 50);
    char buf[4096];
    ssize_t n = ::recv(status.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) text.append(buf, n);
    if (n > 0 || ::waitpid(*pid, nullptr, WNOHANG) == 0) continue;
    // QEMU is gone before the guest said anything.
    ::waitpid(*pid, nullptr, 0);
    return Fail(Code::kSandboxSetup, "vm: " + LastGuestError(dir));
  }
  if (text[0] != 'R') return fail(text.substr(1, text.find('\n') - 1));
  LogDebug("vm: guest ready in " + std::to_string(NowMs() - started) + " ms");
  cleanup.armed = false;
  auto box = std::make_unique<VmSandbox>(
      spec, dir, *pid, std::move(status), *debugfs, NowMs(),
      std::move(cleanup.watcher), std::move(cleanup.share), std::move(locks));
  return std::unique_ptr<Sandbox>(std::move(box));
}

}  // namespace egg::sandbox_internal
