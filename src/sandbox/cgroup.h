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
#include <string>
#include <vector>

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

  [[nodiscard]] Status SetMemory(uint64_t bytes);
  [[nodiscard]] Status SetPids(uint64_t count);
  // Moves `pid` (and so its future children) into every group.
  [[nodiscard]] Status AddProcess(pid_t pid);

  uint64_t CpuNs() const;
  uint64_t MemoryPeak() const;
  uint64_t OomKills() const;
  uint64_t PidsMaxEvents() const;  // 0 where the host cannot tell
  bool PidsMaxReached() const;     // current >= max now, or events > 0

  // SIGKILLs every task until all groups are empty (bounded wait).
  void KillAll();
  // Kills, waits and removes the folders; safe to call twice.
  void Destroy();

 private:
  struct Group {
    std::string dir;  // created folder
    bool v2 = false;
  };

  Group memory_;
  Group pids_;
  Group cpu_;
  std::vector<std::string> made_;  // folders to remove, once each
};

}  // namespace egg::sandbox_internal

#endif  // EGG_SANDBOX_CGROUP_H_
