// Granted host paths over virtiofs and the disk image cache of the vm
// backend; see vm_share.h.
#include "sandbox/vm_share.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <sstream>

#include "common/atomic_file.h"
#include "egg/hash.h"
#include "sandbox/log.h"

namespace egg::sandbox_internal {
namespace {

namespace fs = std::filesystem;

constexpr char kSumMagic[] = "egg-vm-image 1";
constexpr uint32_t kErofsMagic = 0xE0F5E1E2;
constexpr int kShareStartMs = 10000;

uint64_t NowMs() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

// Async-signal-safe: the child of a possibly threaded egg.
void ChildFail(int log, const char* what, const char* path) {
  const char* err = ::strerror(errno);
  for (const char* part :
       {"egg: virtiofs: ", what, " '", path, "': ", err, "\n"}) {
    ssize_t ignored = ::write(log, part, ::strlen(part));
    (void)ignored;
  }
  ::_exit(126);
}

std::string IdOf(const struct stat& st) {
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" +
         std::to_string(st.st_ctim.tv_sec) + "." +
         std::to_string(st.st_ctim.tv_nsec);
}

struct Sum {
  std::string sha256;
  uint64_t size = 0;
  std::string id;
};

std::string EncodeSum(const Sum& s) {
  return std::string(kSumMagic) + "\nsha256 " + s.sha256 + "\nsize " +
         std::to_string(s.size) + "\nid " + s.id + "\n";
}

bool DecodeSum(const std::string& text, Sum* s) {
  std::istringstream in(text);
  std::string magic, k1, k2, k3;
  std::getline(in, magic);
  if (magic != kSumMagic) return false;
  if (!(in >> k1 >> s->sha256 >> k2 >> s->size >> k3 >> s->id)) return false;
  return k1 == "sha256" && k2 == "size" && k3 == "id" && s->sha256.size() == 64;
}

Result<std::string> HashFile(int fd) {
  Sha256 h;
  std::string buf(1 << 20, '\0');
  uint64_t at = 0;
  for (;;) {
    ssize_t n =
        RetryEintr([&] { return ::pread(fd, buf.data(), buf.size(), at); });
    if (n < 0) return Fail(ErrnoError("reading a cached image"));
    if (n == 0) break;
    h.Update(std::string_view(buf.data(), n));
    at += n;
  }
  return DigestHex(h.Finish());
}

// Owned by us and writable by nobody else.
bool Private(const struct stat& st) {
  return st.st_uid == ::geteuid() && (st.st_mode & 022) == 0;
}

// Checks the published entry `entry` and locks it shared. kNotFound when
// it is absent, kCorruption when it fails a check.
Result<CachedImage> OpenEntry(const std::string& entry) {
  int raw =
      ::open(entry.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (raw < 0) {
    if (errno == ENOENT) return Fail(Code::kNotFound, "no cached image");
    return Fail(ErrnoError("opening '" + entry + "'"));
  }
  UniqueFd dir(raw);
  if (RetryEintr([&] { return ::flock(dir.get(), LOCK_SH); }) != 0) {
    return Fail(ErrnoError("locking '" + entry + "'"));
  }
  // A gc may have moved the entry away between open and lock.
  struct stat held, now;
  if (::fstat(dir.get(), &held) != 0 || ::lstat(entry.c_str(), &now) != 0 ||
      held.st_ino != now.st_ino || held.st_dev != now.st_dev) {
    return Fail(Code::kNotFound, "the cached image was removed");
  }
  auto bad = [&](const std::string& why) {
    return Fail(Code::kCorruption, "cached image '" + entry + "': " + why);
  };
  if (!Private(held)) return bad("folder is not private to this user");
  int sum_fd = ::openat(dir.get(), "SUM", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (sum_fd < 0) return bad("no SUM");
  UniqueFd sum_file(sum_fd);
  char text[512];
  ssize_t n = ::pread(sum_file.get(), text, sizeof(text), 0);
  Sum sum;
  if (n <= 0 || n == sizeof(text) || !DecodeSum(std::string(text, n), &sum)) {
    return bad("malformed SUM");
  }
  int image_fd =
      ::openat(dir.get(), "image.erofs", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (image_fd < 0) return bad("no image");
  UniqueFd image(image_fd);
  struct stat st;
  if (::fstat(image.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return bad("image is not a regular file");
  }
  if (!Private(st)) return bad("image is not private to this user");
  if (static_cast<uint64_t>(st.st_size) != sum.size) return bad("size");
  unsigned char magic[4];
  if (::pread(image.get(), magic, 4, 1024) != 4 ||
      (magic[0] | magic[1] << 8 | magic[2] << 16 |
       static_cast<uint32_t>(magic[3]) << 24) != kErofsMagic) {
    return bad("no erofs superblock");
  }
  // The very file hashed when it was made, unchanged since (a write
  // moves ctime), or else its content must hash as recorded.
  if (IdOf(st) != sum.id) {
    auto hex = HashFile(image.get());
    if (!hex) return Fail(hex.error());
    if (*hex != sum.sha256) return bad("SHA-256 mismatch");
  }
  return CachedImage{entry + "/image.erofs", std::move(dir)};
}

// Moves an entry out of the way (atomic), then deletes it.
void Discard(const std::string& cache_dir, const std::string& entry) {
  std::string trash = cache_dir + "/.trash-" + std::to_string(::getpid()) +
                      "-" + std::to_string(NowMs());
  std::error_code ec;
  if (::rename(entry.c_str(), trash.c_str()) == 0) fs::remove_all(trash, ec);
}

// Makes the entry in a private temporary folder and publishes it.
Status MakeEntry(const std::string& cache_dir, const std::string& name,
                 const std::function<Status(const std::string&)>& make) {
  std::string tmpl = cache_dir + "/.tmp-" + std::to_string(::getpid()) + "-" +
                     name + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return Fail(ErrnoError("creating a folder in '" + cache_dir + "'"));
  }
  std::string tmp = tmpl;
  std::error_code ec;
  auto fail = [&](Error e) -> Status {
    fs::remove_all(tmp, ec);
    return Fail(std::move(e));
  };
  std::string image = tmp + "/image.erofs";
  if (auto s = make(image); !s) return fail(s.error());
  int raw = ::open(image.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (raw < 0) return fail(ErrnoError("opening '" + image + "'"));
  UniqueFd fd(raw);
  struct stat st;
  if (::fchmod(fd.get(), 0444) != 0 || ::fsync(fd.get()) != 0 ||
      ::fstat(fd.get(), &st) != 0) {
    return fail(ErrnoError("sealing '" + image + "'"));
  }
  auto hex = HashFile(fd.get());
  if (!hex) return fail(hex.error());
  Sum sum{*hex, static_cast<uint64_t>(st.st_size), IdOf(st)};
  if (auto s = WriteFileAtomic(tmp + "/SUM", EncodeSum(sum), 0444, false); !s) {
    return fail(s.error());
  }
  ::chmod(tmp.c_str(), 0755);
  // Renaming onto a folder that exists fails: the first maker wins.
  if (::rename(tmp.c_str(), (cache_dir + "/" + name).c_str()) != 0) {
    if (errno != ENOTEMPTY && errno != EEXIST) {
      return fail(ErrnoError("publishing '" + name + "'"));
    }
    fs::remove_all(tmp, ec);
  }
  return {};
}

bool PidAlive(const std::string& text) {
  char* end = nullptr;
  long pid = std::strtol(text.c_str(), &end, 10);
  return pid > 0 && end != text.c_str() &&
         (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
}

uint64_t TreeBytes(const std::string& path) {
  uint64_t total = 0;
  std::error_code ec;
  if (fs::is_regular_file(fs::symlink_status(path, ec))) {
    return fs::file_size(path, ec);
  }
  for (auto it = fs::recursive_directory_iterator(path, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) {
      total += it->file_size(ec);
    }
  }
  return total;
}

}  // namespace

std::string VmImageCacheDir() {
  if (const char* env = ::getenv("EGG_VM_IMAGE_CACHE"); env && *env == '/') {
    return env;
  }
  const char* cache = ::getenv("EGG_VM_CACHE");
  return std::string(cache != nullptr && *cache == '/' ? cache
                                                       : "/var/cache/egg-vm") +
         "/roots";
}

Result<CachedImage> CachedErofs(
    const std::string& cache_dir, const std::string& name,
    const std::function<Status(const std::string&)>& make) {
  std::error_code ec;
  fs::create_directories(cache_dir, ec);
  if (ec) {
    return Fail(Code::kIo, "creating '" + cache_dir + "': " + ec.message());
  }
  std::string entry = cache_dir + "/" + name;
  // A damaged or vanished entry is made again (a few rounds at most).
  for (int round = 0; round < 3; ++round) {
    auto got = OpenEntry(entry);
    if (got) return got;
    if (got.error().code() == Code::kCorruption) {
      LogWarning("vm: " + got.error().message() + "; making it again");
      Discard(cache_dir, entry);
    } else if (got.error().code() != Code::kNotFound) {
      return Fail(got.error());
    }
    if (auto s = MakeEntry(cache_dir, name, make); !s) return Fail(s.error());
  }
  return Fail(Code::kSandboxSetup,
              "vm: the cached image '" + entry + "' keeps vanishing");
}

Result<VirtiofsServer> StartVirtiofsd(const std::string& program,
                                      const std::vector<SandboxBind>& binds,
                                      const std::string& dir) {
  // Mount points on the host side: plain empty folders and files.
  std::string share = dir + "/share";
  if (::mkdir(share.c_str(), 0755) != 0) {
    return Fail(ErrnoError("creating '" + share + "'"));
  }
  std::vector<std::string> targets;
  for (size_t i = 0; i < binds.size(); ++i) {
    std::string t = share + "/" + std::to_string(i);
    struct stat st;
    if (::stat(binds[i].host.c_str(), &st) != 0) {
      return Fail(ErrnoError("host path '" + binds[i].host + "'"));
    }
    bool made = false;
    if (S_ISDIR(st.st_mode)) {
      made = ::mkdir(t.c_str(), 0755) == 0;
    } else if (int fd = ::open(t.c_str(),
                               O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
               fd >= 0) {
      made = ::close(fd) == 0;
    }
    if (!made) return Fail(ErrnoError("creating '" + t + "'"));
    targets.push_back(t);
  }
  VirtiofsServer server;
  server.socket = dir + "/fs.sock";
  std::string log_path = dir + "/virtiofsd.log";
  std::vector<std::string> argv = {program, "--socket-path=" + server.socket,
                                   "-o",    "source=" + share,
                                   "-o",    "sandbox=namespace",
                                   "-o",    "no_posix_lock",
                                   "-o",    "no_flock",
                                   "-o",    "no_xattr"};
  std::vector<char*> args;
  for (std::string& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  int log =
      ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log < 0) return Fail(ErrnoError("creating '" + log_path + "'"));
  UniqueFd log_fd(log);

  pid_t pid = ::fork();
  if (pid < 0) return Fail(ErrnoError("fork"));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::unshare(CLONE_NEWNS) != 0) ChildFail(log, "unshare", "");
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      ChildFail(log, "making mounts private", "/");
    }
    for (size_t i = 0; i < binds.size(); ++i) {
      const char* target = targets[i].c_str();
      unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV;
      if (!binds[i].writable) flags |= MS_RDONLY;
      if (::mount(binds[i].host.c_str(), target, nullptr, MS_BIND, nullptr) !=
          0) {
        ChildFail(log, "binding", binds[i].host.c_str());
      }
      if (::mount(nullptr, target, nullptr, flags, nullptr) != 0) {
        ChildFail(log, "restricting", binds[i].host.c_str());
      }
    }
    int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    ::dup2(log, 1);
    ::dup2(log, 2);
    ::execv(args[0], args.data());
    ChildFail(log, "exec", args[0]);
  }
  server.pid = pid;

  // QEMU connects at once: wait for the socket, or virtiofsd's end.
  uint64_t deadline = NowMs() + kShareStartMs;
  for (;;) {
    struct stat st;
    if (::stat(server.socket.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      return server;
    }
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      auto text = ReadFileToString(log_path, 1 << 16);
      std::string last = "virtiofsd ended";
      if (text) {
        std::istringstream lines(*text);
        for (std::string line; std::getline(lines, line);) {
          if (!line.empty()) last = line;
        }
      }
      return Fail(Code::kSandboxSetup, "vm: host paths: " + last);
    }
    if (NowMs() > deadline) {
      server.pid = -1;
      ::kill(pid, SIGKILL);
      RetryEintr([&] { return ::waitpid(pid, nullptr, 0); });
      return Fail(Code::kSandboxSetup,
                  "vm: virtiofsd did not start in " +
                      std::to_string(kShareStartMs / 1000) + " s");
    }
    ::usleep(5000);
  }
}

void StopVirtiofsd(VirtiofsServer& server) {
  if (server.pid <= 0) return;
  ::kill(server.pid, SIGKILL);
  RetryEintr([&] { return ::waitpid(server.pid, nullptr, 0); });
  server.pid = -1;
}

}  // namespace egg::sandbox_internal

namespace egg {

Result<VmImageCacheStats> CollectVmImageCache(
    const std::function<bool(const Digest&)>& keep_root) {
  using sandbox_internal::PidAlive;
  using sandbox_internal::TreeBytes;
  VmImageCacheStats stats;
  std::string cache = sandbox_internal::VmImageCacheDir();
  DIR* d = ::opendir(cache.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return stats;
    return Fail(ErrnoError("reading '" + cache + "'"));
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const std::string& name : names) {
    std::string path = cache + "/" + name;
    // A maker's temporary folder, while its process lives.
    if (name.rfind(".tmp-", 0) == 0 && PidAlive(name.substr(5))) continue;
    if (name.rfind(".trash-", 0) == 0 && PidAlive(name.substr(7))) continue;
    if (name.rfind("root-e1-", 0) == 0 && keep_root) {
      auto digest = ParseDigest(name.substr(8));
      if (digest && keep_root(*digest)) continue;
    }
    // Another user's images are theirs to collect.
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0 || st.st_uid != ::geteuid()) continue;
    ++stats.entries;
    // A folder a running sandbox holds (shared lock) is busy.
    UniqueFd lock;
    if (S_ISDIR(st.st_mode)) {
      int raw =
          ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (raw >= 0) lock = UniqueFd(raw);
      if (lock.get() >= 0 && ::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
        ++stats.busy;
        continue;
      }
    }
    uint64_t bytes = TreeBytes(path);
    std::string trash =
        cache + "/.trash-" + std::to_string(::getpid()) + "-gc-" + name;
    if (::rename(path.c_str(), trash.c_str()) != 0) continue;
    fs::remove_all(trash, ec);
    ++stats.removed;
    stats.removed_bytes += bytes;
  }
  return stats;
}

}  // namespace egg
