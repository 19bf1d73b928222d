// Granted permissions, end to end through `egg hatch`, on every backend
// that shares the namespaces backend's grants (the vm backend has its own
// test, isolation_vm_test.cc): a granted host path is seen with the access
// granted and no more, a granted network reaches a listener the test
// opens on 127.0.0.1, and a granted device is usable while other host
// devices stay absent. The hostile-cell suites prove the other side: with
// no grant, none of these is reachable.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_test_util.h"
#include "loopback_greeter.h"
#include "temp_dir.h"

namespace {

namespace fs = std::filesystem;
using egg_test::ReadFile;
using egg_test::TempDir;

struct Backend {
  const char* label;
  std::vector<std::string> flags;  // the --isolation flags
  const char* program;             // what it needs on the host; "" none
};

// True when `program` is an executable in one of PATH's folders.
bool OnPath(const std::string& program) {
  const char* path = ::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  size_t pos = 0;
  while (pos <= dirs.size()) {
    size_t end = dirs.find(':', pos);
    if (end == std::string::npos) end = dirs.size();
    std::string file = dirs.substr(pos, end - pos) + "/" + program;
    if (::access(file.c_str(), X_OK) == 0) return true;
    pos = end + 1;
  }
  return false;
}

class GrantedPermissions : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    const Backend& b = GetParam();
    if (::geteuid() != 0) {
      GTEST_SKIP() << "the grants are checked as root, as CI runs them";
    }
    if (*b.program != '\0' && !OnPath(b.program)) {
      GTEST_SKIP() << b.program << " is not installed (scripts/deps.sh)";
    }
    std::string test =
        ::testing::UnitTest::GetInstance()->current_test_info()->name();
    if (HasItsOwnGrantTest(b) && test.find("Device") != 0) {
      GTEST_SKIP() << "the vm backend's host paths and network are tested "
                      "by isolation_vm_test (one boot for both)";
    }
  }

  // The backends that refuse a device grant rather than weaken it.
  static bool RefusesDevices(const Backend& b) {
    std::string label = b.label;
    return label == "gvisor" || label == "vm";
  }
  // The vm backend proves its host paths and network with one boot.
  static bool HasItsOwnGrantTest(const Backend& b) {
    return std::string(b.label) == "vm";
  }

  // Builds an egg of one bash cell asking for `permissions` (manifest
  // YAML) and hatches it with `grants`; the results document, the exit
  // code in *code and egg's stderr in *err.
  nlohmann::json Hatch(const std::string& permissions, const std::string& code,
                       const std::vector<std::string>& grants, int* exit_code,
                       std::string* err) {
    fs::create_directories(dir_.Sub("rt"));
    std::ofstream(dir_.Sub("rt/README")) << "a runtime of the host's /usr\n";
    std::ofstream yaml(dir_.Sub("egg.yaml"));
    yaml << "name: grants\ncreated: 2024-01-01T00:00:00Z\n"
         << "runtime: {folder: rt}\n"
         << permissions << "cells:\n  - language: bash\n    code: |\n";
    size_t pos = 0;
    while (pos < code.size()) {
      size_t end = code.find('\n', pos);
      if (end == std::string::npos) end = code.size();
      yaml << "      " << code.substr(pos, end - pos) << "\n";
      pos = end + 1;
    }
    yaml.close();
    std::string egg = dir_.Sub("g.egg");
    fs::remove(egg);
    auto built = egg_test::RunEggCapture(
        dir_.path(), {"build", dir_.Sub("egg.yaml"), "-o", egg}, dir_.path());
    EXPECT_EQ(built.code, 0) << built.err;
    std::string results = dir_.Sub("r.json");
    fs::remove(results);
    fs::remove_all(dir_.Sub("out"));
    std::vector<std::string> args = {
        "hatch", egg,     "--host-runtime", "--allow-unsigned",
        "-o",    results, "--out-dir",      dir_.Sub("out")};
    args.insert(args.end(), GetParam().flags.begin(), GetParam().flags.end());
    for (const std::string& g : grants) {
      args.push_back("--grant");
      args.push_back(g);
    }
    auto run = egg_test::RunEggCapture(dir_.path(), args, dir_.path());
    *exit_code = run.code;
    *err = run.err;
    return nlohmann::json::parse(ReadFile(results), nullptr, false);
  }

  TempDir dir_{"egg-grants-test"};
};

std::string Stdout(const nlohmann::json& doc) {
  if (doc.is_discarded() || !doc.contains("cells")) return "";
  return doc["cells"][0]["stdout"]["data"].get<std::string>();
}

TEST_P(GrantedPermissions, HostPathsGiveTheAccessGrantedAndNoMore) {
  TempDir host("egg-grants-host");
  fs::create_directories(host.Sub("ro"));
  fs::create_directories(host.Sub("rw"));
  std::ofstream(host.Sub("ro/notes.txt")) << "granted to read\n";
  // The sandbox's user is nobody on the host: let it write the folder.
  ASSERT_EQ(::chmod(host.Sub("rw").c_str(), 0777), 0);
  std::string permissions =
      "permissions:\n  host_paths:\n"
      "    - {host: " +
      host.Sub("ro") +
      ", sandbox: /ro}\n"
      "    - {host: " +
      host.Sub("rw") + ", sandbox: /rw, writable: true}\n";
  int code = -1;
  std::string err;
  auto doc =
      Hatch(permissions,
            "cat /ro/notes.txt\n"
            "echo changed > /ro/notes.txt || echo ro-refused-write\n"
            "touch /ro/new || echo ro-refused-create\n"
            "echo written > /rw/made.txt && echo rw-wrote\n",
            {"host-path:" + host.Sub("ro"), "host-path:" + host.Sub("rw")},
            &code, &err);
  EXPECT_EQ(code, 0) << err;
  EXPECT_EQ(Stdout(doc),
            "granted to read\nro-refused-write\nro-refused-create\n"
            "rw-wrote\n")
      << doc;
  EXPECT_EQ(ReadFile(host.Sub("ro/notes.txt")), "granted to read\n");
  EXPECT_FALSE(fs::exists(host.Sub("ro/new")));
  EXPECT_EQ(ReadFile(host.Sub("rw/made.txt")), "written\n");
}

TEST_P(GrantedPermissions, NetworkReachesAListenerOnTheHostLoopback) {
  egg_test::LoopbackGreeter server("hello from the host\n");
  ASSERT_NE(server.port(), 0) << "cannot listen on 127.0.0.1";
  int port = server.port();
  int code = -1;
  std::string err;
  auto doc = Hatch("permissions: {network: true}\n",
                   "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port) +
                       "\nhead -n 1 <&3\n",
                   {"network"}, &code, &err);
  EXPECT_EQ(code, 0) << err;
  EXPECT_EQ(Stdout(doc), "hello from the host\n") << doc;
}

// The test makes its own node under the host's /dev, open to every user:
// /dev/fuse's numbers, which no runtime allows by default, so the device
// cgroup must let it through; opening /dev/fuse only starts a FUSE
// connection that closes with the file.
TEST_P(GrantedPermissions, DeviceIsUsableAndOtherHostDevicesStayAbsent) {
  std::string node = "/dev/egg-grant-test-" + std::to_string(::getpid());
  ::unlink(node.c_str());
  ASSERT_EQ(::mknod(node.c_str(), S_IFCHR | 0666, makedev(10, 229)), 0)
      << "cannot make " << node;
  ASSERT_EQ(::chmod(node.c_str(), 0666), 0);
  int code = -1;
  std::string err;
  auto doc = Hatch("permissions: {devices: [" + node + "]}\n",
                   "exec 3<>" + node +
                       " && echo opened\n"
                       "test -e /dev/kvm || echo no-kvm\n"
                       "test -e /dev/fuse || echo no-fuse\n",
                   {"device:" + node}, &code, &err);
  ::unlink(node.c_str());
  if (RefusesDevices(GetParam())) {
    // gVisor's kernel serves its own /dev, and a guest kernel has no use
    // for a host node: the grant is refused, not weakened, and nothing
    // runs.
    EXPECT_EQ(code, 3) << err;
    EXPECT_NE(err.find("device"), std::string::npos) << err;
    EXPECT_TRUE(doc.is_discarded());
    return;
  }
  EXPECT_EQ(code, 0) << err;
  EXPECT_EQ(Stdout(doc), "opened\nno-kvm\nno-fuse\n") << doc;
}

INSTANTIATE_TEST_SUITE_P(
    Backends, GrantedPermissions,
    ::testing::Values(
        Backend{"namespaces", {"--isolation", "namespaces"}, ""},
        Backend{
            "runc", {"--isolation", "oci", "--oci-runtime", "runc"}, "runc"},
        Backend{
            "crun", {"--isolation", "oci", "--oci-runtime", "crun"}, "crun"},
        Backend{"gvisor", {"--isolation", "gvisor"}, "runsc"},
        Backend{"vm", {"--isolation", "vm"}, "qemu-system-x86_64"}),
    [](const auto& info) { return std::string(info.param.label); });

}  // namespace
