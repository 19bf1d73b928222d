// The micro-VM's plan: what egg (src/sandbox/vm_sandbox.cc) tells egg-init
// vm (src/guest/vm_init.cc) through /egg/plan in the initramfs (the seccomp
// programs are in /egg/seccomp, src/guest/seccomp_file.h). Shared by both
// sides; header-only because egg-init links nothing of libegg.
//
// Encoding: a sequence of records, each KEY NUL VALUE NUL. Keys:
//   arg     one argv element, in order (at least one; the first absolute)
//   env     one NAME=value
//   cwd     the working folder (absolute)
//   disk    "<serial>:<kind>:<target>"; kind root|dir|file|out
//   port    "<name>:<fd>": a virtio-serial port that becomes fd <fd>
//   share   "<n>:<ro|rw>:<target>": entry <n> of the virtiofs share
//           (tag "egg.share", a granted host path) bound at <target>
//   net     "1": a network card is there; configure it (QEMU user mode)
//   scratch, memory, processes, cpu_ms, wall_ms   decimal numbers > 0
// A key not listed, a missing number or trailing bytes reject the plan.
//
// While the cell runs, the same "egg.status" port carries control lines
// from the host (EncodeVmControl / DecodeVmControl), each answered by
// "A <seq>\n" once applied (or "A <seq> <why>\n" when it was not):
//   L <seq> [memory=N] [processes=N] [cpu_ms=N] [wall_ms=N]
//       new limits; the CPU and wall budgets restart from now
//   S <seq>   flush /out to its disk (the host then reads it back)
//   E <seq>   report the cell group's limit events so far, as the line
//             "V <seq> oom=N pids_max=N" before the answer
//   K <seq>   kill the cell's whole group and end as usual
#ifndef EGG_GUEST_VM_PLAN_H_
#define EGG_GUEST_VM_PLAN_H_

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace egg::guest {

struct VmDisk {
  enum Kind { kRoot, kDir, kFile, kOut };
  std::string serial;  // the virtio-blk serial, "egg-<n>"
  Kind kind = kDir;
  std::string target;  // path in the sandbox ("" for kRoot)
};

struct VmPort {
  std::string name;  // virtio-serial port name, "egg.fd.<n>"
  int target = -1;   // fd number in the cell
};

// A granted host path: entry `name` of the virtiofs share.
struct VmShare {
  std::string name;  // decimal, a file name in the share's root
  bool writable = false;
  std::string target;  // path in the sandbox
};

// QEMU's user-mode network (slirp): the guest's fixed addresses.
inline constexpr char kVmShareTag[] = "egg.share";
inline constexpr char kVmGuestAddress[] = "10.0.2.15";
inline constexpr char kVmGatewayAddress[] = "10.0.2.2";
inline constexpr char kVmDnsAddress[] = "10.0.2.3";

struct VmPlan {
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string cwd = "/";
  std::vector<VmDisk> disks;
  std::vector<VmPort> ports;
  std::vector<VmShare> shares;
  bool network = false;
  uint64_t scratch_bytes = 0;
  uint64_t memory_bytes = 0;
  uint64_t processes = 0;
  uint64_t cpu_ms = 0;
  uint64_t wall_ms = 0;
};

inline const char* VmDiskKindName(VmDisk::Kind kind) {
  switch (kind) {
    case VmDisk::kRoot:
      return "root";
    case VmDisk::kDir:
      return "dir";
    case VmDisk::kFile:
      return "file";
    case VmDisk::kOut:
      return "out";
  }
  return "dir";
}

inline std::string EncodeVmPlan(const VmPlan& plan) {
  std::string out;
  auto put = [&out](const char* key, const std::string& value) {
    out += key;
    out.push_back('\0');
    out += value;
    out.push_back('\0');
  };
  for (const std::string& a : plan.argv) put("arg", a);
  for (const std::string& e : plan.env) put("env", e);
  put("cwd", plan.cwd);
  for (const VmDisk& d : plan.disks) {
    put("disk", d.serial + ":" + VmDiskKindName(d.kind) + ":" + d.target);
  }
  for (const VmPort& p : plan.ports) {
    put("port", p.name + ":" + std::to_string(p.target));
  }
  for (const VmShare& s : plan.shares) {
    put("share", s.name + (s.writable ? ":rw:" : ":ro:") + s.target);
  }
  if (plan.network) put("net", "1");
  put("scratch", std::to_string(plan.scratch_bytes));
  put("memory", std::to_string(plan.memory_bytes));
  put("processes", std::to_string(plan.processes));
  put("cpu_ms", std::to_string(plan.cpu_ms));
  put("wall_ms", std::to_string(plan.wall_ms));
  return out;
}

// False with `why` on any malformed record.
inline bool DecodeVmPlan(const std::string& bytes, VmPlan* plan,
                         std::string* why) {
  auto number = [](const std::string& text, uint64_t* value) {
    if (text.empty() || text.size() > 19) return false;
    for (char c : text) {
      if (c < '0' || c > '9') return false;
    }
    *value = std::strtoull(text.c_str(), nullptr, 10);
    return *value > 0;
  };
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t k = bytes.find('\0', pos);
    if (k == std::string::npos) return *why = "unterminated key", false;
    size_t v = bytes.find('\0', k + 1);
    if (v == std::string::npos) return *why = "unterminated value", false;
    std::string key = bytes.substr(pos, k - pos);
    std::string value = bytes.substr(k + 1, v - k - 1);
    pos = v + 1;
    if (key == "arg") {
      plan->argv.push_back(value);
    } else if (key == "env") {
      if (value.find('=') == std::string::npos) {
        return *why = "env without '='", false;
      }
      plan->env.push_back(value);
    } else if (key == "cwd") {
      if (value.empty() || value[0] != '/') return *why = "bad cwd", false;
      plan->cwd = value;
    } else if (key == "disk") {
      size_t a = value.find(':');
      size_t b = a == std::string::npos ? a : value.find(':', a + 1);
      if (b == std::string::npos) return *why = "bad disk", false;
      VmDisk d;
      d.serial = value.substr(0, a);
      std::string kind = value.substr(a + 1, b - a - 1);
      d.target = value.substr(b + 1);
      if (kind == "root") {
        d.kind = VmDisk::kRoot;
      } else if (kind == "dir") {
        d.kind = VmDisk::kDir;
      } else if (kind == "file") {
        d.kind = VmDisk::kFile;
      } else if (kind == "out") {
        d.kind = VmDisk::kOut;
      } else {
        return *why = "bad disk kind", false;
      }
      if (d.serial.empty() || d.serial.find('/') != std::string::npos ||
          (d.kind != VmDisk::kRoot &&
           (d.target.empty() || d.target[0] != '/' ||
            d.target.find("..") != std::string::npos))) {
        return *why = "bad disk '" + value + "'", false;
      }
      plan->disks.push_back(d);
    } else if (key == "port") {
      size_t a = value.rfind(':');
      uint64_t fd = 0;
      if (a == std::string::npos || a == 0 ||
          (value.substr(a + 1) != "0" && !number(value.substr(a + 1), &fd)) ||
          fd >= 1024) {
        return *why = "bad port", false;
      }
      plan->ports.push_back({value.substr(0, a), static_cast<int>(fd)});
    } else if (key == "share") {
      size_t a = value.find(':');
      VmShare share;
      share.name = value.substr(0, a);
      bool long_enough = a != std::string::npos && value.size() > a + 4;
      std::string mode = long_enough ? value.substr(a + 1, 3) : "";
      share.target = long_enough ? value.substr(a + 4) : "";
      uint64_t n = 0;
      bool name_ok =
          share.name == "0" || (!share.name.empty() && share.name[0] != '0' &&
                                number(share.name, &n));
      if (!name_ok || (mode != "ro:" && mode != "rw:") ||
          share.target.empty() || share.target[0] != '/' ||
          share.target.find("..") != std::string::npos) {
        return *why = "bad share '" + value + "'", false;
      }
      share.writable = mode == "rw:";
      plan->shares.push_back(share);
    } else if (key == "net") {
      if (value != "1" || plan->network) return *why = "bad net", false;
      plan->network = true;
    } else if (key == "scratch" || key == "memory" || key == "processes" ||
               key == "cpu_ms" || key == "wall_ms") {
      uint64_t n = 0;
      if (!number(value, &n)) return *why = "bad " + key, false;
      if (key == "scratch") plan->scratch_bytes = n;
      if (key == "memory") plan->memory_bytes = n;
      if (key == "processes") plan->processes = n;
      if (key == "cpu_ms") plan->cpu_ms = n;
      if (key == "wall_ms") plan->wall_ms = n;
    } else {
      return *why = "unknown key '" + key + "'", false;
    }
  }
  if (plan->argv.empty() || plan->argv[0].empty() || plan->argv[0][0] != '/') {
    return *why = "no absolute command", false;
  }
  if (plan->scratch_bytes == 0 || plan->memory_bytes == 0 ||
      plan->processes == 0 || plan->cpu_ms == 0 || plan->wall_ms == 0) {
    return *why = "a limit is missing", false;
  }
  return true;
}

// One control line from the host (without its newline).
struct VmControl {
  char op = 0;  // 'L', 'S', 'E' or 'K'
  uint64_t seq = 0;
  uint64_t memory_bytes = 0;  // 0: unchanged
  uint64_t processes = 0;
  uint64_t cpu_ms = 0;
  uint64_t wall_ms = 0;
};

inline std::string EncodeVmControl(const VmControl& c) {
  std::string out(1, c.op);
  out += " " + std::to_string(c.seq);
  auto put = [&out](const char* key, uint64_t value) {
    if (value > 0) out += std::string(" ") + key + "=" + std::to_string(value);
  };
  put("memory", c.memory_bytes);
  put("processes", c.processes);
  put("cpu_ms", c.cpu_ms);
  put("wall_ms", c.wall_ms);
  return out + "\n";
}

// False with `why` on any malformed line; unknown ops and keys too.
inline bool DecodeVmControl(const std::string& line, VmControl* c,
                            std::string* why) {
  auto number = [](const std::string& text, uint64_t* value) {
    if (text.empty() || text.size() > 19) return false;
    for (char ch : text) {
      if (ch < '0' || ch > '9') return false;
    }
    *value = std::strtoull(text.c_str(), nullptr, 10);
    return *value > 0;
  };
  std::vector<std::string> words;
  size_t pos = 0;
  while (pos <= line.size()) {
    size_t end = line.find(' ', pos);
    if (end == std::string::npos) end = line.size();
    words.push_back(line.substr(pos, end - pos));
    pos = end + 1;
  }
  if (words.size() < 2 || words[0].size() != 1) {
    return *why = "bad control line", false;
  }
  *c = VmControl();
  c->op = words[0][0];
  if (c->op != 'L' && c->op != 'S' && c->op != 'E' && c->op != 'K') {
    return *why = "unknown control op", false;
  }
  if (!number(words[1], &c->seq)) return *why = "bad control seq", false;
  if (c->op != 'L' && words.size() != 2) {
    return *why = "trailing words", false;
  }
  for (size_t i = 2; i < words.size(); ++i) {
    size_t eq = words[i].find('=');
    if (eq == std::string::npos) return *why = "bad control field", false;
    std::string key = words[i].substr(0, eq);
    uint64_t n = 0;
    if (!number(words[i].substr(eq + 1), &n)) {
      return *why = "bad number for '" + key + "'", false;
    }
    if (key == "memory") {
      c->memory_bytes = n;
    } else if (key == "processes") {
      c->processes = n;
    } else if (key == "cpu_ms") {
      c->cpu_ms = n;
    } else if (key == "wall_ms") {
      c->wall_ms = n;
    } else {
      return *why = "unknown control key '" + key + "'", false;
    }
  }
  return true;
}

}  // namespace egg::guest

#endif  // EGG_GUEST_VM_PLAN_H_
