// WriteBundle: the SandboxSpec as an OCI runtime bundle (config.json and
// a root of mount points). runc, crun and runsc read the same file; the
// few differences (gVisor's own /dev and task limit) are marked.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/fd.h"
#include "sandbox/oci_backend.h"

namespace egg::sandbox_internal {
namespace {

using nlohmann::json;

constexpr const char* kReservedTop[] = {"proc",    "dev", "tmp",
                                        "scratch", "out", ".egg-init"};

// Paths from /proc that runc's own default configuration hides.
constexpr const char* kMaskedPaths[] = {
    "/proc/acpi",        "/proc/asound",        "/proc/kcore",
    "/proc/keys",        "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug",   "/proc/scsi",
    "/sys/firmware"};
constexpr const char* kReadonlyPaths[] = {"/proc/bus", "/proc/fs", "/proc/irq",
                                          "/proc/sys", "/proc/sysrq-trigger"};

bool Reserved(const std::string& name) {
  return std::find(std::begin(kReservedTop), std::end(kReservedTop), name) !=
         std::end(kReservedTop);
}

// Creates `rel` (a folder, or an empty file) under root, parents included.
Status MakeMountPoint(const std::string& root, const std::string& rel,
                      bool directory) {
  std::string path = root;
  size_t pos = 0;
  while (pos < rel.size()) {
    size_t slash = rel.find('/', pos);
    if (slash == std::string::npos) slash = rel.size();
    std::string part = rel.substr(pos, slash - pos);
    pos = slash + 1;
    if (part.empty()) continue;
    path += "/" + part;
    bool last = pos >= rel.size();
    if (last && !directory) {
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) return Fail(ErrnoError("making mount point '" + path + "'"));
      ::close(fd);
    } else if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
      return Fail(ErrnoError("making mount point '" + path + "'"));
    }
  }
  return {};
}

json BindMount(const std::string& source, const std::string& target,
               bool writable) {
  return {{"destination", target},
          {"type", "bind"},
          {"source", source},
          {"options", {"rbind", writable ? "rw" : "ro", "nosuid", "nodev"}}};
}

struct PendingBind {
  std::string host;
  std::string target;  // absolute, in the sandbox
  bool directory = true;
  bool writable = false;
};

Status AddRoot(const SandboxSpec& spec, const std::string& rootfs,
               std::vector<PendingBind>* binds) {
  if (!spec.root_folder().empty()) {
    const std::string& folder = spec.root_folder();
    DIR* d = ::opendir(folder.c_str());
    if (d == nullptr) return Fail(ErrnoError("listing '" + folder + "'"));
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != ".." && !Reserved(name)) {
        names.push_back(name);
      }
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      std::string host = folder + "/" + name;
      struct stat st;
      if (::lstat(host.c_str(), &st) != 0) {
        return Fail(ErrnoError("reading '" + host + "'"));
      }
      if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = ::readlink(host.c_str(), target, sizeof(target) - 1);
        if (n < 0) return Fail(ErrnoError("reading link '" + host + "'"));
        std::string link = rootfs + "/" + name;
        if (::symlink(std::string(target, n).c_str(), link.c_str()) != 0) {
          return Fail(ErrnoError("making link '" + link + "'"));
        }
      } else if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
        binds->push_back({host, "/" + name, S_ISDIR(st.st_mode), false});
      }
      // Sockets, fifos and device nodes in a runtime are not carried over.
    }
  }
  for (const SandboxBind& part : spec.root_parts()) {
    struct stat st;
    if (::stat(part.host.c_str(), &st) != 0) {
      return Fail(ErrnoError("reading '" + part.host + "'"));
    }
    binds->push_back({part.host, part.sandbox, S_ISDIR(st.st_mode), false});
  }
  return {};
}

}  // namespace

Status WriteBundle(const SandboxSpec& spec, const BundlePlan& plan) {
  std::string bundle = plan.dir + "/bundle";
  std::string rootfs = bundle + "/rootfs";
  for (const std::string& d : {bundle, rootfs}) {
    if (::mkdir(d.c_str(), 0755) != 0) {
      return Fail(ErrnoError("making '" + d + "'"));
    }
  }

  // Every bind, the root's first; parents sort before their children.
  std::vector<PendingBind> binds;
  if (auto s = AddRoot(spec, rootfs, &binds); !s) return s;
  for (const SandboxBind& b : spec.binds()) {
    struct stat st;
    if (::stat(b.host.c_str(), &st) != 0) {
      return Fail(ErrnoError("reading '" + b.host + "'"));
    }
    binds.push_back({b.host, b.sandbox, S_ISDIR(st.st_mode), b.writable});
  }
  if (!spec.output().empty())
    binds.push_back({spec.output(), "/out", true, true});
  binds.push_back({plan.scratch_host, "/tmp", true, true});
  binds.push_back({plan.init_host, kOciInitPath, false, false});
  binds.push_back({plan.seccomp_host, kOciSeccompPath, false, false});
  std::stable_sort(binds.begin(), binds.end(),
                   [](const PendingBind& a, const PendingBind& b) {
                     return a.target < b.target;
                   });
  for (const char* top : {"proc", "dev"}) {
    if (auto s = MakeMountPoint(rootfs, top, true); !s) return s;
  }
  std::string scratch_link = rootfs + "/scratch";
  if (::symlink("/tmp", scratch_link.c_str()) != 0) {
    return Fail(ErrnoError("making link '" + scratch_link + "'"));
  }

  // Mounts: the kernel file systems, then the binds in order.
  const std::string size =
      "size=" + std::to_string(*spec.limits().scratch_bytes);
  json mounts = json::array();
  mounts.push_back({{"destination", "/proc"},
                    {"type", "proc"},
                    {"source", "proc"},
                    {"options", {"nosuid", "nodev", "noexec"}}});
  if (!plan.gvisor) {
    // gVisor makes its own /dev (null, zero, full, random, urandom, tty).
    mounts.push_back(
        {{"destination", "/dev"},
         {"type", "tmpfs"},
         {"source", "tmpfs"},
         {"options", {"nosuid", "noexec", "mode=755", "size=64k"}}});
  }
  mounts.push_back({{"destination", "/dev/shm"},
                    {"type", "tmpfs"},
                    {"source", "shm"},
                    {"options", {"nosuid", "nodev", "mode=1777", size}}});
  for (const PendingBind& b : binds) {
    if (auto s = MakeMountPoint(rootfs, b.target.substr(1), b.directory); !s) {
      return s;
    }
    mounts.push_back(BindMount(b.host, b.target, b.writable));
  }
  // Granted devices (runc and crun; StartOciSandbox refuses them for
  // gVisor): each host node is bound at its own path, as the namespaces
  // backend does, and allowed in the device cgroup, which otherwise
  // denies everything but the runtime's standard nodes. The node's own
  // mode still applies to the sandbox's unprivileged user.
  json device_rules = json::array();
  for (const std::string& device : spec.devices()) {
    struct stat st;
    if (::stat(device.c_str(), &st) != 0) {
      return Fail(ErrnoError("reading device '" + device + "'"));
    }
    if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) {
      return Fail(Code::kInvalidArgument,
                  "'" + device + "' is not a device node");
    }
    mounts.push_back({{"destination", device},
                      {"type", "bind"},
                      {"source", device},
                      {"options", {"bind", "rw", "nosuid", "noexec"}}});
    device_rules.push_back({{"allow", true},
                            {"type", S_ISCHR(st.st_mode) ? "c" : "b"},
                            {"major", static_cast<int64_t>(major(st.st_rdev))},
                            {"minor", static_cast<int64_t>(minor(st.st_rdev))},
                            {"access", "rw"}});
  }

  // The process: egg-init first, as uid/gid 1000 with no capabilities.
  std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin",
                                  "HOME=/scratch", "TMPDIR=/tmp",
                                  "LANG=C.UTF-8"};
  for (const std::string& e : spec.env()) {
    std::string prefix = e.substr(0, e.find('=') + 1);
    std::erase_if(env, [&](const std::string& x) {
      return x.compare(0, prefix.size(), prefix) == 0;
    });
    env.push_back(e);
  }
  json none = json::array();
  json process = {
      {"terminal", false},
      {"user", {{"uid", 1000}, {"gid", 1000}}},
      {"args", plan.args},
      {"env", env},
      {"cwd", spec.cwd()},
      {"capabilities",
       {{"bounding", none},
        {"effective", none},
        {"inheritable", none},
        {"permitted", none},
        {"ambient", none}}},
      // RLIMIT_FSIZE as in the namespaces backend (sandbox.cc).
      {"rlimits",
       {{{"type", "RLIMIT_CORE"}, {"hard", 0}, {"soft", 0}},
        {{"type", "RLIMIT_FSIZE"},
         {"hard", *spec.limits().output_bytes + 1},
         {"soft", *spec.limits().output_bytes + 1}}}},
      {"noNewPrivileges", true},
  };
  if (plan.gvisor) {
    // The guest's own task limit: the Sentry refuses the fork (EAGAIN)
    // long before its host tasks meet the host group's limit, which
    // would end the Sentry itself (see StartOciSandbox).
    process["rlimits"].push_back({{"type", "RLIMIT_NPROC"},
                                  {"hard", *spec.limits().processes},
                                  {"soft", *spec.limits().processes}});
  }

  json namespaces = json::array();
  for (const char* ns : {"pid", "ipc", "uts", "mount"}) {
    namespaces.push_back({{"type", ns}});
  }
  if (!spec.network()) namespaces.push_back({{"type", "network"}});
  // Memory and task limits sit on the parent group egg made (see
  // ContainerCgroup), so that its counters survive the container.
  json linux = {
      {"namespaces", namespaces},
      {"cgroupsPath", plan.cgroup_name},
      {"maskedPaths", kMaskedPaths},
      {"readonlyPaths", kReadonlyPaths},
  };
  if (!device_rules.empty()) {
    linux["resources"] = {{"devices", device_rules}};
  }
  // runc and crun run the container in this user namespace; runsc runs
  // its gofer in it (the Sentry is a user namespace of its own), so the
  // files the cell makes in /out belong to the host's nobody there too.
  // The gofer is the namespace's root and must reach the runtime's
  // root-only folders (the store): under gVisor container root stays
  // host root, whose capabilities there reach only files owned by root
  // (before, the gofer ran as root outside any user namespace).
  linux["namespaces"].push_back({{"type", "user"}});
  unsigned setup_id = plan.gvisor ? 0 : kOciSetupHostId;
  json ids = {{{"containerID", 0}, {"hostID", setup_id}, {"size", 1}},
              {{"containerID", 1000}, {"hostID", kOciNobody}, {"size", 1}}};
  linux["uidMappings"] = ids;
  linux["gidMappings"] = ids;

  json config = {{"ociVersion", "1.0.2"},
                 {"process", process},
                 {"root", {{"path", "rootfs"}, {"readonly", true}}},
                 {"hostname", "egg"},
                 {"mounts", mounts},
                 {"linux", linux}};
  return WriteFileAtomic(bundle + "/config.json", config.dump(1) + "\n", 0644,
                         false);
}

}  // namespace egg::sandbox_internal
