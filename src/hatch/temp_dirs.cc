// Hatch's temporary folders, named for the process that owns them so that
// a later hatch can remove those left by one that was SIGKILLed.
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <string>

#include "common/fd.h"
#include "egg/hatch.h"

namespace egg {
namespace {

constexpr char kPrefix[] = "egg-hatch-";

// The pid in "egg-hatch-<pid>-XXXXXX", or 0 if `name` is not one of ours.
pid_t OwnerPid(const std::string& name) {
  const size_t prefix = sizeof(kPrefix) - 1;
  if (name.compare(0, prefix, kPrefix) != 0) return 0;
  size_t dash = name.find('-', prefix);
  if (dash == std::string::npos || dash == prefix || dash - prefix > 9 ||
      name.size() != dash + 7) {
    return 0;
  }
  long pid = 0;
  for (size_t i = prefix; i < dash; ++i) {
    if (name[i] < '0' || name[i] > '9') return 0;
    pid = pid * 10 + (name[i] - '0');
  }
  return static_cast<pid_t>(pid);
}

}  // namespace

Result<std::string> MakeHatchTempDir(const std::string& parent) {
  std::string tmpl = parent + "/" + kPrefix + std::to_string(getpid()) +
                     "-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    return Fail(ErrnoError("cannot create a temporary folder in '" + parent +
                           "'"));
  }
  return tmpl;
}

size_t SweepStaleHatchDirs(const std::string& parent) {
  DIR* dir = opendir(parent.c_str());
  if (dir == nullptr) return 0;
  size_t removed = 0;
  while (struct dirent* e = readdir(dir)) {
    std::string name = e->d_name;
    pid_t pid = OwnerPid(name);
    if (pid <= 0 || pid == getpid()) continue;
    // Only our own real folders: never a link, never another user's.
    std::string path = parent + "/" + name;
    struct stat st;
    if (lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) ||
        st.st_uid != geteuid()) {
      continue;
    }
    // EPERM means the pid is alive (another user's process): keep it.
    if (kill(pid, 0) == 0 || errno != ESRCH) continue;
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    if (!ec) ++removed;
  }
  closedir(dir);
  return removed;
}

}  // namespace egg
