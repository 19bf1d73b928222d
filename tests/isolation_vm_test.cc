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
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/fd.h"
#include "egg/sandbox.h"
#include "guest/vm_plan.h"
#include "sandbox/vm_initramfs.h"
#include "sandbox/vm_root.h"

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

TEST(VmControl, RejectsMalformedControlLines) {
  for (const char* bad :
       {"", "L", "X 1", "L 0", "L x", "LL 1", "S 1 memory=5",
        "L 1 memory=", "L 1 memory=-1", "L 1 memory=0", "L 1 bogus=3",
        "L 1 memory", "L 1  memory=3", "K 1 2"}) {
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
            const std::string& data = "") {
    VmRun run;
    int pipe_fds[2];
    EXPECT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    SandboxSpecBuilder b;
    std::vector<std::string> argv = {"/probe"};
    argv.insert(argv.end(), probe.begin(), probe.end());
    b.RuntimeRoot(*root_).Output(out_).Command(argv).SetLimits(limits);
    if (!data.empty()) b.ReadOnly(data, "/data");
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
  std::string secret = "/root/egg-vm-secret-" + std::to_string(::getpid());
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

}  // namespace
}  // namespace egg
