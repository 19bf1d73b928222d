#include "sandbox/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <utility>

#include "common/fd.h"
#include "sandbox/log.h"

namespace egg::sandbox_internal {
namespace {

constexpr char kPrefix[] = "egg-sandbox-";

struct Hierarchy {
  std::string dir;  // this process's own group folder in the hierarchy
  bool v2 = false;
};

std::string ReadSmall(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool WriteSmall(const std::string& path, const std::string& value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return false;
  ssize_t n =
      RetryEintr([&] { return ::write(fd.get(), value.data(), value.size()); });
  return n == static_cast<ssize_t>(value.size());
}

uint64_t ParseU64(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
    text.remove_suffix(1);
  uint64_t v = 0;
  std::from_chars(text.data(), text.data() + text.size(), v);
  return v;
}

// "key value" line lookup in text like memory.events or cpu.stat.
uint64_t KeyedValue(const std::string& text, std::string_view key) {
  std::istringstream in(text);
  std::string k;
  uint64_t v;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return 0;
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

// Maps controller name ("memory", "pids", "cpuacct", "" for v2) to this
// process's group folder, from /proc/self/cgroup and mountinfo.
std::map<std::string, Hierarchy> FindHierarchies() {
  // controller set (e.g. "cpu,cpuacct") -> path inside the hierarchy
  std::map<std::string, std::string> paths;
  std::istringstream cg(ReadSmall("/proc/self/cgroup"));
  for (std::string line; std::getline(cg, line);) {
    auto parts = Split(line, ':');
    if (parts.size() < 3) continue;
    std::string path = line.substr(parts[0].size() + parts[1].size() + 2);
    paths[parts[1]] = path;
  }

  std::map<std::string, Hierarchy> out;
  std::istringstream mi(ReadSmall("/proc/self/mountinfo"));
  for (std::string line; std::getline(mi, line);) {
    auto fields = Split(line, ' ');
    auto dash = std::find(fields.begin(), fields.end(), "-");
    if (dash == fields.end() || fields.end() - dash < 4) continue;
    const std::string& fstype = dash[1];
    const std::string& root = fields[3];
    const std::string& mount_point = fields[4];
    auto relative = [&](const std::string& path) -> std::optional<std::string> {
      if (root == "/") return path;
      if (path.compare(0, root.size(), root) != 0) return std::nullopt;
      return path.substr(root.size());
    };
    if (fstype == "cgroup2") {
      auto it = paths.find("");
      if (it == paths.end()) continue;
      auto rel = relative(it->second);
      if (rel) out[""] = {mount_point + (*rel == "/" ? "" : *rel), true};
    } else if (fstype == "cgroup") {
      auto options = Split(dash[3], ',');
      for (const auto& [set, path] : paths) {
        if (set.empty()) continue;
        auto controllers = Split(set, ',');
        bool match = std::all_of(
            controllers.begin(), controllers.end(), [&](const std::string& c) {
              return std::find(options.begin(), options.end(), c) !=
                     options.end();
            });
        if (!match) continue;
        auto rel = relative(path);
        if (!rel) continue;
        for (const std::string& c : controllers) {
          out[c] = {mount_point + (*rel == "/" ? "" : *rel), false};
        }
      }
    }
  }
  return out;
}

bool PidAlive(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

// The pids in a group's cgroup.procs (at most `max`); nullopt when it
// cannot be read.
std::optional<std::vector<pid_t>> ReadProcs(const std::string& dir,
                                            size_t max) {
  UniqueFd fd(::open((dir + "/cgroup.procs").c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return std::nullopt;
  std::string text;
  char buf[8192];
  for (;;) {
    ssize_t n = RetryEintr([&] { return ::read(fd.get(), buf, sizeof(buf)); });
    if (n < 0) return std::nullopt;
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > max * 12) break;  // a pid is at most 11 characters
  }
  std::vector<pid_t> pids;
  std::istringstream in(text);
  pid_t p;
  while (pids.size() < max && in >> p) pids.push_back(p);
  return pids;
}

std::vector<pid_t> Procs(const std::string& dir) {
  return ReadProcs(dir, SIZE_MAX / 12).value_or(std::vector<pid_t>{});
}

void SleepMs(int ms) {
  timespec ts{0, ms * 1000000L};
  ::nanosleep(&ts, nullptr);
}

void KillGroup(const std::string& dir, bool v2) {
  if (v2 && WriteSmall(dir + "/cgroup.kill", "1")) return;
  // v1 has no atomic kill: repeat until no task is left (a forking task
  // may add one between the read and the kill).
  for (int round = 0; round < 100; ++round) {
    auto procs = Procs(dir);
    if (procs.empty()) return;
    for (pid_t p : procs) ::kill(p, SIGKILL);
    SleepMs(1);
  }
}

bool WaitEmpty(const std::string& dir) {
  for (int i = 0; i < 2000; ++i) {
    if (Procs(dir).empty()) return true;
    SleepMs(1);
  }
  return false;
}

void RemoveGroup(const std::string& dir, bool v2) {
  // An empty group (every task gone, the usual case once the box's first
  // process is reaped) goes at once; only a busy one is emptied first.
  if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return;
  KillGroup(dir, v2);
  WaitEmpty(dir);
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) {
    LogWarning("could not remove control group '" + dir +
               "': " + strerror(errno));
  }
}

// Removes groups left by egg processes that died without cleaning up.
void ReapStale(const std::string& parent, bool v2) {
  DIR* d = ::opendir(parent.c_str());
  if (d == nullptr) return;
  std::vector<std::string> stale;
  while (dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name.compare(0, sizeof(kPrefix) - 1, kPrefix) != 0) continue;
    std::string_view rest = name.substr(sizeof(kPrefix) - 1);
    pid_t owner = 0;
    std::from_chars(rest.data(), rest.data() + rest.size(), owner);
    if (owner > 0 && !PidAlive(owner)) stale.push_back(std::string(name));
  }
  ::closedir(d);
  for (const std::string& name : stale) {
    LogDebug("removing stale control group '" + name + "'");
    RemoveGroup(parent + "/" + name, v2);
  }
}

std::string MakeGroup(const Hierarchy& h) {
  static std::atomic<uint64_t> counter{0};
  ReapStale(h.dir, h.v2);
  std::string dir = h.dir + "/" + kPrefix + std::to_string(::getpid()) + "-" +
                    std::to_string(counter.fetch_add(1));
  if (::mkdir(dir.c_str(), 0755) != 0) return "";
  return dir;
}

// v2: a controller is usable below our group only if enabled in our
// group's subtree_control; try to enable it (works at the root or where
// our group holds no process).
bool V2Enable(const Hierarchy& h, const std::string& controller) {
  auto has = [&](const std::string& file) {
    auto words = Split(ReadSmall(h.dir + "/" + file), ' ');
    for (auto& w : words) {
      while (!w.empty() && w.back() == '\n') w.pop_back();
      if (w == controller) return true;
    }
    return false;
  };
  if (has("cgroup.subtree_control")) return true;
  if (!has("cgroup.controllers")) return false;
  return WriteSmall(h.dir + "/cgroup.subtree_control", "+" + controller) &&
         has("cgroup.subtree_control");
}

}  // namespace

CgroupSet::~CgroupSet() { Destroy(); }

CgroupSet::CgroupSet(CgroupSet&& o) noexcept
    : memory_(std::move(o.memory_)),
      pids_(std::move(o.pids_)),
      cpu_(std::move(o.cpu_)),
      made_(std::move(o.made_)),
      self_join_fds_(std::exchange(o.self_join_fds_, {})),
      memory_set_(std::exchange(o.memory_set_, 0)),
      pids_set_(std::exchange(o.pids_set_, 0)),
      counters_(std::exchange(o.counters_, {})) {
  o.memory_ = {};
  o.pids_ = {};
  o.cpu_ = {};
  o.made_.clear();
}

CgroupSet& CgroupSet::operator=(CgroupSet&& o) noexcept {
  if (this != &o) {
    Destroy();
    memory_ = std::exchange(o.memory_, {});
    pids_ = std::exchange(o.pids_, {});
    cpu_ = std::exchange(o.cpu_, {});
    made_ = std::exchange(o.made_, {});
    self_join_fds_ = std::exchange(o.self_join_fds_, {});
    memory_set_ = std::exchange(o.memory_set_, 0);
    pids_set_ = std::exchange(o.pids_set_, 0);
    counters_ = std::exchange(o.counters_, {});
  }
  return *this;
}

CgroupSet CgroupSet::Create() {
  CgroupSet set;
  auto hier = FindHierarchies();
  std::map<std::string, std::string> made_in;  // hierarchy dir -> new dir

  auto group_in = [&](const Hierarchy& h) -> Group {
    auto it = made_in.find(h.dir);
    if (it != made_in.end()) return {it->second, h.v2};
    std::string dir = MakeGroup(h);
    if (dir.empty()) return {};
    made_in[h.dir] = dir;
    set.made_.push_back(dir);
    return {dir, h.v2};
  };

  auto v2 = hier.find("");
  auto pick = [&](const std::string& v1_name,
                  const std::string& v2_name) -> Group {
    auto it = hier.find(v1_name);
    if (it != hier.end()) return group_in(it->second);
    // v2 accounting of CPU (cpu.stat) needs no controller.
    if (v2 != hier.end() &&
        (v2_name.empty() || V2Enable(v2->second, v2_name))) {
      return group_in(v2->second);
    }
    return {};
  };
  set.memory_ = pick("memory", "memory");
  set.pids_ = pick("pids", "pids");
  set.cpu_ = pick("cpuacct", "");

  // A group made in a hierarchy must hold a working file; otherwise drop.
  if (!set.memory_.dir.empty() && !set.memory_.v2 &&
      ::access((set.memory_.dir + "/memory.limit_in_bytes").c_str(), W_OK))
    set.memory_ = {};
  if (!set.memory_.dir.empty() && set.memory_.v2 &&
      ::access((set.memory_.dir + "/memory.max").c_str(), W_OK))
    set.memory_ = {};
  if (!set.pids_.dir.empty() &&
      ::access((set.pids_.dir + "/pids.max").c_str(), W_OK))
    set.pids_ = {};
  return set;
}

const char* CgroupSet::mode() const {
  bool any_v1 = false, any_v2 = false;
  for (const Group* g : {&memory_, &pids_, &cpu_}) {
    if (g->dir.empty()) continue;
    (g->v2 ? any_v2 : any_v1) = true;
  }
  if (any_v1 && any_v2) return "hybrid";
  if (any_v1) return "v1";
  if (any_v2) return "v2";
  return "none";
}

Status CgroupSet::SetMemory(uint64_t bytes) {
  if (!has_memory()) return Fail(Code::kNotSupported, "no memory cgroup");
  if (bytes == memory_set_) return {};
  std::string value = std::to_string(bytes);
  bool ok;
  if (memory_.v2) {
    ok = WriteSmall(memory_.dir + "/memory.max", value);
    WriteSmall(memory_.dir + "/memory.swap.max", "0");
    WriteSmall(memory_.dir + "/memory.oom.group", "1");
  } else {
    // memsw must stay >= limit: lower it last, raise it first.
    std::string memsw = memory_.dir + "/memory.memsw.limit_in_bytes";
    WriteSmall(memsw, value);
    ok = WriteSmall(memory_.dir + "/memory.limit_in_bytes", value);
    WriteSmall(memsw, value);
  }
  if (!ok) return Fail(ErrnoError("setting the memory cgroup limit"));
  memory_set_ = bytes;
  return {};
}

Status CgroupSet::SetPids(uint64_t count) {
  if (!has_pids()) return Fail(Code::kNotSupported, "no pids cgroup");
  if (count == pids_set_) return {};
  if (!WriteSmall(pids_.dir + "/pids.max", std::to_string(count))) {
    return Fail(ErrnoError("setting the pids cgroup limit"));
  }
  pids_set_ = count;
  return {};
}

Result<std::vector<int>> CgroupSet::OpenSelfJoin() {
  CloseSelfJoin();
  for (const std::string& dir : made_) {
    if (IsV2(dir)) continue;
    int fd = ::open((dir + "/tasks").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      Error e = ErrnoError("opening control group '" + dir + "/tasks'");
      CloseSelfJoin();
      return Fail(e);
    }
    self_join_fds_.push_back(fd);
  }
  return self_join_fds_;
}

bool CgroupSet::NeedsParentJoin() const {
  return std::any_of(made_.begin(), made_.end(),
                     [this](const std::string& dir) { return IsV2(dir); });
}

void CgroupSet::CloseSelfJoin() {
  for (int fd : self_join_fds_) ::close(fd);
  self_join_fds_.clear();
}

bool CgroupSet::IsV2(const std::string& dir) const {
  return (dir == memory_.dir && memory_.v2) || (dir == pids_.dir && pids_.v2) ||
         (dir == cpu_.dir && cpu_.v2);
}

Status CgroupSet::AddProcess(pid_t pid, bool except_self_joined) {
  std::string value = std::to_string(pid);
  for (const std::string& dir : made_) {
    if (except_self_joined && !IsV2(dir)) continue;
    if (!WriteSmall(dir + "/cgroup.procs", value)) {
      return Fail(ErrnoError("joining control group '" + dir + "'"));
    }
  }
  return {};
}

std::string CgroupSet::ReadCounter(const std::string& path) const {
  UniqueFd& fd = counters_[path];
  if (!fd.valid()) fd.Reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.valid()) {
    // cgroupfs regenerates a file's text when it is read from offset 0.
    char buf[4096];
    ssize_t n =
        RetryEintr([&] { return ::pread(fd.get(), buf, sizeof(buf), 0); });
    if (n >= 0 && static_cast<size_t>(n) < sizeof(buf)) {
      return std::string(buf, static_cast<size_t>(n));
    }
    fd.Reset();
  }
  return ReadSmall(path);
}

uint64_t CgroupSet::CpuNs() const {
  if (!has_cpu()) return 0;
  if (cpu_.v2) {
    return KeyedValue(ReadCounter(cpu_.dir + "/cpu.stat"), "usage_usec") *
           1000;
  }
  return ParseU64(ReadCounter(cpu_.dir + "/cpuacct.usage"));
}

uint64_t CgroupSet::MemoryPeak() const {
  if (!has_memory()) return 0;
  if (memory_.v2) return ParseU64(ReadSmall(memory_.dir + "/memory.peak"));
  return ParseU64(ReadSmall(memory_.dir + "/memory.max_usage_in_bytes"));
}

uint64_t CgroupSet::OomKills() const {
  if (!has_memory()) return 0;
  if (memory_.v2) {
    return KeyedValue(ReadCounter(memory_.dir + "/memory.events"), "oom_kill");
  }
  return KeyedValue(ReadCounter(memory_.dir + "/memory.oom_control"),
                    "oom_kill");
}

uint64_t CgroupSet::PidsMaxEvents() const {
  if (!has_pids()) return 0;
  return KeyedValue(ReadCounter(pids_.dir + "/pids.events"), "max");
}

bool CgroupSet::PidsMaxReached() const {
  if (!has_pids()) return false;
  if (PidsMaxEvents() > 0) return true;
  std::string max = ReadSmall(pids_.dir + "/pids.max");
  if (max.compare(0, 3, "max") == 0) return false;
  return ParseU64(ReadSmall(pids_.dir + "/pids.current")) >= ParseU64(max);
}

std::optional<std::vector<pid_t>> CgroupSet::Members(size_t max) const {
  const std::string& dir = !pids_.dir.empty() ? pids_.dir : memory_.dir;
  if (dir.empty()) return std::nullopt;
  return ReadProcs(dir, max);
}

void CgroupSet::KillAll() {
  for (const std::string& dir : made_) KillGroup(dir, IsV2(dir));
}

void CgroupSet::Destroy() {
  CloseSelfJoin();
  counters_.clear();
  for (const std::string& dir : made_) RemoveGroup(dir, IsV2(dir));
  made_.clear();
  memory_ = {};
  pids_ = {};
  cpu_ = {};
  memory_set_ = 0;
  pids_set_ = 0;
}

}  // namespace egg::sandbox_internal
