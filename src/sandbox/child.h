// What the sandbox's first process does between clone and exec.
//
// The parent prepares a ChildPlan (every string, array and the seccomp
// program) before cloning; the child only reads it, makes system calls
// and never allocates, because another thread of the parent may have held
// the allocator's lock at the moment of the clone. On any failure the
// child writes one line "<step>: <reason>" as an 'E' message on the sync
// socket and exits with kChildSetupExit.
//
// Sync socket protocol (SOCK_SEQPACKET, one record per message):
//   parent -> child  "G"             the id maps are written: build the root
//   parent -> child  "C"             the v2 cgroups are joined: go on to exec
//                                    (only sent when the plan waits for it)
//   child -> parent  "F" + SCM_RIGHTS  the scratch folder (for fstatfs)
//   child -> parent  "E<line>"       setup failed; the child exits
//   child -> parent  "T<line>"       a step's time (EGG_TRACE only)
//   EOF                              exec succeeded (the socket is CLOEXEC)
#ifndef EGG_SANDBOX_CHILD_H_
#define EGG_SANDBOX_CHILD_H_

#include <linux/filter.h>
#include <sys/resource.h>

#include <cstdint>
#include <string>
#include <vector>

namespace egg::sandbox_internal {

inline constexpr int kChildSetupExit = 125;
// The identity inside the sandbox's user namespace.
inline constexpr unsigned kSandboxUid = 1000;
inline constexpr unsigned kSandboxGid = 1000;

struct PlanBind {
  std::string source;  // host path
  std::string target;  // path below the new root, without leading '/'
  bool directory = true;
  bool writable = false;
  bool device = false;  // keep device nodes usable (no nodev)
};

struct PlanSymlink {
  std::string target;    // what the link points to
  std::string linkpath;  // below the new root, without leading '/'
};

struct PlanFd {
  int from = -1;  // fd in the parent (inherited)
  int to = -1;    // fd in the sandbox
};

struct PlanRlimit {
  int resource = 0;
  rlim_t value = 0;
};

struct ChildPlan {
  bool isolate = true;       // false: the none backend
  bool drop_groups = false;  // setgroups(0) is allowed (root parent)
  int sync_fd = -1;
  int last_cap = 40;
  int landlock_abi = 0;
  bool trace = false;  // EGG_TRACE: "T" records of step times

  // Root layout (isolate only), in mount order.
  std::vector<PlanBind> root_binds;  // runtime root entries
  std::vector<PlanSymlink> root_symlinks;
  std::vector<PlanBind> dev_binds;  // /dev/null ... and granted devices
  std::vector<PlanBind> binds;      // /out, /data, /.egg, host paths
  std::vector<std::string> writable_targets;  // for Landlock, with '/'
  std::string tmpfs_options;                  // for /tmp
  bool network = false;

  // "tasks" files of the v1 cgroups (CgroupSet::OpenSelfJoin): the child
  // writes "0" to each before anything else.
  std::vector<int> cgroup_join_fds;
  // The parent still joins us to some (v2) group: wait for its "C".
  bool wait_for_cgroups = false;
  std::vector<PlanRlimit> rlimits;
  std::vector<PlanFd> fds;  // includes 0, 1, 2
  int max_fd = 2;

  std::string cwd;
  std::vector<char*> argv;  // NULL-terminated, points into strings below
  std::vector<char*> envp;
  std::vector<std::string> argv_storage;
  std::vector<std::string> env_storage;

  std::vector<sock_filter> seccomp;
  std::vector<sock_filter> ioctl_guard;
};

// Runs in the cloned child; never returns.
[[noreturn]] void RunChild(const ChildPlan& plan);

}  // namespace egg::sandbox_internal

#endif  // EGG_SANDBOX_CHILD_H_
