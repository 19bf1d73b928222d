// One sandbox's control groups: memory and task limits, CPU accounting,
// OOM and task-limit events, and killing everything inside.
//
// Hosts differ: cgroup v2 only, v1 only, or a hybrid where each controller
// lives in one of them. Each controller is taken from whichever hierarchy
// has it and lets this process create a child group under its own group.
// Whatever cannot be had is reported missing, and the caller falls back to
// rlimits. Group folders are named "egg-sandbox-<pid>-<n>"; groups whose
// creating process is gone (it was SIGKILLed) are removed by the next
// Create() of any egg on the host.
#ifndef EGG_SANDBOX_CGROUP_H_
#define EGG_SANDBOX_CGROUP_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/fd.h"
#include "egg/status.h"

namespace egg::sandbox_internal {

class CgroupSet {
 public:
  CgroupSet() = default;
  ~CgroupSet();  // kills what is left and removes the folders
  CgroupSet(CgroupSet&&) noexcept;
  CgroupSet& operator=(CgroupSet&&) noexcept;
  CgroupSet(const CgroupSet&) = delete;
  CgroupSet& operator=(const CgroupSet&) = delete;

  // Makes the groups; never fails (missing controllers are just absent).
  static CgroupSet Create();

  bool has_memory() const { return !memory_.dir.empty(); }
  bool has_pids() const { return !pids_.dir.empty(); }
  bool has_cpu() const { return !cpu_.dir.empty(); }
  const char* mode() const;  // "v1", "v2", "hybrid" or "none"

  // A value equal to the last one written is not written again: only
  // the host can write these files (no cgroupfs is mounted in the
  // sandbox), so the limit in force is still the one set.
  [[nodiscard]] Status SetMemory(uint64_t bytes);
  [[nodiscard]] Status SetPids(uint64_t count);
  // Moves `pid` (and so its future children) into every group, or, with
  // `except_self_joined`, into every group that OpenSelfJoin() did not
  // open (the v2 ones).
  [[nodiscard]] Status AddProcess(pid_t pid, bool except_self_joined = false);

  // Opens (O_CLOEXEC) the "tasks" file of every v1 group, for a new
  // single-threaded process to join itself by writing "0" before it runs
  // anything. Moving a process by pid takes a lock whose write side waits
  // for an RCU grace period (milliseconds); a thread moving itself through
  // "tasks" does not. The kernel checks the opener's credentials, so the
  // fds are opened here by the parent. kIo if one cannot be opened.
  [[nodiscard]] Result<std::vector<int>> OpenSelfJoin();

  uint64_t CpuNs() const;
  uint64_t MemoryPeak() const;
  uint64_t OomKills() const;
  uint64_t PidsMaxEvents() const;  // 0 where the host cannot tell
  bool PidsMaxReached() const;     // current >= max now, or events > 0

  // Whether some group (a v2 one) must be joined by AddProcess() after
  // the child joined the others itself.
  bool NeedsParentJoin() const;

  // Closes what OpenSelfJoin() opened (the parent's copies).
  void CloseSelfJoin();

  // The host pids of the processes in the set (from one group's
  // cgroup.procs, at most `max`); nullopt without a group or when it
  // cannot be read.
  std::optional<std::vector<pid_t>> Members(size_t max) const;

  // SIGKILLs every task until all groups are empty (bounded wait).
  void KillAll();
  // Kills, waits and removes the folders; safe to call twice.
  void Destroy();

 private:
  struct Group {
    std::string dir;  // created folder
    bool v2 = false;
  };
  bool IsV2(const std::string& dir) const;
  // The counter file at `path` read afresh. The fd stays open for the
  // next read (one pread instead of open, read, read, close: these are
  // read around every cell); only the host holds it.
  std::string ReadCounter(const std::string& path) const;

  Group memory_;
  Group pids_;
  Group cpu_;
  std::vector<std::string> made_;  // folders to remove, once each
  std::vector<int> self_join_fds_;  // owned; closed by CloseSelfJoin()
  uint64_t memory_set_ = 0;         // last limit written; 0 = none yet
  uint64_t pids_set_ = 0;
  mutable std::map<std::string, UniqueFd> counters_;  // by path
};

}  // namespace egg::sandbox_internal

#endif  // EGG_SANDBOX_CGROUP_H_
