// Runtimes from Debian packages through mmdebstrap.
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>

#include "common/fd.h"
#include "runtime/internal.h"
#include "store/fs_util.h"

extern char** environ;

namespace egg {
namespace runtime_internal {

Result<int> RunLogged(const std::vector<std::string>& argv,
                      const std::vector<std::string>& env,
                      const std::string& log_path) {
  auto log = OpenFile(log_path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW,
                      0600);
  if (!log) return Fail(log.error());
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, log->get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, log->get(), STDERR_FILENO);

  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid;
  int err = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(),
                         envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) return Fail(ErrnoError("cannot run " + Quote(argv[0]), err));
  int status = 0;
  if (RetryEintr([&] { return ::waitpid(pid, &status, 0); }) != pid) {
    return Fail(ErrnoError("waitpid"));
  }
  if (!WIFEXITED(status)) {
    return Fail(Code::kIo, Quote(argv[0]) + " was killed by a signal");
  }
  return WEXITSTATUS(status);
}

}  // namespace runtime_internal

using namespace runtime_internal;

namespace {

// Removes files that differ between two installs of the same packages.
// Runs on the host with the chroot folder as $1 (mmdebstrap's
// --customize-hook); mmdebstrap has already removed apt lists, caches,
// the usual logs and the ldconfig aux-cache and emptied /etc/machine-id.
constexpr char kCleanupHook[] =
    "set -e; r=\"$1\"; "
    "rm -f \"$r/etc/resolv.conf\"; "
    "printf 'egg\\n' > \"$r/etc/hostname\"; "
    "chmod 0644 \"$r/etc/hostname\"; "
    "rm -f \"$r\"/var/lib/dpkg/*-old \"$r\"/var/cache/debconf/*-old; "
    "rm -f \"$r/var/cache/ldconfig/aux-cache\" "
    "\"$r/var/lib/dbus/machine-id\" \"$r\"/var/cache/apt/*.bin; "
    "if [ -d \"$r/var/log\" ]; then "
    "find \"$r/var/log\" -type f -delete; fi; "
    "if [ -e \"$r/etc/machine-id\" ]; then : > \"$r/etc/machine-id\"; fi";

struct KnownSuite {
  const char* name;
  int64_t release_epoch;  // the suite's first release day, 00:00 UTC
};
constexpr KnownSuite kKnownSuites[] = {
    {"buster", 1562371200},    // 2019-07-06
    {"bullseye", 1628899200},  // 2021-08-14
    {"bookworm", 1686355200},  // 2023-06-10
    {"trixie", 1754697600},    // 2025-08-09
};

bool IsPackageName(const std::string& p) {
  // Debian policy 5.6.1, optionally with ":arch" or "=version".
  size_t end = p.find_first_of(":=");
  std::string name = p.substr(0, end);
  if (name.size() < 2 || !(std::islower(name[0]) || std::isdigit(name[0]))) {
    return false;
  }
  for (char c : name) {
    if (!(std::islower(c) || std::isdigit(c) || c == '+' || c == '-' ||
          c == '.')) {
      return false;
    }
  }
  if (end == std::string::npos) return true;
  std::string rest = p.substr(end + 1);
  if (rest.empty()) return false;
  return std::all_of(rest.begin(), rest.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' ||
           c == '+' || c == '-' || c == '~' || c == ':';
  });
}

bool IsWord(const std::string& s) {
  return !s.empty() && s.size() <= 64 &&
         std::all_of(s.begin(), s.end(), [](char c) {
           return std::islower(static_cast<unsigned char>(c)) ||
                  std::isdigit(static_cast<unsigned char>(c)) || c == '-';
         }) &&
         s[0] != '-';
}

bool FindInPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

std::string LastLine(const std::string& path) {
  auto text = ReadFileToString(path, 64ull << 20);
  if (!text) return "(no output)";
  std::string t = *text;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

std::vector<std::string> HostEnvironment(int64_t epoch,
                                         const std::string& tmpdir) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string v = *e;
    if (v.rfind("SOURCE_DATE_EPOCH=", 0) == 0 || v.rfind("TMPDIR=", 0) == 0 ||
        v.rfind("LC_ALL=", 0) == 0) {
      continue;
    }
    env.push_back(v);
  }
  env.push_back("SOURCE_DATE_EPOCH=" + std::to_string(epoch));
  env.push_back("TMPDIR=" + tmpdir);
  env.push_back("LC_ALL=C.UTF-8");
  return env;
}

// "name\tversion\tarch\n" lines from dpkg-query over the root's database.
Result<std::vector<PackageVersion>> QueryPackages(const std::string& root,
                                                  const std::string& work) {
  std::string out = work + "/packages.txt";
  auto code = RunLogged(
      {"dpkg-query", "--admindir=" + root + "/var/lib/dpkg", "-W",
       "-f=${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n"},
      HostEnvironment(0, work), out);
  if (!code) return Fail(code.error());
  if (*code != 0) {
    return Fail(Code::kIo, "dpkg-query failed: " + LastLine(out));
  }
  auto text = ReadFileToString(out, 64ull << 20);
  if (!text) return Fail(text.error());
  std::vector<PackageVersion> packages;
  size_t start = 0;
  while (start < text->size()) {
    size_t end = text->find('\n', start);
    if (end == std::string::npos) end = text->size();
    std::string line = text->substr(start, end - start);
    start = end + 1;
    std::vector<std::string> f;
    size_t s = 0;
    for (size_t tab = line.find('\t'); tab != std::string::npos;
         tab = line.find('\t', s)) {
      f.push_back(line.substr(s, tab - s));
      s = tab + 1;
    }
    f.push_back(line.substr(s));
    if (f.size() != 4 || f[0].rfind("ii", 0) != 0) continue;
    packages.push_back({f[1], f[2], f[3]});
  }
  std::sort(packages.begin(), packages.end(),
            [](const PackageVersion& a, const PackageVersion& b) {
              return a.name < b.name;
            });
  return packages;
}

}  // namespace

Status ValidateDebianOptions(const DebianOptions& options) {
  if (!IsWord(options.suite)) {
    return Fail(Code::kInvalidArgument,
                "suite " + Quote(options.suite) + " is not a suite name");
  }
  static const char* kVariants[] = {"essential", "apt",       "minbase",
                                    "required",  "important", "standard"};
  if (std::find_if(std::begin(kVariants), std::end(kVariants),
                   [&](const char* v) { return options.variant == v; }) ==
      std::end(kVariants)) {
    return Fail(Code::kInvalidArgument,
                "variant " + Quote(options.variant) +
                    " is not one of essential, apt, minbase, required, "
                    "important, standard");
  }
  if (!options.architecture.empty() && !IsWord(options.architecture)) {
    return Fail(Code::kInvalidArgument, "architecture " +
                                            Quote(options.architecture) +
                                            " is not an architecture name");
  }
  if (!options.mirror.empty()) {
    const std::string& m = options.mirror;
    bool scheme = m.rfind("http://", 0) == 0 || m.rfind("https://", 0) == 0 ||
                  m.rfind("file:///", 0) == 0;
    bool clean = std::none_of(m.begin(), m.end(), [](char c) {
      return std::isspace(static_cast<unsigned char>(c)) || c == ',' ||
             static_cast<unsigned char>(c) < 0x20;
    });
    if (!scheme || !clean) {
      return Fail(Code::kInvalidArgument,
                  "mirror " + Quote(m) +
                      " must be an http://, https:// or file:/// URI");
    }
  }
  for (const auto& p : options.packages) {
    if (!IsPackageName(p)) {
      return Fail(Code::kInvalidArgument,
                  Quote(p) + " is not a Debian package name");
    }
  }
  return {};
}

Result<int64_t> DebianSourceDateEpoch(const DebianOptions& options) {
  if (options.source_date_epoch) {
    if (*options.source_date_epoch < 0) {
      return Fail(Code::kInvalidArgument,
                  "SOURCE_DATE_EPOCH must not be negative");
    }
    return *options.source_date_epoch;
  }
  for (const auto& s : kKnownSuites) {
    if (options.suite == s.name) return s.release_epoch;
  }
  return Fail(Code::kInvalidArgument,
              "no fixed date is known for suite " + Quote(options.suite) +
                  "; pass --source-date-epoch");
}

Result<RuntimeInfo> CreateDebianRuntime(Store& store,
                                        const DebianOptions& options) {
  if (auto s = ValidateDebianOptions(options); !s) return Fail(s.error());
  auto epoch = DebianSourceDateEpoch(options);
  if (!epoch) return Fail(epoch.error());
  if (!FindInPath("mmdebstrap")) {
    return Fail(Code::kNotSupported,
                "mmdebstrap is not installed (apt-get install mmdebstrap)");
  }

  std::string parent =
      options.work_dir.empty() ? store.TempDir() : options.work_dir;
  auto work = MakeTempDir(parent, "debian-");
  if (!work) return Fail(work.error());
  auto result = [&]() -> Result<RuntimeInfo> {
    // Build: mmdebstrap writes a tarball; as root it uses root mode,
    // otherwise unshare mode (its "auto").
    std::string tarball = *work + "/root.tar";
    std::string log = *work + "/mmdebstrap.log";
    std::vector<std::string> argv = {"mmdebstrap", "--variant=" +
                                                       options.variant,
                                     "--format=tar", "--quiet"};
    if (!options.packages.empty()) {
      std::string include = "--include=";
      for (size_t i = 0; i < options.packages.size(); ++i) {
        include += (i ? "," : "") + options.packages[i];
      }
      argv.push_back(include);
    }
    if (!options.architecture.empty()) {
      argv.push_back("--architectures=" + options.architecture);
    }
    argv.push_back(std::string("--customize-hook=") + kCleanupHook);
    argv.push_back(options.suite);
    argv.push_back(tarball);
    if (!options.mirror.empty()) argv.push_back(options.mirror);
    auto code = RunLogged(argv, HostEnvironment(*epoch, *work), log);
    if (!code) return Fail(code.error());
    if (*code != 0) {
      return Fail(Code::kIo, "mmdebstrap failed (exit " +
                                 std::to_string(*code) +
                                 "): " + LastLine(log));
    }

    // Import: same checks as any tarball, setuid bits cleared, /dev
    // nodes dropped (the sandbox provides its own /dev).
    std::string root = *work + "/root";
    if (::mkdir(root.c_str(), 0700) != 0) {
      return Fail(ErrnoError("cannot create " + Quote(root)));
    }
    ImportOptions import;
    import.strip_setuid = true;
    if (auto s = ExtractTarball(tarball, root, import, true); !s) {
      return Fail(s.error());
    }
    ::unlink(tarball.c_str());
    auto packages = QueryPackages(root, *work);
    if (!packages) return Fail(packages.error());
    ScanTotals totals;
    auto tree = ScanFolder(store, root, import, &totals);
    if (!tree) return Fail(tree.error());
    auto digest = StoreTree(store, *tree);
    if (!digest) return Fail(digest.error());

    RuntimeInfo info;
    info.digest = *digest;
    info.source = "debian";
    info.origin = options.suite;
    info.suite = options.suite;
    info.variant = options.variant;
    info.mirror = options.mirror;
    info.source_date_epoch = *epoch;
    info.requested = options.packages;
    info.packages = std::move(*packages);
    info.architecture = options.architecture;
    for (const auto& p : info.packages) {
      if (info.architecture.empty() && p.name == "dpkg") {
        info.architecture = p.architecture;
      }
    }
    info.files = totals.files;
    info.bytes = totals.bytes;
    if (auto s = store.MarkKept(info.digest, true); !s) return Fail(s.error());
    info.kept = true;
    if (auto s = WriteRuntimeInfo(store, info); !s) return Fail(s.error());
    return info;
  }();
  if (auto s = RemoveTree(*work); !s && result) return Fail(s.error());
  return result;
}

}  // namespace egg
