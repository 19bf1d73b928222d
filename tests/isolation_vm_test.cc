// The micro-VM backend (docs/ISOLATION.md): the initramfs and plan
// encodings, then real boots under QEMU running the sandbox component's
// probe (tests/probes/sandbox_probe.cc) in a small runtime root made of
// the probe and the libraries it links. Boots take seconds under TCG, so
// there are few; each skips with the backend's reason where the guest
// kernel (scripts/vm-kernel.sh) or QEMU is missing.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <latch>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/fd.h"
#include "egg/sandbox.h"
#include "guest/vm_plan.h"
#include "host_test_util.h"
#include "sandbox/vm_initramfs.h"
#include "sandbox/vm_root.h"
#include "sandbox/vm_share.h"

namespace egg {
namespace {

namespace fs = std::filesystem;
using sandbox_internal::CpioEntry;
using sandbox_internal::WriteCpioNewc;

// Skips (with the reason) when the host cannot boot the guest at all;
// any other start failure fails the test.
#define REQUIRE_BOOTED(run)                                      \
  do {                                                           \
    if (!(run).started && (run).code == Code::kNotSupported) {   \
      GTEST_SKIP() << "vm backend unavailable: " << (run).error; \
    }                                                            \
    ASSERT_TRUE((run).started) << (run).error;                   \
  } while (0)

constexpr char kProbeDir[] = EGG_PROBE_DIR;

std::string MakeTempDir() {
  char tmpl[] = "/tmp/egg-vm-test-XXXXXX";
  char* dir = ::mkdtemp(tmpl);
  EXPECT_NE(dir, nullptr);
  ::chmod(dir, 0755);
  return dir;
}

TEST(VmInitramfs, SameEntriesInAnyOrderGiveTheSameBytes) {
  std::vector<CpioEntry> a = {{"init", 0100755, "ELF"},
                              {"egg", 040755, ""},
                              {"egg/plan", 0100400, "arg\0/x\0"}};
  std::vector<CpioEntry> b = {a[2], a[0], a[1]};
  std::string x = WriteCpioNewc(a);
  EXPECT_EQ(x, WriteCpioNewc(b));
  EXPECT_EQ(x.substr(0, 6), "070701");
  EXPECT_EQ(x.size() % 4, 0u);
  EXPECT_NE(x.find("TRAILER!!!"), std::string::npos);
  // The first entry is "egg" (sorted), inode 1, mtime 0.
  EXPECT_EQ(x.substr(6, 8), "00000001");
  EXPECT_EQ(x.substr(6 + 5 * 8, 8), "00000000");
}

guest::VmPlan GoodPlan() {
  guest::VmPlan p;
  p.argv = {"/bin/true"};
  p.scratch_bytes = p.memory_bytes = p.processes = p.cpu_ms = p.wall_ms = 1;
  p.disks = {{"egg-0", guest::VmDisk::kRoot, ""},
             {"egg-1", guest::VmDisk::kDir, "/data"}};
  p.ports = {{"egg.fd.3", 3}};
  return p;
}

TEST(VmPlan, RoundTripsThroughItsEncoding) {
  guest::VmPlan got;
  std::string why;
  ASSERT_TRUE(guest::DecodeVmPlan(guest::EncodeVmPlan(GoodPlan()), &got, &why))
      << why;
  EXPECT_EQ(got.argv, GoodPlan().argv);
  ASSERT_EQ(got.disks.size(), 2u);
  EXPECT_EQ(got.disks[1].target, "/data");
  ASSERT_EQ(got.ports.size(), 1u);
  EXPECT_EQ(got.ports[0].target, 3);
}

TEST(VmPlan, RejectsMalformedPlans) {
  std::string good = guest::EncodeVmPlan(GoodPlan());
  std::vector<std::string> bad = {
      good.substr(0, good.size() - 1),                   // unterminated
      good + std::string("bogus\0x\0", 8),               // unknown key
      good + std::string("disk\0egg-2:dir:../x\0", 20),  // escaping target
      good + std::string("disk\0egg-2:raw:/x\0", 18),    // unknown kind
      good + std::string("port\0egg.fd.9:99999\0", 20),  // fd out of range
      good + std::string("memory\0-1\0", 10),            // not a number
  };
  guest::VmPlan relative = GoodPlan();
  relative.argv = {"bin/true"};
  bad.push_back(guest::EncodeVmPlan(relative));
  for (const std::string& b : bad) {
    guest::VmPlan got;
    std::string why;
    EXPECT_FALSE(guest::DecodeVmPlan(b, &got, &why)) << b.size();
  }
}

TEST(VmControl, RoundTripsThroughItsEncoding) {
  guest::VmControl c;
  c.op = 'L';
  c.seq = 7;
  c.memory_bytes = 1 << 20;
  c.wall_ms = 30000;
  std::string line = guest::EncodeVmControl(c);
  ASSERT_EQ(line.back(), '\n');
  guest::VmControl got;
  std::string why;
  ASSERT_TRUE(
      guest::DecodeVmControl(line.substr(0, line.size() - 1), &got, &why))
      << why;
  EXPECT_EQ(got.op, 'L');
  EXPECT_EQ(got.seq, 7u);
  EXPECT_EQ(got.memory_bytes, 1u << 20);
  EXPECT_EQ(got.processes, 0u);
  EXPECT_EQ(got.wall_ms, 30000u);
}

TEST(VmControl, AcceptsTheLimitEventsRequest) {
  guest::VmControl c;
  c.op = 'E';
  c.seq = 12;
  std::string line = guest::EncodeVmControl(c);
  EXPECT_EQ(line, "E 12\n");
  guest::VmControl got;
  std::string why;
  ASSERT_TRUE(
      guest::DecodeVmControl(line.substr(0, line.size() - 1), &got, &why))
      << why;
  EXPECT_EQ(got.op, 'E');
  EXPECT_EQ(got.seq, 12u);
}

TEST(VmControl, RejectsMalformedControlLines) {
  for (const char* bad :
       {"", "L", "X 1", "L 0", "L x", "LL 1", "S 1 memory=5",
        "L 1 memory=", "L 1 memory=-1", "L 1 memory=0", "L 1 bogus=3",
        "L 1 memory", "L 1  memory=3", "K 1 2", "E 1 oom=1", "E 0"}) {
    guest::VmControl got;
    std::string why;
    EXPECT_FALSE(guest::DecodeVmControl(bad, &got, &why)) << bad;
  }
}

TEST(VmRoot, ReadsTheInterpreterAndLibrariesOfAnElfFile) {
  auto bytes = ReadFileToString("/usr/bin/true", 64 << 20);
  ASSERT_TRUE(bytes);
  sandbox_internal::ElfDeps deps = sandbox_internal::ReadElfDeps(*bytes);
  EXPECT_NE(deps.interpreter.find("ld-linux"), std::string::npos);
  EXPECT_NE(std::find(deps.needed.begin(), deps.needed.end(), "libc.so.6"),
            deps.needed.end());
}

TEST(VmRoot, TruncatedOrForeignFilesHaveNoDependencies) {
  auto bytes = ReadFileToString("/usr/bin/true", 64 << 20);
  ASSERT_TRUE(bytes);
  for (size_t cut : {0ul, 4ul, 63ul, 64ul, 200ul, bytes->size() / 2}) {
    // Must not read out of bounds (the sanitizer builds check this).
    (void)sandbox_internal::ReadElfDeps(bytes->substr(0, cut));
  }
  EXPECT_TRUE(sandbox_internal::ReadElfDeps("#!/bin/sh\n").needed.empty());
  std::string big_endian = *bytes;
  big_endian[5] = 2;
  EXPECT_TRUE(sandbox_internal::ReadElfDeps(big_endian).needed.empty());
}

TEST(VmRoot, ComposedRootCarriesTheCommandAndItsLibrariesOnly) {
  SandboxSpecBuilder b;
  b.RuntimeRootPart("/usr", "/usr").RuntimeRootPart("/usr/lib", "/lib");
  if (::access("/usr/lib64", F_OK) == 0) {
    b.RuntimeRootPart("/usr/lib64", "/lib64");
  }
  b.Command({"/usr/bin/true"}).Backend("vm");
  auto spec = std::move(b).Build();
  ASSERT_TRUE(spec) << spec.error().message();
  auto selection = sandbox_internal::SelectComposedRoot(*spec);
  ASSERT_TRUE(selection) << selection.error().message();
  EXPECT_TRUE(selection->count("/usr/bin/true"));
  bool libc = false;
  for (const auto& [path, e] : *selection) {
    libc = libc || path.find("/libc.so.6") != std::string::npos;
  }
  EXPECT_TRUE(libc);
  EXPECT_FALSE(selection->count("/usr/bin/python3"));
  EXPECT_LT(selection->size(), 100u);
}

TEST(VmRoot, CommandOutsideTheComposedRootIsNotFound) {
  SandboxSpecBuilder b;
  b.RuntimeRootPart("/usr", "/usr").Command({"/opt/egg-nothing/x"});
  auto spec = std::move(b).Build();
  ASSERT_TRUE(spec) << spec.error().message();
  auto selection = sandbox_internal::SelectComposedRoot(*spec);
  ASSERT_FALSE(selection);
  EXPECT_EQ(selection.error().code(), Code::kNotFound);
}

// A runtime root holding the probe at /probe and the libraries it needs.
std::string MakeProbeRoot() {
  std::string root = MakeTempDir();
  std::string probe = std::string(kProbeDir) + "/egg_sandbox_probe";
  fs::copy_file(probe, root + "/probe");
  std::string cmd = "ldd " + probe;
  FILE* p = ::popen(cmd.c_str(), "r");
  char line[1024];
  while (p != nullptr && fgets(line, sizeof(line), p)) {
    std::string l = line;
    size_t slash = l.find('/');
    if (slash == std::string::npos) continue;
    std::string lib = l.substr(slash, l.find(' ', slash) - slash);
    while (!lib.empty() && isspace(static_cast<unsigned char>(lib.back()))) {
      lib.pop_back();
    }
    std::string real = fs::canonical(lib);
    fs::create_directories(root + fs::path(lib).parent_path().string());
    fs::copy_file(real, root + lib, fs::copy_options::overwrite_existing);
  }
  if (p != nullptr) ::pclose(p);
  fs::create_directories(root + "/etc");
  std::ofstream(root + "/etc/hosts") << "127.0.0.1 localhost\n";
  return root;
}

struct VmRun {
  bool started = false;
  std::string error;
  Code code = Code::kInternal;
  std::string output;
  Outcome outcome;
};

class VmBoot : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new std::string(MakeProbeRoot());
    cache_ = new std::string(MakeTempDir());
    ::setenv("EGG_VM_IMAGE_CACHE", cache_->c_str(), 1);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*root_);
    fs::remove_all(*cache_);
  }
  void SetUp() override { out_ = MakeTempDir(); }
  void TearDown() override { fs::remove_all(out_); }

  VmRun Run(const std::vector<std::string>& probe, Limits limits = {},
            const std::string& data = "",
            const std::function<void(SandboxSpecBuilder&)>& more = nullptr) {
    VmRun run;
    int pipe_fds[2];
    EXPECT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    SandboxSpecBuilder b;
    std::vector<std::string> argv = {"/probe"};
    argv.insert(argv.end(), probe.begin(), probe.end());
    if (more == nullptr) b.RuntimeRoot(*root_);
    b.Output(out_).Command(argv).SetLimits(limits);
    if (more != nullptr) more(b);
    if (!data.empty() && more == nullptr) b.ReadOnly(data, "/data");
    b.Stdout(pipe_fds[1]).Stderr(pipe_fds[1]).Backend("vm");
    auto spec = std::move(b).Build();
    if (!spec) {
      run.error = spec.error().message();
      return run;
    }
    auto box = StartSandbox(*spec);
    ::close(pipe_fds[1]);
    if (!box) {
      ::close(pipe_fds[0]);
      run.code = box.error().code();
      run.error = box.error().message();
      return run;
    }
    run.started = true;
    auto outcome = (*box)->Wait();
    EXPECT_TRUE(outcome.has_value());
    if (outcome) run.outcome = *outcome;
    box->reset();
    char buf[4096];
    ssize_t n;
    ::fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
    while ((n = ::read(pipe_fds[0], buf, sizeof(buf))) > 0) {
      run.output.append(buf, n);
    }
    ::close(pipe_fds[0]);
    return run;
  }

  static std::string* root_;
  static std::string* cache_;
  std::string out_;
};
std::string* VmBoot::root_ = nullptr;
std::string* VmBoot::cache_ = nullptr;

TEST_F(VmBoot, NormalCellReadsDataAndWritesOut) {
  std::string data = MakeTempDir();
  { std::ofstream(data + "/in.txt") << "hello"; }
  ::chmod((data + "/in.txt").c_str(), 0644);
  VmRun run = Run({"normal"}, {}, data);
  fs::remove_all(data);
  REQUIRE_BOOTED(run);
  EXPECT_TRUE(run.outcome.exited) << run.output;
  EXPECT_EQ(run.outcome.exit_code, 0) << run.output;
  // The cell is not PID 1 in the guest (egg-init is): a documented
  // difference from the namespaces backend.
  EXPECT_NE(run.output.find("ok uid=1000 pid="), std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("host=egg"), std::string::npos) << run.output;
  std::ifstream copied(out_ + "/out.txt");
  std::string text;
  std::getline(copied, text);
  EXPECT_EQ(text, "copied:hello");
}

TEST_F(VmBoot, CellCannotReadHostFilesOrReachHostLoopback) {
  std::string secret =
      egg_test::RootHome() + "/egg-vm-secret-" + std::to_string(::getpid());
  { std::ofstream(secret) << "secret"; }
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(s, 1), 0);
  ASSERT_EQ(::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len), 0);
  VmRun read = Run({"read", secret});
  VmRun connect = Run({"connect", std::to_string(ntohs(a.sin_port))});
  ::close(s);
  ::unlink(secret.c_str());
  REQUIRE_BOOTED(read);
  EXPECT_EQ(read.output.find("ESCAPED"), std::string::npos) << read.output;
  EXPECT_NE(read.output.find("blocked"), std::string::npos) << read.output;
  ASSERT_TRUE(connect.started) << connect.error;
  EXPECT_EQ(connect.output.find("ESCAPED"), std::string::npos)
      << connect.output;
}

TEST_F(VmBoot, CellCannotUseDeniedKernelInterfaces) {
  VmRun run = Run({"module"});
  REQUIRE_BOOTED(run);
  EXPECT_EQ(run.output.find("ESCAPED"), std::string::npos) << run.output;
}

TEST_F(VmBoot, SleepingPastTheWallLimitIsReportedAsWall) {
  Limits limits;
  limits.wall_ms = 1500;
  VmRun run = Run({"sleep", "60"}, limits);
  REQUIRE_BOOTED(run);
  EXPECT_EQ(run.outcome.stopped_by, LimitKind::kWall);
  EXPECT_TRUE(run.outcome.killed);
}

// Hatch changes limits between cells: the control line reaches PID 1,
// which restarts the CPU budget with the new value; raising a limit above
// the spec's is refused on the host.
TEST_F(VmBoot, SetLimitsRestartsTheBudgetsOfTheRunningGuest) {
  Limits limits;
  limits.wall_ms = 120000;
  limits.cpu_ms = 600000;
  limits.memory_bytes = 256ull << 20;
  SandboxSpecBuilder b;
  b.RuntimeRoot(*root_).Output(out_).Command({"/probe", "spin"});
  b.SetLimits(limits).Backend("vm");
  auto spec = std::move(b).Build();
  ASSERT_TRUE(spec) << spec.error().message();
  auto box = StartSandbox(*spec);
  if (!box && box.error().code() == Code::kNotSupported) {
    GTEST_SKIP() << "vm backend unavailable: " << box.error().message();
  }
  ASSERT_TRUE(box) << box.error().message();
  Limits more;
  more.memory_bytes = 512ull << 20;
  Status raised = (*box)->SetLimits(more);
  ASSERT_FALSE(raised);
  EXPECT_EQ(raised.error().code(), Code::kInvalidArgument);
  Limits less;
  less.cpu_ms = 1000;
  less.memory_bytes = 128ull << 20;
  Status set = (*box)->SetLimits(less);
  ASSERT_TRUE(set) << set.error().message();
  auto outcome = (*box)->Wait();
  ASSERT_TRUE(outcome) << outcome.error().message();
  // Only PID 1 measures CPU: without the control line the spin would
  // have run into the spec's wall limit instead.
  EXPECT_EQ(outcome->stopped_by, LimitKind::kCpu);
  EXPECT_TRUE(outcome->killed);
}

TEST_F(VmBoot, NothingIsLeftInTheRunFolder) {
  VmRun run = Run({"normal"});
  REQUIRE_BOOTED(run);
  std::error_code ec;
  int left = 0;
  for (const auto& e : fs::directory_iterator("/run/egg-isolation", ec)) {
    std::string name = e.path().filename();
    if (name.rfind("vm-" + std::to_string(::getpid()) + "-", 0) == 0) ++left;
  }
  EXPECT_EQ(left, 0);
}

// The probe's "each" output: "== CMD ARG", then that probe's lines, of
// which one says "ESCAPED ..." or "blocked ...".
std::map<std::string, std::string> ProbeLines(const std::string& output) {
  std::map<std::string, std::string> lines;
  std::istringstream in(output);
  std::string key;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("== ", 0) == 0) {
      key = line.substr(3);
    } else if (!key.empty() && (line.rfind("ESCAPED", 0) == 0 ||
                                line.rfind("blocked", 0) == 0)) {
      lines[key] = line;
    }
  }
  return lines;
}

bool IsEscaped(const std::string& line) {
  return line.rfind("ESCAPED", 0) == 0;
}

// A folder of the host that no test grants.
struct UngrantedSecret {
  UngrantedSecret() : dir(MakeTempDir()) {
    std::ofstream(dir + "/secret.txt") << "secret";
    ::chmod((dir + "/secret.txt").c_str(), 0644);
  }
  ~UngrantedSecret() { fs::remove_all(dir); }
  std::string file() const { return dir + "/secret.txt"; }
  std::string dir;
};

// No grant: no network card at all (only lo), no host path; the runtime
// and the data are named by digest, and their images are cached by it.
TEST_F(VmBoot, WithoutGrantsTheGuestHasNoNetworkCardAndNoHostPath) {
  UngrantedSecret secret;
  std::string data = MakeTempDir();
  { std::ofstream(data + "/in.txt") << "hello"; }
  ::chmod((data + "/in.txt").c_str(), 0644);
  Digest runtime = Sha256Of("a test runtime " + std::to_string(::getpid()));
  Digest content = Sha256Of("test data " + std::to_string(::getpid()));
  VmRun run = Run(
      {"each", "netdevs", "-", "read", secret.file(), "read", "/data/in.txt"},
      {}, "", [&](SandboxSpecBuilder& b) {
        b.RuntimeRoot(*root_, runtime);
        b.ReadOnly(data, "/data", content);
      });
  fs::remove_all(data);
  REQUIRE_BOOTED(run);
  auto lines = ProbeLines(run.output);
  EXPECT_EQ(lines["netdevs -"], "blocked netdevs") << run.output;
  EXPECT_FALSE(IsEscaped(lines["read " + secret.file()])) << run.output;
  EXPECT_TRUE(IsEscaped(lines["read /data/in.txt"])) << run.output;
  EXPECT_TRUE(
      fs::exists(*cache_ + "/root-e1-" + DigestHex(runtime) + "/image.erofs"));
  EXPECT_TRUE(
      fs::exists(*cache_ + "/data-e1-" + DigestHex(content) + "/image.erofs"));
}

// Granted: a user-mode network card that reaches the host through the
// gateway address, and host paths served by virtiofsd: a read-only one
// cannot be written, a writable one writes through to the host, and a
// path next to them that was not granted stays out of sight.
TEST_F(VmBoot, GrantedNetworkAndHostPathsWorkAndReadOnlyStaysReadOnly) {
  UngrantedSecret secret;
  std::string ro = MakeTempDir();
  std::string rw = MakeTempDir();
  ::chmod(rw.c_str(), 0777);
  { std::ofstream(ro + "/in.txt") << "ro"; }
  ::chmod((ro + "/in.txt").c_str(), 0666);
  std::string ro_file = ro + "/single.txt";
  { std::ofstream(ro_file) << "one file"; }
  ::chmod(ro_file.c_str(), 0666);
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(s, 4), 0);
  ASSERT_EQ(::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len), 0);
  std::string gateway = std::string(guest::kVmGatewayAddress) + ":" +
                        std::to_string(ntohs(a.sin_port));
  VmRun run =
      Run({"each", "netdevs", "-", "connect-to", gateway, "read", "/ro/in.txt",
           "write", "/ro/in.txt", "write", "/ro/new.txt", "write", "/one.txt",
           "write", "/rw/made.txt", "read", secret.file()},
          {}, "", [&](SandboxSpecBuilder& b) {
            b.RuntimeRoot(*root_);
            b.WeakenNetwork();
            b.WeakenHostPath({ro, "/ro", false});
            b.WeakenHostPath({ro_file, "/one.txt", false});
            b.WeakenHostPath({rw, "/rw", true});
          });
  // What reached the listener (the guest has ended: it is queued).
  ::fcntl(s, F_SETFL, O_NONBLOCK);
  std::string received;
  int conn = ::accept(s, nullptr, nullptr);
  if (conn >= 0) {
    char buf[64];
    ssize_t n = ::read(conn, buf, sizeof(buf));
    if (n > 0) received.assign(buf, n);
    ::close(conn);
  }
  ::close(s);
  std::string ro_text, file_text, rw_text;
  std::getline(std::ifstream(ro + "/in.txt"), ro_text);
  std::getline(std::ifstream(ro_file), file_text);
  std::getline(std::ifstream(rw + "/made.txt"), rw_text);
  bool ro_new = fs::exists(ro + "/new.txt");
  fs::remove_all(ro);
  fs::remove_all(rw);
  REQUIRE_BOOTED(run);
  auto lines = ProbeLines(run.output);
  EXPECT_EQ(lines["netdevs -"], "ESCAPED netdevs") << run.output;
  EXPECT_EQ(lines["connect-to " + gateway], "ESCAPED connect") << run.output;
  EXPECT_EQ(received, "egg-probe\n");
  EXPECT_TRUE(IsEscaped(lines["read /ro/in.txt"])) << run.output;
  EXPECT_FALSE(IsEscaped(lines["write /ro/in.txt"])) << run.output;
  EXPECT_FALSE(IsEscaped(lines["write /ro/new.txt"])) << run.output;
  EXPECT_FALSE(IsEscaped(lines["write /one.txt"])) << run.output;
  EXPECT_EQ(ro_text, "ro");
  EXPECT_EQ(file_text, "one file");
  EXPECT_FALSE(ro_new);
  EXPECT_TRUE(IsEscaped(lines["write /rw/made.txt"])) << run.output;
  EXPECT_EQ(rw_text, "pwned");
  EXPECT_FALSE(IsEscaped(lines["read " + secret.file()])) << run.output;
}

// The host side of a read-only grant: virtiofsd's own mount of it is
// read-only (so a guest that remounts its view writable still cannot
// write), and the run folder on the host holds only empty mount points.
TEST(VmShare, VirtiofsdServesReadOnlyGrantsFromReadOnlyMounts) {
  std::string program = "/usr/lib/qemu/virtiofsd";
  if (::access("/usr/libexec/virtiofsd", X_OK) == 0) {
    program = "/usr/libexec/virtiofsd";
  }
  if (::geteuid() != 0 || ::access(program.c_str(), X_OK) != 0) {
    GTEST_SKIP() << "needs root and virtiofsd (qemu-system-common)";
  }
  std::string ro = MakeTempDir();
  std::string rw = MakeTempDir();
  std::string run = MakeTempDir();
  { std::ofstream(ro + "/in.txt") << "ro"; }
  std::vector<SandboxBind> binds = {{ro, "/ro", false, true, std::nullopt},
                                    {rw, "/rw", true, true, std::nullopt}};
  auto server = sandbox_internal::StartVirtiofsd(program, binds, run);
  ASSERT_TRUE(server) << server.error().message();
  auto mountinfo = ReadFileToString(
      "/proc/" + std::to_string(server->pid) + "/mountinfo", 1 << 20);
  EXPECT_FALSE(fs::exists(run + "/share/0/in.txt"));
  sandbox_internal::StopVirtiofsd(*server);
  fs::remove_all(ro);
  fs::remove_all(rw);
  fs::remove_all(run);
  ASSERT_TRUE(mountinfo);
  // mountinfo: id parent dev root mountpoint options ...
  std::map<std::string, std::string> options;
  std::istringstream lines(*mountinfo);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string id, parent, dev, root, point, opts;
    words >> id >> parent >> dev >> root >> point >> opts;
    options[point] = opts;
  }
  ASSERT_TRUE(options.count(run + "/share/0")) << *mountinfo;
  ASSERT_TRUE(options.count(run + "/share/1")) << *mountinfo;
  EXPECT_EQ(options[run + "/share/0"].substr(0, 3), "ro,");
  EXPECT_EQ(options[run + "/share/1"].substr(0, 3), "rw,");
}

TEST(VmPlan, CarriesSharesAndTheNetworkGrant) {
  guest::VmPlan plan = GoodPlan();
  plan.shares = {{"0", false, "/ro"}, {"1", true, "/rw"}};
  plan.network = true;
  guest::VmPlan got;
  std::string why;
  ASSERT_TRUE(guest::DecodeVmPlan(guest::EncodeVmPlan(plan), &got, &why))
      << why;
  ASSERT_EQ(got.shares.size(), 2u);
  EXPECT_FALSE(got.shares[0].writable);
  EXPECT_EQ(got.shares[1].target, "/rw");
  EXPECT_TRUE(got.shares[1].writable);
  EXPECT_TRUE(got.network);
  EXPECT_TRUE(guest::DecodeVmPlan(guest::EncodeVmPlan(GoodPlan()), &got, &why));
}

TEST(VmPlan, RejectsMalformedSharesAndNetwork) {
  std::string good = guest::EncodeVmPlan(GoodPlan());
  for (std::string bad : {std::string("share\0"
                                      "0:rx:/a\0",
                                      15),
                          std::string("share\0"
                                      "0:ro:a\0",
                                      14),
                          std::string("share\0"
                                      "0:ro:/../a\0",
                                      18),
                          std::string("share\0"
                                      "01:ro:/a\0",
                                      16),
                          std::string("share\0"
                                      "x:ro:/a\0",
                                      15),
                          std::string("share\0"
                                      ":ro:/a\0",
                                      14),
                          std::string("share\0"
                                      "0:r\0",
                                      11),
                          std::string("share\0"
                                      "0\0",
                                      8),
                          std::string("net\0"
                                      "0\0",
                                      6),
                          std::string("net\0"
                                      "1\0net\0"
                                      "1\0",
                                      12)}) {
    guest::VmPlan got;
    std::string why;
    EXPECT_FALSE(guest::DecodeVmPlan(good + bad, &got, &why)) << bad;
  }
}

// --- The disk image cache ---

class VmImageCache : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    ::setenv("EGG_VM_IMAGE_CACHE", dir_.c_str(), 1);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A stand-in for mkfs.erofs: the erofs magic at 1024, then `tag`.
  std::function<Status(const std::string&)> Maker(std::atomic<int>* calls,
                                                  std::string tag = "x") {
    return [calls, tag](const std::string& path) -> Status {
      ++*calls;
      std::string bytes(1024, '\0');
      bytes += std::string("\xe2\xe1\xf5\xe0", 4) + tag;
      std::ofstream(path) << bytes;
      return {};
    };
  }

  std::string dir_;
};

TEST_F(VmImageCache, MakesAnImageOnceAndReusesIt) {
  std::atomic<int> calls = 0;
  auto a = sandbox_internal::CachedErofs(dir_, "data-e1-aa", Maker(&calls));
  ASSERT_TRUE(a) << a.error().message();
  auto b = sandbox_internal::CachedErofs(dir_, "data-e1-aa", Maker(&calls));
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(a->path, b->path);
  EXPECT_EQ(calls, 1);
  struct stat st;
  ASSERT_EQ(::stat(a->path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);
}

TEST_F(VmImageCache, ChangedImageIsMadeAgain) {
  std::atomic<int> calls = 0;
  auto a = sandbox_internal::CachedErofs(dir_, "data-e1-bb", Maker(&calls));
  ASSERT_TRUE(a) << a.error().message();
  std::string path = a->path;
  a = Fail(Code::kInternal, "released");
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1028);
    f << "y";
  }
  auto b = sandbox_internal::CachedErofs(dir_, "data-e1-bb", Maker(&calls));
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(calls, 2);
  auto bytes = ReadFileToString(b->path, 1 << 20);
  ASSERT_TRUE(bytes);
  EXPECT_EQ(bytes->back(), 'x');
}

TEST_F(VmImageCache, ImageWritableByOthersIsMadeAgain) {
  std::atomic<int> calls = 0;
  auto a = sandbox_internal::CachedErofs(dir_, "data-e1-cc", Maker(&calls));
  ASSERT_TRUE(a) << a.error().message();
  ASSERT_EQ(::chmod(a->path.c_str(), 0666), 0);
  auto b = sandbox_internal::CachedErofs(dir_, "data-e1-cc", Maker(&calls));
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(calls, 2);
}

TEST_F(VmImageCache, MalformedSumIsMadeAgain) {
  std::atomic<int> calls = 0;
  auto a = sandbox_internal::CachedErofs(dir_, "data-e1-dd", Maker(&calls));
  ASSERT_TRUE(a) << a.error().message();
  std::string sum = dir_ + "/data-e1-dd/SUM";
  ::chmod(sum.c_str(), 0644);
  std::ofstream(sum) << "egg-vm-image 1\nsha256 00\n";
  ::chmod(sum.c_str(), 0444);
  auto b = sandbox_internal::CachedErofs(dir_, "data-e1-dd", Maker(&calls));
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(calls, 2);
}

// Two hatches making the same image at once: both finish with the one
// published image, and no temporary folder is left.
TEST_F(VmImageCache, ConcurrentMakersShareOnePublishedImage) {
  std::atomic<int> calls = 0;
  std::latch both_making(2);
  auto maker = [&](std::string tag) {
    auto inner = Maker(&calls, tag);
    return [&both_making, inner](const std::string& path) {
      both_making.arrive_and_wait();
      return inner(path);
    };
  };
  std::string path_a, path_b;
  std::thread a([&] {
    auto got = sandbox_internal::CachedErofs(dir_, "data-e1-ee", maker("a"));
    if (got) path_a = got->path;
  });
  std::thread b([&] {
    auto got = sandbox_internal::CachedErofs(dir_, "data-e1-ee", maker("b"));
    if (got) path_b = got->path;
  });
  a.join();
  b.join();
  EXPECT_EQ(calls, 2);
  ASSERT_FALSE(path_a.empty());
  EXPECT_EQ(path_a, path_b);
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir_)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST_F(VmImageCache, CollectRemovesUnusedImagesButNotHeldOrKeptOnes) {
  std::atomic<int> calls = 0;
  Digest kept = Sha256Of("kept runtime");
  std::string kept_name = "root-e1-" + DigestHex(kept);
  auto held = sandbox_internal::CachedErofs(dir_, "data-e1-11", Maker(&calls));
  ASSERT_TRUE(held) << held.error().message();
  ASSERT_TRUE(sandbox_internal::CachedErofs(dir_, "data-e1-22", Maker(&calls)));
  ASSERT_TRUE(sandbox_internal::CachedErofs(dir_, kept_name, Maker(&calls)));
  ASSERT_TRUE(sandbox_internal::CachedErofs(
      dir_, "root-e1-" + DigestHex(Sha256Of("gone")), Maker(&calls)));
  // An image of the former flat layout.
  std::ofstream(dir_ + "/0123456789abcdef0123456789abcdef.erofs") << "old";
  auto stats = CollectVmImageCache(
      [&](const Digest& runtime) { return runtime == kept; });
  ASSERT_TRUE(stats) << stats.error().message();
  EXPECT_EQ(stats->removed, 3u);
  EXPECT_EQ(stats->busy, 1u);
  EXPECT_TRUE(fs::exists(held->path));
  EXPECT_TRUE(fs::exists(dir_ + "/" + kept_name));
  EXPECT_FALSE(fs::exists(dir_ + "/data-e1-22"));
  EXPECT_FALSE(fs::exists(dir_ + "/0123456789abcdef0123456789abcdef.erofs"));
}

// `egg store gc` empties the vm image cache of what no sandbox holds
// and says so in its JSON.
TEST_F(VmImageCache, StoreGcCollectsTheImages) {
  const char* egg = ::getenv("EGG_BIN");
  if (egg == nullptr || ::access(egg, X_OK) != 0) {
    GTEST_SKIP() << "EGG_BIN is not set to the egg binary";
  }
  std::atomic<int> calls = 0;
  ASSERT_TRUE(sandbox_internal::CachedErofs(dir_, "data-e1-33", Maker(&calls)));
  std::string store = MakeTempDir();
  std::string json = store + "-gc.json";
  std::string cmd = "EGG_VM_IMAGE_CACHE='" + dir_ + "' '" + egg +
                    "' store gc --json --store '" + store + "/s' >'" + json +
                    "' 2>/dev/null";
  int rc = std::system(cmd.c_str());
  auto text = ReadFileToString(json, 1 << 20);
  fs::remove_all(store);
  ::unlink(json.c_str());
  EXPECT_EQ(rc, 0);
  EXPECT_FALSE(fs::exists(dir_ + "/data-e1-33"));
  ASSERT_TRUE(text);
  size_t images = text->find("\"vm_images\"");
  ASSERT_NE(images, std::string::npos) << *text;
  EXPECT_NE(text->find("\"removed\": 1", images), std::string::npos) << *text;
}

}  // namespace
}  // namespace egg
