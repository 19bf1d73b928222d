// ContainerCgroup: the parent group egg makes for a container, which holds
// its limits and outlives the runtime's own child group (see the header).
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/fd.h"
#include "sandbox/oci_backend.h"

namespace egg::sandbox_internal {
namespace {

constexpr char kPrefix[] = "egg-oci-";

struct Hierarchy {
  std::string dir;      // mount point + egg's own group
  std::string options;  // v1 super options: its controllers
  bool v2 = false;
  bool hybrid_v2 = false;  // a v2 tree beside v1 controllers
};

// egg's own group in the v1 hierarchy with `options` ("" for v2).
std::string OwnGroup(const std::string& options, bool v2) {
  std::ifstream in("/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    size_t a = line.find(':');
    size_t b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string list = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    bool match = false;
    if (v2) {
      match = list.empty();
    } else if (!list.empty()) {
      std::string first = list.substr(0, list.find(','));
      match =
          ("," + options + ",").find("," + first + ",") != std::string::npos;
    }
    if (match) return path == "/" ? "" : path;
  }
  return "";
}

// `rooted`: at the root of each hierarchy rather than under egg's group.
std::vector<Hierarchy> FindHierarchies(bool rooted) {
  std::vector<Hierarchy> found;
  std::ifstream in("/proc/self/mountinfo");
  bool any_v1 = false;
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string x; words >> x;) w.push_back(x);
    size_t dash = 0;
    while (dash < w.size() && w[dash] != "-") ++dash;
    // id parent dev root point options ... - type source super-options
    if (w.size() < 5 || dash + 3 >= w.size()) continue;
    const std::string& type = w[dash + 1];
    if (type == "cgroup") {
      any_v1 = true;
      found.push_back({w[4], w[dash + 3], false});
    } else if (type == "cgroup2") {
      found.push_back({w[4], "", true});
    }
  }
  // On a hybrid host the v2 tree holds no controller egg uses, but runc
  // still places the container there too: it is kept, for removal only.
  std::vector<Hierarchy> out;
  for (Hierarchy& h : found) {
    if (!rooted) h.dir = h.dir + OwnGroup(h.options, h.v2);
    h.hybrid_v2 = h.v2 && any_v1;
    out.push_back(h);
  }
  return out;
}

bool HasController(const std::string& options, const std::string& name) {
  return ("," + options + ",").find("," + name + ",") != std::string::npos;
}

uint64_t ReadNumber(const std::string& path) {
  auto text = ReadFileToString(path, 4096);
  if (!text) return 0;
  return std::strtoull(text->c_str(), nullptr, 10);
}

// The value after "key " in a flat-keyed file (memory.events, cpu.stat).
uint64_t ReadKey(const std::string& path, const std::string& key) {
  auto text = ReadFileToString(path, 65536);
  if (!text) return 0;
  std::istringstream in(*text);
  for (std::string k, v; in >> k >> v;) {
    if (k == key) return std::strtoull(v.c_str(), nullptr, 10);
  }
  return 0;
}

Status WriteValue(const std::string& path, const std::string& value) {
  auto fd = OpenFile(path, O_WRONLY);
  if (!fd) return Fail(fd.error());
  if (auto s = WriteAll(fd->get(), value); !s) {
    return Fail(s.error().Wrap("writing " + path));
  }
  return {};
}

// SIGKILLs the tasks of `dir` and its children, then removes them.
void RemoveTree(const std::string& dir) {
  if (DIR* d = ::opendir(dir.c_str())) {
    std::vector<std::string> children;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (e->d_type == DT_DIR && n != "." && n != "..") children.push_back(n);
    }
    ::closedir(d);
    for (const std::string& c : children) RemoveTree(dir + "/" + c);
  }
  for (int i = 0; i < 100; ++i) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return;
    std::istringstream procs(
        ReadFileToString(dir + "/cgroup.procs", 1 << 20).value_or(""));
    for (pid_t pid; procs >> pid;) ::kill(pid, SIGKILL);
    ::usleep(10000);
  }
}

}  // namespace

ContainerCgroup& ContainerCgroup::operator=(ContainerCgroup&& o) noexcept {
  if (this != &o) {
    Remove();
    v2_ = o.v2_;
    name_ = std::move(o.name_);
    memory_ = std::move(o.memory_);
    pids_ = std::move(o.pids_);
    cpu_ = std::move(o.cpu_);
    dirs_ = std::move(o.dirs_);
    o.name_.clear();
    o.memory_.clear();
    o.pids_.clear();
    o.cpu_.clear();
    o.dirs_.clear();
  }
  return *this;
}

ContainerCgroup ContainerCgroup::Create(bool rooted) {
  static std::atomic<uint64_t> counter{0};
  ContainerCgroup cg;
  cg.name_ = kPrefix + std::to_string(::getpid()) + "-" +
             std::to_string(counter.fetch_add(1));
  for (const Hierarchy& h : FindHierarchies(rooted)) {
    std::string dir = h.dir + "/" + cg.name_;
    if (::mkdir(dir.c_str(), 0755) != 0) continue;
    cg.dirs_.push_back(dir);
    if (h.hybrid_v2) continue;
    if (h.v2) {
      cg.v2_ = true;
      // The runtime's child group needs the controllers enabled here.
      (void)WriteValue(dir + "/cgroup.subtree_control", "+memory +pids");
      cg.memory_ = cg.pids_ = cg.cpu_ = dir;
      continue;
    }
    if (HasController(h.options, "memory")) cg.memory_ = dir;
    if (HasController(h.options, "pids")) cg.pids_ = dir;
    if (HasController(h.options, "cpuacct")) cg.cpu_ = dir;
  }
  return cg;
}

uint64_t ContainerCgroup::CpuNs() const {
  if (cpu_.empty()) return 0;
  if (v2_) return ReadKey(cpu_ + "/cpu.stat", "usage_usec") * 1000;
  return ReadNumber(cpu_ + "/cpuacct.usage");
}

uint64_t ContainerCgroup::MemoryPeak() const {
  if (memory_.empty()) return 0;
  return ReadNumber(memory_ +
                    (v2_ ? "/memory.peak" : "/memory.max_usage_in_bytes"));
}

uint64_t ContainerCgroup::OomKills() const {
  if (memory_.empty()) return 0;
  if (v2_) return ReadKey(memory_ + "/memory.events", "oom_kill");
  // v1 counts an OOM kill only in the victim's own group, the runtime's
  // child, which is gone soon after the container ends.
  return ReadKey(memory_ + "/memory.oom_control", "oom_kill") +
         ReadKey(memory_ + "/c/memory.oom_control", "oom_kill");
}

bool ContainerCgroup::MemoryLimitHit() const {
  if (memory_.empty()) return false;
  if (v2_) return ReadKey(memory_ + "/memory.events", "max") > 0;
  if (ReadNumber(memory_ + "/memory.failcnt") > 0) return true;
  // gVisor's Sentry kills a task itself when the sandbox's memory nears
  // the limit it read from this group, before any charge fails.
  uint64_t limit = ReadNumber(memory_ + "/memory.limit_in_bytes");
  return limit > 0 && MemoryPeak() + (2u << 20) >= limit;
}

uint64_t ContainerCgroup::PidsMaxEvents() const {
  if (pids_.empty()) return 0;
  return ReadKey(pids_ + "/pids.events", "max") +
         ReadKey(pids_ + "/c/pids.events", "max");
}

bool ContainerCgroup::PidsMaxReached() const {
  if (pids_.empty()) return false;
  // v1 counts a refused fork in the forking task's group (the runtime's
  // child); v2 counts it where the limit is.
  if (ReadKey(pids_ + "/pids.events", "max") > 0 ||
      ReadKey(pids_ + "/c/pids.events", "max") > 0) {
    return true;
  }
  auto max = ReadFileToString(pids_ + "/pids.max", 64).value_or("max");
  if (max.compare(0, 3, "max") == 0) return false;
  return ReadNumber(pids_ + "/pids.current") >= ReadNumber(pids_ + "/pids.max");
}

Status ContainerCgroup::SetMemory(uint64_t bytes) const {
  if (memory_.empty()) {
    return Fail(Code::kNotSupported, "the container has no memory cgroup");
  }
  if (v2_) return WriteValue(memory_ + "/memory.max", std::to_string(bytes));
  // Without swap accounting the memsw file is absent; that is fine.
  (void)WriteValue(memory_ + "/memory.memsw.limit_in_bytes", "-1");
  if (auto s =
          WriteValue(memory_ + "/memory.limit_in_bytes", std::to_string(bytes));
      !s) {
    return s;
  }
  (void)WriteValue(memory_ + "/memory.memsw.limit_in_bytes",
                   std::to_string(bytes));
  return {};
}

Status ContainerCgroup::SetPids(uint64_t count) const {
  if (pids_.empty()) {
    return Fail(Code::kNotSupported, "the container has no pids cgroup");
  }
  return WriteValue(pids_ + "/pids.max", std::to_string(count));
}

void ContainerCgroup::Remove() {
  for (const std::string& dir : dirs_) RemoveTree(dir);
  dirs_.clear();
  memory_.clear();
  pids_.clear();
  cpu_.clear();
}

void RemoveStaleContainerCgroups() {
  std::vector<Hierarchy> all = FindHierarchies(false);
  for (const Hierarchy& h : FindHierarchies(true)) all.push_back(h);
  for (const Hierarchy& h : all) {
    DIR* d = ::opendir(h.dir.c_str());
    if (d == nullptr) continue;
    std::vector<std::string> stale;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.rfind(kPrefix, 0) != 0) continue;
      pid_t owner = std::atoi(n.c_str() + sizeof(kPrefix) - 1);
      if (owner > 0 && ::kill(owner, 0) != 0 && errno == ESRCH) {
        stale.push_back(n);
      }
    }
    ::closedir(d);
    for (const std::string& n : stale) RemoveTree(h.dir + "/" + n);
  }
}

}  // namespace egg::sandbox_internal
