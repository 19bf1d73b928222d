// egg-init vm: PID 1 of the micro-VM (docs/ISOLATION.md, "The micro-VM").
//
// The initramfs (src/sandbox/vm_initramfs.cc) holds this program as /init,
// the kernel modules in /egg/modules with their load order in
// /egg/modules.load, the seccomp programs in /egg/seccomp and the run's
// plan in /egg/plan (records decoded by
// DecodeVmPlan). PID 1 loads the modules, mounts each virtio disk (found
// by its serial "egg-<n>"), builds the sandbox's root on a tmpfs of mount
// points, limits the command with a cgroup, runs it as uid 1000 under the
// namespaces backend's seccomp programs, and when it ends writes one
// status line on the "egg.status" port and reboots (QEMU runs with
// -no-reboot, so the VM ends). A setup failure prints
// "egg-init: <step>: <reason>" on the console and on the status port.
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "guest/guest.h"
#include "guest/vm_plan.h"

namespace egg::guest {
namespace {

constexpr char kNewRoot[] = "/newroot";
constexpr char kCgroup[] = "/sys/fs/cgroup/cell";
constexpr unsigned kCellId = 1000;

int g_status_fd = -1;

void WriteStatus(const std::string& line) {
  if (g_status_fd < 0) return;
  ssize_t ignored = ::write(g_status_fd, line.data(), line.size());
  (void)ignored;
}

// PID 1 must not exit (the kernel would panic before the message is out):
// it reports, then reboots, which ends QEMU.
[[noreturn]] void Fatal(const std::string& step, const std::string& reason) {
  std::string line = "egg-init: " + step + ": " + reason + "\n";
  ssize_t ignored = ::write(2, line.data(), line.size());
  (void)ignored;
  WriteStatus("E" + line);
  ::sync();
  ::reboot(RB_AUTOBOOT);
  ::_exit(125);
}

[[noreturn]] void FatalErrno(const std::string& step) {
  Fatal(step, strerror(errno));
}

uint64_t NowMs() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

bool WriteText(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) ==
            static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

std::string ReadLineOf(const std::string& path) {
  std::string text;
  if (!ReadWhole(path, &text, 4096)) return "";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
    text.pop_back();
  }
  return text;
}

// "key value" in a flat keyed file (cpu.stat, memory.events).
uint64_t KeyedValue(const std::string& path, const std::string& key) {
  std::string text;
  if (!ReadWhole(path, &text, 65536)) return 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    if (line.rfind(key + " ", 0) == 0) {
      return strtoull(line.c_str() + key.size() + 1, nullptr, 10);
    }
    pos = end + 1;
  }
  return 0;
}

void MkdirP(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      std::string part = path.substr(0, i);
      if (::mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) {
        FatalErrno("mkdir '" + part + "'");
      }
    }
  }
}

void Mount(const std::string& src, const std::string& dst, const char* type,
           unsigned long flags, const std::string& data) {
  if (::mount(src.c_str(), dst.c_str(), type, flags,
              data.empty() ? nullptr : data.c_str()) != 0) {
    FatalErrno("mount '" + dst + "'");
  }
}

// A mount point for `source` at `target`: a folder, or an empty file.
void MakeMountPoint(const std::string& source, const std::string& target) {
  struct stat st;
  if (::stat(source.c_str(), &st) != 0) FatalErrno("stat '" + source + "'");
  if (S_ISDIR(st.st_mode)) {
    MkdirP(target);
    return;
  }
  MkdirP(target.substr(0, target.rfind('/')));
  int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) FatalErrno("creating '" + target + "'");
  ::close(fd);
}

void Bind(const std::string& source, const std::string& target,
          bool writable = false) {
  MakeMountPoint(source, target);
  Mount(source, target, nullptr, MS_BIND | MS_REC, "");
  Mount(
      "", target, nullptr,
      MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (writable ? 0 : MS_RDONLY),
      "");
}

// One interface ioctl; false (errno set) when it fails.
bool InterfaceIoctl(int sock, unsigned long request, ifreq* r) {
  return ::ioctl(sock, request, r) == 0;
}

bool SetInterfaceAddress(int sock, const char* name, unsigned long request,
                         const char* address) {
  ifreq r{};
  ::strncpy(r.ifr_name, name, IFNAMSIZ - 1);
  sockaddr_in in{};
  in.sin_family = AF_INET;
  ::inet_pton(AF_INET, address, &in.sin_addr);
  ::memcpy(&r.ifr_addr, &in, sizeof(in));
  return InterfaceIoctl(sock, request, &r);
}

bool InterfaceUp(int sock, const char* name) {
  ifreq r{};
  ::strncpy(r.ifr_name, name, IFNAMSIZ - 1);
  if (!InterfaceIoctl(sock, SIOCGIFFLAGS, &r)) return false;
  r.ifr_flags |= IFF_UP | IFF_RUNNING;
  return InterfaceIoctl(sock, SIOCSIFFLAGS, &r);
}

// Loopback always; with a network grant, the virtio card gets QEMU user
// mode's fixed address and default route (no DHCP: nothing to wait for).
void SetupNetwork(const VmPlan& plan) {
  int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) FatalErrno("network socket");
  if (!InterfaceUp(sock, "lo")) FatalErrno("bringing lo up");
  if (!plan.network) {
    ::close(sock);
    return;
  }
  std::string card;
  uint64_t deadline = NowMs() + 10000;
  while (card.empty() && NowMs() < deadline) {
    if (DIR* d = ::opendir("/sys/class/net")) {
      while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name[0] != '.' && name != "lo" && card.empty()) card = name;
      }
      ::closedir(d);
    }
    if (card.empty()) ::usleep(10000);
  }
  if (card.empty() || card.size() >= IFNAMSIZ) {
    Fatal("network", "no network card appeared");
  }
  if (!SetInterfaceAddress(sock, card.c_str(), SIOCSIFADDR, kVmGuestAddress) ||
      !SetInterfaceAddress(sock, card.c_str(), SIOCSIFNETMASK,
                           "255.255.255.0") ||
      !InterfaceUp(sock, card.c_str())) {
    FatalErrno("configuring '" + card + "'");
  }
  rtentry route{};
  sockaddr_in any{};
  any.sin_family = AF_INET;
  sockaddr_in gateway = any;
  ::inet_pton(AF_INET, kVmGatewayAddress, &gateway.sin_addr);
  ::memcpy(&route.rt_dst, &any, sizeof(any));
  ::memcpy(&route.rt_genmask, &any, sizeof(any));
  ::memcpy(&route.rt_gateway, &gateway, sizeof(gateway));
  route.rt_flags = RTF_UP | RTF_GATEWAY;
  if (::ioctl(sock, SIOCADDRT, &route) != 0) FatalErrno("default route");
  ::close(sock);
}

// With a network grant, the runtime's /etc/resolv.conf (when it has one)
// names QEMU's resolver.
void BindResolvConf() {
  std::string target = std::string(kNewRoot) + "/etc/resolv.conf";
  struct stat st;
  if (::stat(target.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return;
  std::string text = std::string("nameserver ") + kVmDnsAddress + "\n";
  int fd = ::open("/egg/resolv.conf", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                  0644);
  if (fd < 0 || ::write(fd, text.data(), text.size()) !=
                    static_cast<ssize_t>(text.size())) {
    FatalErrno("writing /egg/resolv.conf");
  }
  ::close(fd);
  Mount("/egg/resolv.conf", target, nullptr, MS_BIND, "");
  Mount("", target, nullptr,
        MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "");
}

// Granted host paths: entries of the virtiofs share, bound at their
// targets (read-only ones read-only here too; virtiofsd's own mounts on
// the host are what really enforces it).
void MountShares(const VmPlan& plan) {
  if (plan.shares.empty()) return;
  std::string mnt = "/mnt/share";
  MkdirP(mnt);
  Mount(kVmShareTag, mnt, "virtiofs", MS_NOSUID | MS_NODEV, "");
  for (const VmShare& share : plan.shares) {
    Bind(mnt + "/" + share.name, std::string(kNewRoot) + share.target,
         share.writable);
  }
}

void LoadModules() {
  std::string list;
  if (!ReadWhole("/egg/modules.load", &list, 1 << 16)) {
    FatalErrno("reading /egg/modules.load");
  }
  size_t pos = 0;
  while (pos < list.size()) {
    size_t end = list.find('\n', pos);
    if (end == std::string::npos) end = list.size();
    std::string name = list.substr(pos, end - pos);
    pos = end + 1;
    if (name.empty()) continue;
    std::string path = "/egg/modules/" + name;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) FatalErrno("opening module '" + name + "'");
    if (::syscall(SYS_finit_module, fd, "", 0) != 0 && errno != EEXIST) {
      FatalErrno("loading module '" + name + "'");
    }
    ::close(fd);
  }
}

// /dev/<name> of each virtio disk, by its serial (egg-<n>). Devices
// appear while the modules load, but their nodes may trail a little.
std::map<std::string, std::string> FindDisks(size_t want) {
  std::map<std::string, std::string> disks;
  uint64_t deadline = NowMs() + 10000;
  while (NowMs() < deadline) {
    disks.clear();
    if (DIR* d = ::opendir("/sys/block")) {
      while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name.rfind("vd", 0) != 0) continue;
        std::string serial = ReadLineOf("/sys/block/" + name + "/serial");
        std::string dev = "/dev/" + name;
        if (!serial.empty() && ::access(dev.c_str(), F_OK) == 0) {
          disks[serial] = dev;
        }
      }
      ::closedir(d);
    }
    if (disks.size() >= want) return disks;
    ::usleep(10000);
  }
  Fatal("disks", "found " + std::to_string(disks.size()) + " of " +
                     std::to_string(want) + " virtio disks");
}

// Port name -> /dev node of each virtio-serial port.
std::map<std::string, std::string> FindPorts(size_t want) {
  std::map<std::string, std::string> ports;
  uint64_t deadline = NowMs() + 10000;
  while (NowMs() < deadline) {
    ports.clear();
    if (DIR* d = ::opendir("/sys/class/virtio-ports")) {
      while (dirent* e = ::readdir(d)) {
        std::string node = e->d_name;
        if (node[0] == '.') continue;
        std::string name =
            ReadLineOf("/sys/class/virtio-ports/" + node + "/name");
        std::string dev = "/dev/" + node;
        if (!name.empty() && ::access(dev.c_str(), F_OK) == 0) {
          ports[name] = dev;
        }
      }
      ::closedir(d);
    }
    if (ports.size() >= want) return ports;
    ::usleep(10000);
  }
  Fatal("ports", "found " + std::to_string(ports.size()) + " of " +
                     std::to_string(want) + " virtio-serial ports");
}

// The root folder's entries, each bound read-only (symlinks recreated),
// as the namespaces backend composes /.
void BindRootEntries(const std::string& root) {
  DIR* d = ::opendir(root.c_str());
  if (d == nullptr) FatalErrno("opening the runtime root");
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string source = root + "/" + name;
    std::string target = std::string(kNewRoot) + "/" + name;
    struct stat st;
    if (::lstat(source.c_str(), &st) != 0) FatalErrno("lstat '" + name + "'");
    if (S_ISLNK(st.st_mode)) {
      char link[4096];
      ssize_t n = ::readlink(source.c_str(), link, sizeof(link) - 1);
      if (n < 0) FatalErrno("readlink '" + name + "'");
      link[n] = '\0';
      if (::symlink(link, target.c_str()) != 0 && errno != EEXIST) {
        FatalErrno("symlink '" + name + "'");
      }
    } else if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
      Bind(source, target);
    }
  }
  ::closedir(d);
}

void MakeDevNodes() {
  std::string dev = std::string(kNewRoot) + "/dev";
  MkdirP(dev);
  Mount("egg-dev", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=64k");
  struct Node {
    const char* name;
    unsigned minor;
  };
  for (Node n : {Node{"null", 3}, Node{"zero", 5}, Node{"full", 7},
                 Node{"random", 8}, Node{"urandom", 9}}) {
    std::string path = dev + "/" + n.name;
    if (::mknod(path.c_str(), S_IFCHR | 0666, makedev(1, n.minor)) != 0) {
      FatalErrno("mknod '" + path + "'");
    }
    ::chmod(path.c_str(), 0666);
  }
  ::symlink("/tmp", (dev + "/shm").c_str());
  ::symlink("/proc/self/fd", (dev + "/fd").c_str());
  ::symlink("/proc/self/fd/0", (dev + "/stdin").c_str());
  ::symlink("/proc/self/fd/1", (dev + "/stdout").c_str());
  ::symlink("/proc/self/fd/2", (dev + "/stderr").c_str());
}

void SetupCgroup(const VmPlan& plan) {
  MkdirP("/sys/fs/cgroup");
  Mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV, "");
  WriteText("/sys/fs/cgroup/cgroup.subtree_control", "+memory +pids +cpu");
  MkdirP(kCgroup);
  std::string cg = kCgroup;
  if (!WriteText(cg + "/memory.max", std::to_string(plan.memory_bytes)) ||
      !WriteText(cg + "/pids.max", std::to_string(plan.processes))) {
    FatalErrno("setting the cell's cgroup limits");
  }
  WriteText(cg + "/memory.swap.max", "0");
}

// The child: enters the new root and becomes the cell.
[[noreturn]] void RunCell(
    const VmPlan& plan, const std::vector<FdMove>& moves,
    const std::vector<std::vector<sock_filter>>& programs) {
  // Setup errors from here on reach the cell's stderr on the host.
  ApplyFdMap(moves, -1);
  if (!WriteText(std::string(kCgroup) + "/cgroup.procs", "0")) {
    DieErrno("joining the cell's cgroup");
  }
  if (::chdir(kNewRoot) != 0 || ::chroot(".") != 0) DieErrno("chroot");
  if (::chdir(plan.cwd.c_str()) != 0) DieErrno("cwd '" + plan.cwd + "'");
  rlimit core{0, 0};
  ::setrlimit(RLIMIT_CORE, &core);
  // No capability can come back: empty the bounding and ambient sets
  // while still root (numbers past the kernel's last one fail: ignored).
  for (int cap = 0; cap < 64; ++cap) ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
  ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  if (::setgroups(0, nullptr) != 0 || ::setgid(kCellId) != 0 ||
      ::setuid(kCellId) != 0) {
    DieErrno("dropping to uid 1000");
  }
  LoadSeccomp(programs);
  std::vector<char*> env;
  for (const std::string& e : plan.env)
    env.push_back(const_cast<char*>(e.data()));
  env.push_back(nullptr);
  std::vector<char*> args;
  for (const std::string& a : plan.argv)
    args.push_back(const_cast<char*>(a.data()));
  args.push_back(nullptr);
  ::execve(args[0], args.data(), env.data());
  Die("exec '" + plan.argv[0] + "'", strerror(errno));
}

void KillCell() { WriteText(std::string(kCgroup) + "/cgroup.kill", "1"); }

uint64_t CellCpuMs() {
  return KeyedValue(std::string(kCgroup) + "/cpu.stat", "usage_usec") / 1000;
}

// The cell's running budgets; a control line from the host restarts them.
struct Budget {
  uint64_t start_ms = 0;
  uint64_t cpu_base_ms = 0;
  uint64_t cpu_ms = 0;
  uint64_t wall_ms = 0;
  bool host_kill = false;
};

// Applies one control line; the answer goes back on the status port.
void HandleControl(const std::string& line, int out_fd, Budget* budget) {
  VmControl c;
  std::string why;
  if (!DecodeVmControl(line, &c, &why)) {
    WriteStatus("A 0 " + why + "\n");
    return;
  }
  std::string answer = "A " + std::to_string(c.seq);
  std::string cg = kCgroup;
  if (c.op == 'L') {
    if ((c.memory_bytes > 0 &&
         !WriteText(cg + "/memory.max", std::to_string(c.memory_bytes))) ||
        (c.processes > 0 &&
         !WriteText(cg + "/pids.max", std::to_string(c.processes)))) {
      answer += std::string(" setting limits: ") + strerror(errno);
    }
    if (c.cpu_ms > 0) budget->cpu_ms = c.cpu_ms;
    if (c.wall_ms > 0) budget->wall_ms = c.wall_ms;
    budget->start_ms = NowMs();
    budget->cpu_base_ms = CellCpuMs();
  } else if (c.op == 'S') {
    // ext4 without a journal: after syncfs the image on the host is
    // complete, so the host can read it back while the guest runs.
    if (out_fd >= 0 && ::syncfs(out_fd) != 0) {
      answer += std::string(" syncfs: ") + strerror(errno);
    }
  } else if (c.op == 'E') {
    // So that the host charges an OOM kill or a refused fork to the cell
    // that caused it (Sandbox::GetLimitEvents).
    WriteStatus("V " + std::to_string(c.seq) + " oom=" +
                std::to_string(KeyedValue(cg + "/memory.events", "oom_kill")) +
                " pids_max=" +
                std::to_string(KeyedValue(cg + "/pids.events", "max")) + "\n");
  } else {
    budget->host_kill = true;
    KillCell();
  }
  WriteStatus(answer + "\n");
}

}  // namespace

int VmMain(int argc, char** argv) {
  (void)argc;
  (void)argv;
  if (::getpid() != 1) Die("vm", "must run as PID 1 of the micro-VM");

  // Step 1: the kernel's file systems and the modules.
  MkdirP("/proc");
  MkdirP("/sys");
  MkdirP("/dev");
  Mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "");
  Mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "");
  Mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "");
  LoadModules();

  ::sethostname("egg", 3);
  // ApplyFdMap parks fds at 2048 and up: above the kernel's default 1024.
  rlimit files{4096, 4096};
  ::setrlimit(RLIMIT_NOFILE, &files);

  // Step 2: the plan, then the status port (errors reach the host there).
  std::string bytes;
  if (!ReadWhole("/egg/plan", &bytes, 1 << 20)) FatalErrno("reading the plan");
  VmPlan plan;
  std::string why;
  if (!DecodeVmPlan(bytes, &plan, &why)) Fatal("plan", why);
  std::vector<std::vector<sock_filter>> programs;
  std::string seccomp;
  if (!ReadWhole("/egg/seccomp", &seccomp, 1 << 20) ||
      !DecodeSeccomp(seccomp, &programs)) {
    Fatal("seccomp", "missing or malformed /egg/seccomp");
  }
  std::map<std::string, std::string> ports = FindPorts(plan.ports.size() + 1);
  auto status = ports.find("egg.status");
  if (status == ports.end()) Fatal("ports", "no egg.status port");
  g_status_fd = ::open(status->second.c_str(), O_RDWR | O_CLOEXEC);
  if (g_status_fd < 0) FatalErrno("opening the status port");

  // Step 3: the disks and the sandbox's root.
  std::map<std::string, std::string> disks = FindDisks(plan.disks.size());
  MkdirP(kNewRoot);
  Mount("egg-root", kNewRoot, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755");
  for (const VmDisk& disk : plan.disks) {
    auto it = disks.find(disk.serial);
    if (it == disks.end()) Fatal("disks", "no disk '" + disk.serial + "'");
    std::string mnt = "/mnt/" + disk.serial;
    MkdirP(mnt);
    if (disk.kind == VmDisk::kOut) {
      MkdirP(std::string(kNewRoot) + "/out");
      Mount(it->second, std::string(kNewRoot) + "/out", "ext4",
            MS_NOSUID | MS_NODEV, "");
      continue;
    }
    Mount(it->second, mnt, "erofs", MS_RDONLY | MS_NOSUID | MS_NODEV, "");
    if (disk.kind == VmDisk::kRoot) {
      BindRootEntries(mnt);
    } else {
      std::string source = disk.kind == VmDisk::kFile ? mnt + "/f" : mnt;
      Bind(source, std::string(kNewRoot) + disk.target);
    }
  }
  MountShares(plan);
  if (plan.network) BindResolvConf();
  SetupNetwork(plan);
  std::string tmp = std::string(kNewRoot) + "/tmp";
  MkdirP(tmp);
  Mount("egg-scratch", tmp, "tmpfs", MS_NOSUID | MS_NODEV,
        "mode=1777,size=" + std::to_string(plan.scratch_bytes));
  ::symlink("/tmp", (std::string(kNewRoot) + "/scratch").c_str());
  MkdirP(std::string(kNewRoot) + "/proc");
  Mount("proc", std::string(kNewRoot) + "/proc", "proc",
        MS_NOSUID | MS_NODEV | MS_NOEXEC, "");
  MakeDevNodes();
  Mount("", kNewRoot, nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
        "mode=755");
  SetupCgroup(plan);
  int out_fd = ::open((std::string(kNewRoot) + "/out").c_str(),
                      O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  // Step 4: the cell's fds: ports, or /dev/null.
  std::vector<FdMove> moves;
  std::vector<int> opened;
  for (const VmPort& port : plan.ports) {
    auto it = ports.find(port.name);
    if (it == ports.end()) Fatal("ports", "no port '" + port.name + "'");
    int fd = ::open(it->second.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) FatalErrno("opening port '" + port.name + "'");
    opened.push_back(fd);
    moves.push_back({fd, port.target});
  }
  for (int target : {0, 1, 2}) {
    bool mapped = false;
    for (const FdMove& m : moves) mapped = mapped || m.target == target;
    if (!mapped) moves.push_back({-1, target});
  }

  // Step 5: run the cell under its CPU and wall budgets.
  pid_t child = ::fork();
  if (child < 0) FatalErrno("fork");
  if (child == 0) RunCell(plan, moves, programs);
  for (int fd : opened) ::close(fd);
  WriteStatus("R\n");
  Budget budget;
  budget.start_ms = NowMs();
  budget.cpu_ms = plan.cpu_ms;
  budget.wall_ms = plan.wall_ms;
  std::string stopped = "none";
  std::string control;
  int wstatus = 0;
  for (;;) {
    pid_t got = ::waitpid(-1, &wstatus, WNOHANG);
    if (got == child) break;
    if (got > 0) continue;  // an orphan reparented to PID 1
    uint64_t used = CellCpuMs() - budget.cpu_base_ms;
    if (stopped == "none" && used > budget.cpu_ms) stopped = "cpu";
    if (stopped == "none" && NowMs() - budget.start_ms > budget.wall_ms) {
      stopped = "wall";
    }
    // An OOM kill ends the sandbox, as on the other backends.
    if (stopped == "none" &&
        KeyedValue(std::string(kCgroup) + "/memory.events", "oom_kill") > 0) {
      stopped = "memory";
    }
    if (stopped != "none" || budget.host_kill) KillCell();
    pollfd p{g_status_fd, POLLIN, 0};
    if (::poll(&p, 1, 20) > 0 && (p.revents & POLLIN)) {
      char buf[512];
      ssize_t n = ::read(g_status_fd, buf, sizeof(buf));
      if (n > 0) control.append(buf, n);
      for (size_t nl; (nl = control.find('\n')) != std::string::npos;) {
        HandleControl(control.substr(0, nl), out_fd, &budget);
        control.erase(0, nl + 1);
      }
      // A host that sends garbage without newlines is cut off.
      if (control.size() > 4096) control.clear();
    }
  }
  if (out_fd >= 0) ::close(out_fd);

  // Step 6: end the rest of the tree, measure, flush /out, report.
  KillCell();
  uint64_t drain = NowMs() + 5000;
  while (
      ReadLineOf(std::string(kCgroup) + "/cgroup.events").find("populated 1") !=
          std::string::npos &&
      NowMs() < drain) {
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    ::usleep(5000);
  }
  std::string cg = kCgroup;
  uint64_t oom = KeyedValue(cg + "/memory.events", "oom_kill");
  uint64_t pids_max = KeyedValue(cg + "/pids.events", "max");
  uint64_t cpu_ms = KeyedValue(cg + "/cpu.stat", "usage_usec") / 1000;
  std::string peak_text = ReadLineOf(cg + "/memory.peak");
  uint64_t peak = strtoull(peak_text.c_str(), nullptr, 10);
  struct statfs fs;
  uint64_t scratch_used = 0, scratch_free = 1;
  if (::statfs(tmp.c_str(), &fs) == 0) {
    scratch_used = (fs.f_blocks - fs.f_bfree) * fs.f_bsize;
    scratch_free = fs.f_bavail * fs.f_bsize;
  }
  ::sync();
  ::umount2((std::string(kNewRoot) + "/out").c_str(), 0);
  ::sync();
  std::string line = "X";
  line += WIFEXITED(wstatus) ? " exited=" + std::to_string(WEXITSTATUS(wstatus))
                             : " signal=" + std::to_string(WTERMSIG(wstatus));
  line += " stopped=" + stopped + " cpu_ms=" + std::to_string(cpu_ms) +
          " peak=" + std::to_string(peak) + " oom=" + std::to_string(oom) +
          " pids_max=" + std::to_string(pids_max) +
          " scratch=" + std::to_string(scratch_used) +
          " scratch_full=" + (scratch_free < 65536 ? "1" : "0") + "\n";
  WriteStatus(line);
  ::fsync(g_status_fd);
  ::reboot(RB_AUTOBOOT);
  return 0;
}

}  // namespace egg::guest
