// The child side of sandbox creation. Only system calls and stack buffers
// here: see child.h for why.
#include "sandbox/child.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

namespace egg::sandbox_internal {
namespace {

// Landlock ABI constants newer than this system's headers.
constexpr uint64_t kLlExecute = 1ull << 0;
constexpr uint64_t kLlWriteFile = 1ull << 1;
constexpr uint64_t kLlReadFile = 1ull << 2;
constexpr uint64_t kLlReadDir = 1ull << 3;
constexpr uint64_t kLlRefer = 1ull << 13;             // ABI 2
constexpr uint64_t kLlTruncate = 1ull << 14;          // ABI 3
constexpr uint64_t kLlIoctlDev = 1ull << 15;          // ABI 5
constexpr uint64_t kLlScopeAbstractUnix = 1ull << 0;  // ABI 6
constexpr uint64_t kLlScopeSignal = 1ull << 1;        // ABI 6

struct LandlockRulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};

struct LandlockPathBeneath {
  uint64_t allowed_access;
  int32_t parent_fd;
} __attribute__((packed));

// --- async-signal-safe output ---

size_t Length(const char* s) {
  size_t n = 0;
  while (s[n] != '\0') ++n;
  return n;
}

class Line {
 public:
  Line& Add(const char* s) {
    while (*s != '\0' && size_ < sizeof(buf_) - 1) buf_[size_++] = *s++;
    return *this;
  }
  Line& Add(long v) {
    char digits[24];
    int n = 0;
    bool negative = v < 0;
    unsigned long u = negative ? -static_cast<unsigned long>(v) : v;
    do {
      digits[n++] = static_cast<char>('0' + u % 10);
      u /= 10;
    } while (u != 0);
    if (negative) Add("-");
    while (n > 0 && size_ < sizeof(buf_) - 1) buf_[size_++] = digits[--n];
    return *this;
  }
  const char* data() const { return buf_; }
  size_t size() const { return size_; }

 private:
  char buf_[512];
  size_t size_ = 0;
};

int g_sync_fd = -1;
bool g_trace = false;
timespec g_trace_start;

// EGG_TRACE: one "T<us since the child started> <step>" record per step
// on the sync socket, printed by the parent; no allocation.
void TraceChild(const char* step) {
  if (!g_trace) return;
  timespec now;
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  long us = (now.tv_sec - g_trace_start.tv_sec) * 1000000L +
            (now.tv_nsec - g_trace_start.tv_nsec) / 1000L;
  Line line;
  line.Add("T").Add(us).Add(" us ").Add(step);
  ssize_t ignored = ::send(g_sync_fd, line.data(), line.size(), MSG_NOSIGNAL);
  (void)ignored;
}

[[noreturn]] void Die(const char* step, const char* detail, int err) {
  Line line;
  line.Add("E").Add(step);
  if (detail != nullptr) line.Add(" '").Add(detail).Add("'");
  if (err != 0) {
    const char* text = strerrordesc_np(err);
    line.Add(": ");
    if (text != nullptr) {
      line.Add(text);
    } else {
      line.Add("errno ").Add(static_cast<long>(err));
    }
  }
  if (g_sync_fd >= 0) {
    ssize_t ignored = ::send(g_sync_fd, line.data(), line.size(), MSG_NOSIGNAL);
    (void)ignored;
  }
  ::_exit(kChildSetupExit);
}

void Check(bool ok, const char* step, const char* detail = nullptr) {
  if (!ok) Die(step, detail, errno);
}

// mkdir -p for a path relative to the cwd (the new root).
void MakeParents(const char* relative, bool last_too) {
  char buf[4096];
  size_t len = Length(relative);
  if (len >= sizeof(buf)) Die("path too long", relative, 0);
  memcpy(buf, relative, len + 1);
  for (size_t i = 1; i <= len; ++i) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    if (buf[i] == '\0' && !last_too) break;
    char saved = buf[i];
    buf[i] = '\0';
    if (::mkdir(buf, 0755) != 0 && errno != EEXIST) {
      Die("creating mount point", relative, errno);
    }
    buf[i] = saved;
  }
}

// Clones a host path (before the new root hides it) and sets its flags.
int CloneTree(const PlanBind& b) {
  int fd = ::open_tree(AT_FDCWD, b.source.c_str(),
                       OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  Check(fd >= 0, "cloning mount of", b.source.c_str());
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_NOSUID;
  if (!b.writable) attr.attr_set |= MOUNT_ATTR_RDONLY;
  if (!b.device) attr.attr_set |= MOUNT_ATTR_NODEV;
  if (b.device) attr.attr_set |= MOUNT_ATTR_NOEXEC;
  Check(::mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr,
                        sizeof(attr)) == 0,
        "setting mount flags of", b.source.c_str());
  return fd;
}

void Attach(int tree_fd, const PlanBind& b) {
  if (b.directory) {
    MakeParents(b.target.c_str(), true);
  } else {
    MakeParents(b.target.c_str(), false);
    int fd = ::open(b.target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    Check(fd >= 0, "creating mount point", b.target.c_str());
    ::close(fd);
  }
  Check(::move_mount(tree_fd, "", AT_FDCWD, b.target.c_str(),
                     MOVE_MOUNT_F_EMPTY_PATH) == 0,
        "attaching mount at", b.target.c_str());
  ::close(tree_fd);
}

void SendFd(int fd) {
  char tag = 'F';
  iovec iov{&tag, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof(int));
  Check(::sendmsg(g_sync_fd, &msg, MSG_NOSIGNAL) == 1, "sending scratch fd");
}

void BringUpLoopback() {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  Check(s >= 0, "socket for loopback");
  ifreq ifr{};
  memcpy(ifr.ifr_name, "lo", 3);
  Check(::ioctl(s, SIOCGIFFLAGS, &ifr) == 0, "reading loopback flags");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  Check(::ioctl(s, SIOCSIFFLAGS, &ifr) == 0, "bringing loopback up");
  ::close(s);
}

void BuildRoot(const ChildPlan& plan) {
  // Nothing done below may reach the host's mount namespace.
  Check(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0,
        "making mounts private");

  // Clone every source first: the new root's tmpfs hides the host's /tmp.
  int root_fds[256], dev_fds[64], bind_fds[256];
  if (plan.root_binds.size() > 256 || plan.dev_binds.size() > 64 ||
      plan.binds.size() > 256) {
    Die("too many binds", nullptr, 0);
  }
  for (size_t i = 0; i < plan.root_binds.size(); ++i)
    root_fds[i] = CloneTree(plan.root_binds[i]);
  for (size_t i = 0; i < plan.dev_binds.size(); ++i)
    dev_fds[i] = CloneTree(plan.dev_binds[i]);
  for (size_t i = 0; i < plan.binds.size(); ++i)
    bind_fds[i] = CloneTree(plan.binds[i]);

  // New inodes need an owner mapped in our user namespace, so become the
  // sandbox user now. We were never root of this namespace (uid 0 is not
  // mapped), so the switch keeps the namespace capabilities the mounts
  // below need; DropPrivileges() clears them later.
  if (plan.drop_groups) {
    Check(::setgroups(0, nullptr) == 0, "clearing supplementary groups");
  }
  Check(::setresgid(kSandboxGid, kSandboxGid, kSandboxGid) == 0, "setresgid");
  Check(::setresuid(kSandboxUid, kSandboxUid, kSandboxUid) == 0, "setresuid");

  // The new root: a small tmpfs that becomes read-only at the end.
  Check(::mount("egg-root", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
                "size=1m,nr_inodes=4096,mode=0755") == 0,
        "mounting the root tmpfs");
  Check(::chdir("/tmp") == 0, "entering the new root");

  for (size_t i = 0; i < plan.root_binds.size(); ++i)
    Attach(root_fds[i], plan.root_binds[i]);
  for (const PlanSymlink& s : plan.root_symlinks) {
    MakeParents(s.linkpath.c_str(), false);
    Check(::symlink(s.target.c_str(), s.linkpath.c_str()) == 0,
          "creating symlink", s.linkpath.c_str());
  }

  // /proc of the sandbox's own PID namespace.
  MakeParents("proc", true);
  Check(::mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                "hidepid=2") == 0,
        "mounting /proc");

  // Scratch: one size-limited tmpfs seen as /tmp, /scratch and /dev/shm.
  MakeParents("tmp", true);
  Check(::mount("egg-scratch", "tmp", "tmpfs", MS_NOSUID | MS_NODEV,
                plan.tmpfs_options.c_str()) == 0,
        "mounting scratch");
  MakeParents("scratch", true);
  Check(::mount("tmp", "scratch", nullptr, MS_BIND, nullptr) == 0,
        "binding /scratch");

  // /dev: a few nodes bound from the host, then read-only.
  MakeParents("dev", true);
  Check(::mount("egg-dev", "dev", "tmpfs", MS_NOSUID | MS_NOEXEC,
                "size=64k,nr_inodes=64,mode=0755") == 0,
        "mounting /dev");
  for (size_t i = 0; i < plan.dev_binds.size(); ++i)
    Attach(dev_fds[i], plan.dev_binds[i]);
  Check(::symlink("/proc/self/fd", "dev/fd") == 0, "creating /dev/fd");
  Check(::symlink("/proc/self/fd/0", "dev/stdin") == 0, "creating /dev/stdin");
  Check(::symlink("/proc/self/fd/1", "dev/stdout") == 0,
        "creating /dev/stdout");
  Check(::symlink("/proc/self/fd/2", "dev/stderr") == 0,
        "creating /dev/stderr");
  MakeParents("dev/shm", true);
  Check(::mount("tmp", "dev/shm", nullptr, MS_BIND, nullptr) == 0,
        "binding /dev/shm");
  Check(::mount(nullptr, "dev", nullptr,
                MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC,
                nullptr) == 0,
        "making /dev read-only");

  for (size_t i = 0; i < plan.binds.size(); ++i)
    Attach(bind_fds[i], plan.binds[i]);

  // Enter the new root and drop the old one.
  Check(::mount(nullptr, ".", nullptr,
                MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
                nullptr) == 0,
        "making / read-only");
  Check(::syscall(SYS_pivot_root, ".", ".") == 0, "pivot_root");
  Check(::umount2(".", MNT_DETACH) == 0, "detaching the old root");
  Check(::chdir("/") == 0, "entering /");
}

void DropPrivileges(const ChildPlan& plan) {
  // The identity is already the sandbox user (BuildRoot); the namespace
  // capabilities still held go now, the bounding set first.
  for (int cap = 0; cap <= plan.last_cap; ++cap) {
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
      Die("dropping capability from the bounding set", nullptr, errno);
    }
  }
  Check(::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == 0,
        "clearing ambient capabilities");
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  Check(::syscall(SYS_capset, &header, data) == 0, "clearing capabilities");
  Check(::syscall(SYS_capget, &header, data) == 0, "reading capabilities");
  if (data[0].permitted != 0 || data[1].permitted != 0 ||
      data[0].effective != 0 || data[1].effective != 0) {
    Die("capabilities survived the drop", nullptr, 0);
  }
}

// The credential change cleared the parent-death signal; set it again
// and make sure the parent did not die in between.
void ArmParentDeath() {
  Check(::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) == 0, "PR_SET_PDEATHSIG");
  char byte;
  ssize_t n = ::recv(g_sync_fd, &byte, 1, MSG_DONTWAIT | MSG_PEEK);
  if (n == 0) ::_exit(kChildSetupExit);
}

void ApplyLandlock(const ChildPlan& plan) {
  if (plan.landlock_abi < 1) return;
  uint64_t all = (1ull << 13) - 1;
  if (plan.landlock_abi >= 2) all |= kLlRefer;
  if (plan.landlock_abi >= 3) all |= kLlTruncate;
  if (plan.landlock_abi >= 5) all |= kLlIoctlDev;
  LandlockRulesetAttr attr{all, 0, 0};
  size_t attr_size = 8;
  if (plan.landlock_abi >= 6) {
    attr.scoped = kLlScopeAbstractUnix | kLlScopeSignal;
    attr_size = sizeof(attr);
  } else if (plan.landlock_abi >= 4) {
    attr_size = 16;
  }
  int ruleset = static_cast<int>(
      ::syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0));
  Check(ruleset >= 0, "landlock_create_ruleset");

  auto allow = [&](const char* path, uint64_t access) {
    int fd = ::open(path, O_PATH | O_CLOEXEC);
    Check(fd >= 0, "opening for Landlock", path);
    LandlockPathBeneath rule{access & all, fd};
    Check(::syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH,
                    &rule, 0) == 0,
          "landlock_add_rule", path);
    ::close(fd);
  };
  allow("/", kLlExecute | kLlReadFile | kLlReadDir);
  allow("/tmp", all);  // also /scratch and /dev/shm: the same inode
  allow("/dev", kLlReadFile | kLlWriteFile | kLlTruncate | kLlIoctlDev);
  for (const std::string& path : plan.writable_targets) {
    allow(path.c_str(), all);
  }
  Check(::syscall(SYS_landlock_restrict_self, ruleset, 0) == 0,
        "landlock_restrict_self");
  ::close(ruleset);
}

// Puts plan.fds in place and closes every other fd but the sync socket.
void ArrangeFds(const ChildPlan& plan) {
  // Move sources above every target first so no dup2 clobbers a source.
  int base = plan.max_fd + 1;
  if (g_sync_fd <= plan.max_fd) {
    int moved = ::fcntl(g_sync_fd, F_DUPFD_CLOEXEC, base);
    Check(moved >= 0, "moving the sync socket");
    g_sync_fd = moved;
  }
  int staged[1100];
  if (plan.fds.size() > 1100) Die("too many fds", nullptr, 0);
  for (size_t i = 0; i < plan.fds.size(); ++i) {
    staged[i] = ::fcntl(plan.fds[i].from, F_DUPFD_CLOEXEC, base);
    Check(staged[i] >= 0, "staging an fd");
  }
  for (size_t i = 0; i < plan.fds.size(); ++i) {
    Check(::dup2(staged[i], plan.fds[i].to) == plan.fds[i].to, "placing an fd");
  }

  // Close everything that is neither a target nor the sync socket.
  bool keep[1024] = {};
  for (const PlanFd& f : plan.fds) keep[f.to] = true;
  for (int fd = 3; fd <= plan.max_fd; ++fd) {
    if (!keep[fd]) ::close(fd);
  }
  unsigned lo = static_cast<unsigned>(plan.max_fd) + 1;
  unsigned sync = static_cast<unsigned>(g_sync_fd);
  if (sync > lo) Check(::close_range(lo, sync - 1, 0) == 0, "close_range");
  Check(::close_range(sync + 1, ~0u, 0) == 0, "close_range");
}

}  // namespace

void RunChild(const ChildPlan& plan) {
  g_sync_fd = plan.sync_fd;
  g_trace = plan.trace;
  if (g_trace) ::clock_gettime(CLOCK_MONOTONIC, &g_trace_start);

  // Die with the parent; then wait until it wrote our user namespace
  // maps.
  Check(::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) == 0, "PR_SET_PDEATHSIG");

  // Join the v1 cgroups first: we are one thread, so moving ourselves
  // moves the process, without the grace-period wait of a move by pid.
  for (int fd : plan.cgroup_join_fds) {
    Check(::write(fd, "0", 1) == 1, "joining a control group");
    ::close(fd);
  }
  char go = 0;
  ssize_t n;
  do {
    n = ::recv(g_sync_fd, &go, 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n != 1 || go != 'G') ::_exit(kChildSetupExit);

  // Restore default signal handling inherited from the parent.
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::signal(sig, SIG_DFL);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  if (plan.isolate) {
    TraceChild("released");
    BuildRoot(plan);
    TraceChild("root built");
    int scratch = ::open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    Check(scratch >= 0, "opening scratch");
    SendFd(scratch);
    ::close(scratch);
    Check(::sethostname("egg", 3) == 0, "sethostname");
    Check(::setdomainname("egg", 3) == 0, "setdomainname");
    if (!plan.network) BringUpLoopback();
  }

  // On a host with v2 groups the parent joins us to them (by pid, which
  // waits for an RCU grace period) while we built the root. Nothing of
  // the caller's runs before this point, so nothing escaped the limits;
  // the cgroup namespace is rooted at the joined groups.
  // Each hand-over costs a wake-up on a busy host: only wait when there
  // is something to wait for.
  if (plan.wait_for_cgroups) {
    do {
      n = ::recv(g_sync_fd, &go, 1, 0);
    } while (n < 0 && errno == EINTR);
    if (n != 1 || go != 'C') ::_exit(kChildSetupExit);
  }
  if (plan.isolate) {
    Check(::unshare(CLONE_NEWCGROUP) == 0, "unsharing the cgroup namespace");
  }

  Check(::setsid() >= 0, "setsid");
  for (const PlanRlimit& r : plan.rlimits) {
    // RLIMIT_CPU: SIGXCPU at the soft limit names the cause; SIGKILL
    // follows a second later if it is ignored.
    rlimit limit{r.value, r.resource == RLIMIT_CPU ? r.value + 1 : r.value};
    Check(::setrlimit(r.resource, &limit) == 0, "setrlimit");
  }
  TraceChild("cgroups joined, namespace set");
  ArrangeFds(plan);

  if (plan.isolate) DropPrivileges(plan);
  ArmParentDeath();
  Check(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "no_new_privs");
  TraceChild("privileges dropped");
  if (plan.isolate) ApplyLandlock(plan);
  TraceChild("landlock applied");
  Check(::chdir(plan.cwd.c_str()) == 0, "entering working folder",
        plan.cwd.c_str());

  if (plan.isolate) {
    sock_fprog prog{static_cast<unsigned short>(plan.seccomp.size()),
                    const_cast<sock_filter*>(plan.seccomp.data())};
    Check(::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) == 0,
          "loading seccomp filter");
    sock_fprog guard{static_cast<unsigned short>(plan.ioctl_guard.size()),
                     const_cast<sock_filter*>(plan.ioctl_guard.data())};
    Check(::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &guard, 0, 0) == 0,
          "loading seccomp ioctl filter");
  }
  TraceChild("seccomp loaded; exec");
  ::execve(plan.argv[0], plan.argv.data(), plan.envp.data());
  Die("exec", plan.argv[0], errno);
}

}  // namespace egg::sandbox_internal
