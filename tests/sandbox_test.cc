// The hostile-cell suite. Each test runs tests/probes/sandbox_probe.cc
// inside a sandbox (through sandbox_runner, as root and as an unprivileged
// user) and asserts what it could not do, then that the host is unchanged.
#include "egg/sandbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/fd.h"
#include "host_test_util.h"
#include "sandbox/seccomp_filter.h"

namespace egg {
namespace {

namespace fs = std::filesystem;

constexpr char kProbeDir[] = EGG_PROBE_DIR;
constexpr char kTestUser[] = "egg-sandbox-test";

enum class Who { kRoot, kUser };

std::string MakeTempDir(mode_t mode = 0755) {
  char tmpl[] = "/tmp/egg-sandbox-test-XXXXXX";
  char* dir = ::mkdtemp(tmpl);
  EXPECT_NE(dir, nullptr);
  ::chmod(dir, mode);
  return dir;
}

// The unprivileged user for Who::kUser, created if absent; 0 if impossible.
uid_t TestUid(gid_t* gid) {
  passwd* pw = ::getpwnam(kTestUser);
  if (pw == nullptr && ::geteuid() == 0) {
    std::string cmd = std::string("useradd --system --no-create-home ") +
                      "--shell /usr/sbin/nologin " + kTestUser +
                      " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) pw = ::getpwnam(kTestUser);
  }
  if (pw == nullptr) return 0;
  *gid = pw->pw_gid;
  return pw->pw_uid;
}

struct ProbeRun {
  std::string output;  // probe lines and the OUTCOME line
  std::map<std::string, std::string> outcome;
  bool started = false;
  std::string error;

  bool Blocked() const { return output.find("ESCAPED") == std::string::npos; }
  std::string Get(const std::string& key) const {
    auto it = outcome.find(key);
    return it == outcome.end() ? "" : it->second;
  }
};

struct Options {
  std::vector<std::string> flags;  // runner flags before "--"
  int stdin_fd = -1;
};

// Runs sandbox_runner (directly or as the test user) and parses its
// OUTCOME line.
ProbeRun RunProbe(Who who, const Options& opts,
                  const std::vector<std::string>& probe) {
  std::vector<std::string> argv;
  if (who == Who::kUser) {
    gid_t gid = 0;
    uid_t uid = TestUid(&gid);
    argv = {"/usr/bin/setpriv", "--reuid=" + std::to_string(uid),
            "--regid=" + std::to_string(gid), "--clear-groups", "--reset-env"};
  }
  argv.push_back(std::string(kProbeDir) + "/egg_sandbox_runner");
  argv.push_back("--probe-dir");
  argv.push_back(kProbeDir);
  for (const auto& f : opts.flags) argv.push_back(f);
  if (opts.stdin_fd >= 0) argv.push_back("--stdin");
  argv.push_back("--");
  for (const auto& p : probe) argv.push_back(p);

  int out[2];
  EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    if (opts.stdin_fd >= 0) ::dup2(opts.stdin_fd, 0);
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    ::execv(cargv[0], cargv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ProbeRun run;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof(buf))) > 0) run.output.append(buf, n);
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);

  std::istringstream lines(run.output);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("ERROR ", 0) == 0) run.error = line;
    if (line.rfind("OUTCOME ", 0) != 0) continue;
    run.started = true;
    std::istringstream words(line.substr(8));
    for (std::string w; words >> w;) {
      auto eq = w.find('=');
      run.outcome[w.substr(0, eq)] = w.substr(eq + 1);
    }
  }
  return run;
}

// Processes on the host whose name or command line holds `marker`.
int HostProcessesNamed(const std::string& marker) {
  int count = 0;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.empty() || !isdigit(static_cast<unsigned char>(name[0]))) continue;
    std::ifstream comm(e.path() / "comm");
    std::string c;
    std::getline(comm, c);
    if (c.find(marker) != std::string::npos) ++count;
  }
  return count;
}

std::string MountsNamed(const std::string& marker) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line, found;
  while (std::getline(in, line)) {
    if (line.find(marker) != std::string::npos) found += line + "\n";
  }
  return found;
}

// Control groups egg made and left behind.
// The folders under which this process's sandboxes make their groups: its
// own group in every hierarchy (/proc/self/cgroup). Groups elsewhere on the
// host belong to other processes and are not this test's to judge.
std::vector<std::string> OwnCgroupFolders() {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    size_t a = line.find(':');
    size_t b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    if (controllers.empty()) {
      out.push_back("/sys/fs/cgroup/unified" + path);
      out.push_back("/sys/fs/cgroup" + path);
    } else if (controllers.rfind("name=", 0) != 0) {
      out.push_back("/sys/fs/cgroup/" + controllers + path);
    }
  }
  return out;
}

// egg-sandbox-<pid>-<n> groups under our own groups that belong to this
// process or to a process that no longer exists.
int LeftoverCgroups() {
  int count = 0;
  for (const std::string& root : OwnCgroupFolders()) {
    std::error_code ec;
    for (auto it = fs::directory_iterator(root, ec);
         !ec && it != fs::directory_iterator(); it.increment(ec)) {
      std::string name = it->path().filename();
      if (name.rfind("egg-sandbox-", 0) != 0) continue;
      std::string owner = name.substr(12, name.find('-', 12) - 12);
      if (owner == std::to_string(::getpid()) ||
          ::kill(std::stoi(owner), 0) != 0) {
        ++count;
      }
    }
  }
  return count;
}

class HostileCell : public ::testing::TestWithParam<Who> {
 protected:
  void SetUp() override {
    if (GetParam() == Who::kUser) {
      if (::geteuid() != 0) {
        GTEST_SKIP() << "creating and switching to a test user needs root";
      }
      gid_t gid;
      if (TestUid(&gid) == 0) GTEST_SKIP() << "could not create a test user";
      ProbeRun probe = RunProbe(Who::kUser, {}, {"exit", "0"});
      if (probe.error.find("NotSupported") != std::string::npos ||
          probe.error.find("namespaces") != std::string::npos) {
        GTEST_SKIP() << "this kernel does not give unprivileged users "
                        "namespaces: "
                     << probe.error;
      }
    } else if (!ProbeSandboxHost().user_namespaces) {
      GTEST_SKIP() << "this host cannot create user namespaces";
    }
    out_ = MakeTempDir(0755);
    if (GetParam() == Who::kUser) {
      gid_t gid;
      uid_t uid = TestUid(&gid);
      ASSERT_EQ(::chown(out_.c_str(), uid, gid), 0);
    }
  }

  void TearDown() override {
    if (!out_.empty()) fs::remove_all(out_);
    EXPECT_EQ(HostProcessesNamed("eggprobebg"), 0);
    EXPECT_EQ(HostProcessesNamed("egg_sandbox_pro"), 0);
    EXPECT_EQ(MountsNamed("egg-scratch"), "");
    EXPECT_EQ(MountsNamed("egg-root"), "");
    EXPECT_EQ(LeftoverCgroups(), 0);
  }

  ProbeRun Probe(std::vector<std::string> args, Options opts = {}) {
    opts.flags.push_back("--out");
    opts.flags.push_back(out_);
    ProbeRun run = RunProbe(GetParam(), opts, args);
    EXPECT_TRUE(run.started) << run.output;
    return run;
  }

  std::string out_;
};

TEST_P(HostileCell, NormalProgramReadsDataAndWritesOut) {
  std::string data = MakeTempDir(0755);
  { std::ofstream(data + "/in.txt") << "hello"; }
  ::chmod((data + "/in.txt").c_str(), 0644);
  ProbeRun run = Probe({"normal"}, {{"--data", data}});
  fs::remove_all(data);
  EXPECT_EQ(run.Get("code"), "0") << run.output;
  EXPECT_NE(run.output.find("ok uid=1000 pid=1 host=egg"), std::string::npos)
      << run.output;
  std::ifstream copied(out_ + "/out.txt");
  std::string text;
  std::getline(copied, text);
  EXPECT_EQ(text, "copied:hello");
}

TEST_P(HostileCell, CannotReadFilesPlantedInRootAndTmp) {
  std::string secret_root = egg_test::RootHome() + "/egg-sandbox-secret-" +
                            std::to_string(::getpid());
  std::string secret_tmp =
      "/tmp/egg-sandbox-secret-" + std::to_string(::getpid());
  { std::ofstream(secret_root) << "secret"; }
  { std::ofstream(secret_tmp) << "secret"; }
  ::chmod(secret_tmp.c_str(), 0644);
  ProbeRun a = Probe({"read", secret_root});
  ProbeRun b = Probe({"read", secret_tmp});
  ::unlink(secret_root.c_str());
  ::unlink(secret_tmp.c_str());
  EXPECT_EQ(a.Get("code"), "0") << a.output;
  EXPECT_EQ(b.Get("code"), "0") << b.output;
}

TEST_P(HostileCell, CannotWriteOutsideScratchAndOut) {
  std::string name = "egg-sandbox-escape-" + std::to_string(::getpid());
  for (const std::string& path : {"/usr/" + name, "/probe/" + name, "/" + name,
                                  "/dev/" + name, "/proc/" + name}) {
    ProbeRun run = Probe({"write", path});
    EXPECT_EQ(run.Get("code"), "0") << path << ": " << run.output;
  }
  // Writing /tmp lands in the sandbox's scratch, never the host's /tmp.
  ProbeRun tmp = Probe({"write", "/tmp/" + name});
  EXPECT_EQ(tmp.Get("code"), "1") << tmp.output;
  EXPECT_FALSE(fs::exists("/tmp/" + name));
  EXPECT_FALSE(fs::exists("/usr/" + name));
}

TEST_P(HostileCell, CannotReachLoopbackListener) {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(s, 4), 0);
  socklen_t len = sizeof(a);
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ProbeRun run = Probe({"connect", std::to_string(ntohs(a.sin_port))});
  ::fcntl(s, F_SETFL, O_NONBLOCK);
  EXPECT_LT(::accept(s, nullptr, nullptr), 0);
  ::close(s);
  EXPECT_EQ(run.Get("code"), "0") << run.output;
}

TEST_P(HostileCell, CannotResolveOrSendToHostResolver) {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  socklen_t len = sizeof(a);
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ProbeRun udp = Probe({"udp", std::to_string(ntohs(a.sin_port))});
  char buf[8];
  EXPECT_LT(::recv(s, buf, sizeof(buf), 0), 0) << "a datagram got out";
  ::close(s);
  ProbeRun dns = Probe({"resolve", "example.com"});
  EXPECT_EQ(dns.Get("code"), "0") << dns.output;
  EXPECT_EQ(udp.Get("code"), "0") << udp.output;
}

TEST_P(HostileCell, CannotSeeHostProcesses) {
  // The runner and this test are on the host; their names must not show.
  ProbeRun run = Probe({"proc", "sandbox_test"});
  EXPECT_EQ(run.Get("code"), "0") << run.output;
  ProbeRun runner = Probe({"proc", "egg_sandbox_runner"});
  EXPECT_EQ(runner.Get("code"), "0") << runner.output;
}

TEST_P(HostileCell, CannotUseDeniedKernelInterfaces) {
  for (const char* probe : {"ptrace", "mount", "userns", "module", "io_uring",
                            "keyctl", "bpf", "userfaultfd", "perf", "clone3",
                            "personality", "caps", "fds", "fallocate"}) {
    ProbeRun run = Probe({probe});
    EXPECT_EQ(run.Get("code"), "0") << probe << ": " << run.output;
    EXPECT_TRUE(run.Blocked()) << probe << ": " << run.output;
  }
}

TEST_P(HostileCell, ForeignArchitectureCallsKillTheProcess) {
  for (const char* arch : {"x32", "i386"}) {
    ProbeRun run = Probe({"arch", arch});
    EXPECT_EQ(run.Get("signal"), std::to_string(SIGSYS)) << run.output;
  }
}

TEST_P(HostileCell, CannotInjectIntoTerminal) {
  int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(master, 0);
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  std::string slave_name = ::ptsname(master);
  int slave = ::open(slave_name.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(slave, 0);
  if (GetParam() == Who::kUser) {
    gid_t gid = 0;
    uid_t uid = TestUid(&gid);
    ASSERT_EQ(::fchown(slave, uid, gid), 0);
  }
  termios t;
  ::tcgetattr(slave, &t);
  ::cfmakeraw(&t);
  ::tcsetattr(slave, TCSANOW, &t);

  Options opts;
  opts.stdin_fd = slave;
  ProbeRun run = Probe({"tiocsti"}, opts);
  EXPECT_EQ(run.Get("code"), "0") << run.output;

  ::fcntl(slave, F_SETFL, O_NONBLOCK);
  char c;
  EXPECT_LT(::read(slave, &c, 1), 0) << "a character was injected";
  ::close(slave);
  ::close(master);
}

TEST_P(HostileCell, ForkBombIsContainedByTheProcessLimit) {
  ProbeRun run =
      Probe({"forkbomb"}, {{"--processes", "32", "--wall-ms", "2000"}});
  EXPECT_EQ(run.Get("killed"), "1") << run.output;
  EXPECT_EQ(run.Get("stopped_by"), "wall") << run.output;
  if (GetParam() == Who::kRoot && ProbeSandboxHost().cgroup_pids) {
    EXPECT_EQ(run.Get("pids_hit"), "1") << run.output;
  }
}

TEST_P(HostileCell, AllocationPastTheMemoryLimitIsReportedAsMemory) {
  ProbeRun run =
      Probe({"alloc", "512"}, {{"--memory", std::to_string(64 << 20)}});
  if (GetParam() == Who::kRoot && ProbeSandboxHost().cgroup_memory) {
    EXPECT_EQ(run.Get("stopped_by"), "memory") << run.output;
    // Killed by the OOM killer or, if egg saw the OOM first, by egg.
    EXPECT_EQ(run.Get("signal"), std::to_string(SIGKILL)) << run.output;
  } else {
    // RLIMIT_AS fallback: the allocation fails inside the probe.
    EXPECT_EQ(run.Get("code"), "0") << run.output;
    EXPECT_NE(run.output.find("blocked alloc"), std::string::npos);
  }
}

TEST_P(HostileCell, FillingScratchStopsAtItsSizeAndSparesTheHost) {
  ProbeRun run = Probe({"fill"}, {{"--scratch", std::to_string(8 << 20)}});
  EXPECT_EQ(run.Get("code"), "3") << run.output;
  EXPECT_EQ(run.Get("scratch_full"), "1") << run.output;
  EXPECT_EQ(run.Get("stopped_by"), "scratch") << run.output;
  EXPECT_FALSE(fs::exists("/tmp/egg-probe-fill"));
}

TEST_P(HostileCell, SpinningPastTheCpuLimitIsReportedAsCpu) {
  ProbeRun run = Probe({"spin"}, {{"--cpu-ms", "1000", "--wall-ms", "20000"}});
  EXPECT_EQ(run.Get("stopped_by"), "cpu") << run.output;
}

TEST_P(HostileCell, SleepingPastTheWallLimitIsReportedAsWall) {
  ProbeRun run = Probe({"sleep", "60"}, {{"--wall-ms", "500"}});
  EXPECT_EQ(run.Get("stopped_by"), "wall") << run.output;
  EXPECT_EQ(run.Get("signal"), std::to_string(SIGKILL)) << run.output;
}

TEST_P(HostileCell, IgnoringSigtermAsPid1StillDies) {
  ProbeRun run = Probe({"ignore-term"}, {{"--wall-ms", "700"}});
  EXPECT_NE(run.output.find("ready"), std::string::npos) << run.output;
  EXPECT_EQ(run.Get("signal"), std::to_string(SIGKILL)) << run.output;
}

TEST_P(HostileCell, BackgroundProcessesDieWithTheSandbox) {
  ProbeRun run = Probe({"background"});
  EXPECT_NE(run.output.find("left pid"), std::string::npos) << run.output;
  EXPECT_EQ(run.Get("code"), "0") << run.output;
  EXPECT_EQ(HostProcessesNamed("eggprobebg"), 0);
}

// SIGKILL of the hatching process: PR_SET_PDEATHSIG takes the sandbox's
// PID 1 down, the PID namespace takes the rest, and the next start
// removes the dead owner's control groups.
TEST_P(HostileCell, NothingSurvivesSigkillOfTheHatchingProcess) {
  std::vector<std::string> argv;
  if (GetParam() == Who::kUser) {
    gid_t gid = 0;
    uid_t uid = TestUid(&gid);
    argv = {"/usr/bin/setpriv", "--reuid=" + std::to_string(uid),
            "--regid=" + std::to_string(gid), "--clear-groups"};
  }
  for (std::string a :
       {std::string(kProbeDir) + "/egg_sandbox_runner",
        std::string("--probe-dir"), std::string(kProbeDir),
        std::string("--wall-ms"), std::string("60000"), std::string("--"),
        std::string("sleep"), std::string("60")}) {
    argv.push_back(a);
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    ::execv(cargv[0], cargv.data());
    ::_exit(127);
  }
  bool seen = false;
  for (int i = 0; i < 500 && !seen; ++i) {
    seen = HostProcessesNamed("egg_sandbox_pro") > 0;
    if (!seen) ::usleep(10000);
  }
  ASSERT_TRUE(seen) << "the probe never started";
  // setpriv execs the runner, so pid is the hatching process either way.
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  int left = 1;
  for (int i = 0; i < 300 && left > 0; ++i) {
    left = HostProcessesNamed("egg_sandbox_pro");
    if (left > 0) ::usleep(10000);
  }
  EXPECT_EQ(left, 0);
  (void)ProbeSandboxHost();  // a start reaps groups of dead owners
}

INSTANTIATE_TEST_SUITE_P(AsRootAndUser, HostileCell,
                         ::testing::Values(Who::kRoot, Who::kUser),
                         [](const auto& info) {
                           return info.param == Who::kRoot ? "Root"
                                                           : "Unprivileged";
                         });

// --- In-process API tests (root or any user with user namespaces) ---

Result<SandboxSpec> Finish(SandboxSpecBuilder& b) {
  return std::move(b).Build();
}

class SandboxApi : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ProbeSandboxHost().user_namespaces) {
      GTEST_SKIP() << "this host cannot create user namespaces";
    }
  }

  SandboxSpecBuilder Base(std::vector<std::string> probe) {
    SandboxSpecBuilder b;
    b.RuntimeRootPart("/usr", "/usr")
        .RuntimeRootPart("/usr/bin", "/bin")
        .RuntimeRootPart("/usr/lib", "/lib");
    if (::access("/usr/lib64", F_OK) == 0) {
      b.RuntimeRootPart("/usr/lib64", "/lib64");
    }
    probe.insert(probe.begin(), "/probe/egg_sandbox_probe");
    b.ReadOnly(kProbeDir, "/probe").Command(probe);
    return b;
  }
};

TEST_F(SandboxApi, KillStopsAProcessThatIgnoresSigterm) {
  auto spec = Base({"ignore-term"}).Build();
  ASSERT_TRUE(spec) << spec.error().message();
  auto box = StartSandbox(*spec);
  ASSERT_TRUE(box) << box.error().message();
  ASSERT_TRUE((*box)->Kill());
  auto o = (*box)->Wait();
  ASSERT_TRUE(o);
  EXPECT_TRUE(o->killed);
  EXPECT_EQ(o->signal, SIGKILL);
  EXPECT_EQ(o->stopped_by, LimitKind::kNone);
}

TEST_F(SandboxApi, DestroyingTheHandleKillsEverything) {
  pid_t pid;
  {
    auto spec = Base({"sleep", "60"}).Build();
    ASSERT_TRUE(spec);
    auto box = StartSandbox(*spec);
    ASSERT_TRUE(box) << box.error().message();
    pid = (*box)->pid();
    auto polled = (*box)->Poll();
    ASSERT_TRUE(polled);
    EXPECT_FALSE(polled->has_value());
  }
  EXPECT_NE(::kill(pid, 0), 0);
  EXPECT_EQ(LeftoverCgroups(), 0);
}

TEST_F(SandboxApi, SetLimitsRestartsTheWallBudget) {
  Limits limits;
  limits.wall_ms = 60000;
  auto spec = Finish(Base({"sleep", "60"}).SetLimits(limits));
  ASSERT_TRUE(spec);
  auto box = StartSandbox(*spec);
  ASSERT_TRUE(box) << box.error().message();
  Limits cell;
  cell.wall_ms = 300;
  ASSERT_TRUE((*box)->SetLimits(cell));
  auto o = (*box)->Wait();
  ASSERT_TRUE(o);
  EXPECT_EQ(o->stopped_by, LimitKind::kWall);
}

TEST_F(SandboxApi, SetLimitsRefusesToRaiseAboveTheSpec) {
  Limits limits;
  limits.memory_bytes = 64 << 20;
  auto spec = Finish(Base({"sleep", "5"}).SetLimits(limits));
  ASSERT_TRUE(spec);
  auto box = StartSandbox(*spec);
  ASSERT_TRUE(box) << box.error().message();
  Limits more;
  more.memory_bytes = 128 << 20;
  auto s = (*box)->SetLimits(more);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
  ASSERT_TRUE((*box)->Kill());
}

TEST_F(SandboxApi, MissingCommandIsASetupErrorWithAReason) {
  auto spec = Finish(Base({}).Command({"/nonexistent/program"}));
  ASSERT_TRUE(spec);
  auto box = StartSandbox(*spec);
  ASSERT_FALSE(box);
  EXPECT_EQ(box.error().code(), Code::kSandboxSetup);
  EXPECT_NE(box.error().message().find("exec"), std::string::npos);
}

TEST_F(SandboxApi, PassedFdArrivesAtItsNumber) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  int out[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  auto spec2 = Finish(Base({"fds"}).PassFd(pair[1], 7).Stdout(out[1]));
  ASSERT_TRUE(spec2);
  auto box = StartSandbox(*spec2);
  ASSERT_TRUE(box) << box.error().message();
  ::close(out[1]);
  auto o = (*box)->Wait();
  ASSERT_TRUE(o);
  char buf[256] = {};
  ASSERT_GT(::read(out[0], buf, sizeof(buf) - 1), 0);
  EXPECT_STREQ(buf, "open fd 7\nESCAPED inherited fds\n");
  ::close(out[0]);
  ::close(pair[0]);
  ::close(pair[1]);
}

// --- Builder validation ---

TEST(SandboxSpecBuilderTest, RejectsRelativeAndNonCanonicalPaths) {
  SandboxSpecBuilder a;
  a.RuntimeRoot("usr").Command({"/bin/true"});
  auto ra = std::move(a).Build();
  ASSERT_FALSE(ra);
  EXPECT_EQ(ra.error().code(), Code::kInvalidArgument);

  SandboxSpecBuilder b;
  b.RuntimeRoot("/usr/../usr").Command({"/bin/true"});
  ASSERT_FALSE(std::move(b).Build());

  SandboxSpecBuilder c;
  c.RuntimeRootPart("/bin", "/bin").Command({"/bin/true"});  // a symlink
  if (fs::is_symlink("/bin")) {
    ASSERT_FALSE(std::move(c).Build());
  }
}

TEST(SandboxSpecBuilderTest, KeepsTheFirstError) {
  SandboxSpecBuilder b;
  b.RuntimeRoot("/nonexistent-egg-root").Cwd("relative").Command({});
  auto r = std::move(b).Build();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kNotFound);
}

TEST(SandboxSpecBuilderTest, RejectsLimitsOutOfBounds) {
  Limits zero;
  zero.memory_bytes = 0;
  SandboxSpecBuilder b;
  b.RuntimeRootPart("/usr", "/usr").SetLimits(zero).Command({"/bin/true"});
  ASSERT_FALSE(std::move(b).Build());
  Limits huge;
  huge.processes = *MaximumLimits().processes + 1;
  SandboxSpecBuilder c;
  c.RuntimeRootPart("/usr", "/usr").SetLimits(huge).Command({"/bin/true"});
  ASSERT_FALSE(std::move(c).Build());
}

TEST(SandboxSpecBuilderTest, RejectsBindsOverTheLayout) {
  for (const char* target : {"/proc", "/dev/x", "/tmp", "/out/x", "/"}) {
    SandboxSpecBuilder b;
    b.RuntimeRootPart("/usr", "/usr")
        .ReadOnly("/usr", target)
        .Command({"/bin/true"});
    EXPECT_FALSE(std::move(b).Build()) << target;
  }
}

TEST(SandboxSpecBuilderTest, RejectsBadFdsAndEnvironment) {
  SandboxSpecBuilder a;
  a.RuntimeRootPart("/usr", "/usr").PassFd(0, 2).Command({"/bin/true"});
  EXPECT_FALSE(std::move(a).Build());
  SandboxSpecBuilder b;
  b.RuntimeRootPart("/usr", "/usr").Env("A=B", "x").Command({"/bin/true"});
  EXPECT_FALSE(std::move(b).Build());
  SandboxSpecBuilder c;
  c.RuntimeRootPart("/usr", "/usr").Command({"bin/true"});
  EXPECT_FALSE(std::move(c).Build());
}

TEST(SandboxSpecBuilderTest, NoneBackendOnlyThroughWeaken) {
  SandboxSpecBuilder a;
  a.Backend("none").Command({"/bin/true"});
  auto r = std::move(a).Build();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  // The stronger backends exist (tests/isolation_test.cc); an unknown
  // name is still refused.
  SandboxSpecBuilder b;
  b.Backend("bogus").Command({"/bin/true"});
  EXPECT_EQ(std::move(b).Build().error().code(), Code::kInvalidArgument);
}

// --- The seccomp filter on its own, outside any namespace ---

// The program compiled into egg at build time is the one the rules give
// now, instruction for instruction: the sandbox loads the prebuilt one.
bool SameInstructions(const std::vector<sock_filter>& a,
                      const std::vector<sock_filter>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].code != b[i].code || a[i].jt != b[i].jt || a[i].jf != b[i].jf ||
        a[i].k != b[i].k) {
      return false;
    }
  }
  return true;
}

TEST(SeccompFilterTest, PrebuiltProgramIsTheOneTheRulesCompileTo) {
  const auto* prebuilt = sandbox_internal::PrebuiltSeccompProgram();
  if (prebuilt == nullptr) GTEST_SKIP() << "cross build: no prebuilt program";
  auto fresh = sandbox_internal::BuildSeccompProgram();
  ASSERT_TRUE(fresh) << fresh.error().message();
  EXPECT_GT(prebuilt->code.size(), 100u);
  EXPECT_TRUE(SameInstructions(prebuilt->code, fresh->code));
  EXPECT_TRUE(SameInstructions(prebuilt->ioctl_guard, fresh->ioctl_guard));
}

// As root, TIOCSTI on one's own pty would work; only the filter stops it,
// also when the request's high 32 bits are set.
TEST(SeccompFilterTest, DeniesTiocstiWhateverTheHighBitsAndVsock) {
  auto program = sandbox_internal::BuildSeccompProgram();
  ASSERT_TRUE(program) << program.error().message();
  pid_t pid = ::fork();
  if (pid == 0) {
    int master = ::posix_openpt(O_RDWR | O_NOCTTY);
    ::grantpt(master);
    ::unlockpt(master);
    int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
    ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    sock_fprog prog{static_cast<unsigned short>(program->code.size()),
                    program->code.data()};
    if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) _exit(10);
    sock_fprog guard{static_cast<unsigned short>(program->ioctl_guard.size()),
                     program->ioctl_guard.data()};
    if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &guard) != 0) _exit(9);
    if (::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0) != -1 ||
        errno != EPERM) {
      _exit(14);
    }
    char c = 'x';
    if (::syscall(SYS_ioctl, slave, TIOCSTI, &c) != -1 || errno != EPERM)
      _exit(11);
    unsigned long high = 0xffffffff00000000ul | TIOCSTI;
    if (::syscall(SYS_ioctl, slave, high, &c) != -1 || errno != EPERM)
      _exit(12);
    termios t;
    if (::ioctl(slave, TCGETS, &t) != 0) _exit(13);  // others still work
    // vsock is not isolated by network namespaces: denied outright.
    if (::socket(40 /* AF_VSOCK */, SOCK_STREAM, 0) != -1 || errno != EPERM)
      _exit(15);
    int unix_sock = ::socket(AF_UNIX, SOCK_STREAM, 0);  // others still work
    if (unix_sock < 0) _exit(16);
    _exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// The probes are able to fail: without a sandbox they escape.
TEST(ProbeSelfTest, ProbesReportEscapesWithoutASandbox) {
  std::string secret = "/tmp/egg-sandbox-selftest-" + std::to_string(getpid());
  { std::ofstream(secret) << "x"; }
  ProbeRun read = RunProbe(Who::kRoot, {{"--none"}}, {"read", secret});
  ::unlink(secret.c_str());
  EXPECT_EQ(read.Get("code"), "1") << read.output;
  ProbeRun proc = RunProbe(Who::kRoot, {{"--none"}}, {"proc", "sandbox_test"});
  EXPECT_EQ(proc.Get("code"), "1") << proc.output;
}

}  // namespace
}  // namespace egg
