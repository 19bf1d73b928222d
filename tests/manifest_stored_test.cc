// Tests of ParseStoredManifest: the manifest and notebook JSON that build
// writes are accepted, and each crafted field an egg could carry instead
// is refused with one line naming the field.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "egg/manifest.h"

namespace egg {
namespace {

using json = nlohmann::json;

class StoredManifestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/egg-stored-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_EQ(::mkdir((dir_ + "/rootfs").c_str(), 0755), 0);
    ManifestOptions options;
    options.source_date_epoch = "0";
    auto m = ParseManifest(
        "name: demo\n"
        "runtime: {folder: rootfs}\n"
        "permissions:\n"
        "  network: true\n"
        "  host_paths: [{host: /srv/atlas, sandbox: /atlas}]\n"
        "  devices: [/dev/dri/renderD128]\n"
        "limits: {wall_time: 5m, memory: 1GiB}\n"
        "languages:\n"
        "  node: {command: [node, \"{file}\"], suffix: .js}\n"
        "cells:\n"
        "  - markdown: '# hi'\n"
        "  - language: python\n"
        "    code: print(1)\n"
        "    limits: {wall_time: 1m}\n"
        "    permissions: {network: true}\n",
        dir_, "egg.yaml", options);
    ASSERT_TRUE(m.has_value()) << m.error().message();
    manifest_ = ManifestJsonValue(*m).value();
    notebook_ = NotebookJsonValue(*m).value();
  }
  void TearDown() override {
    std::string cmd = "rm -rf '" + dir_ + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
  }

  Result<StoredManifest> Check() {
    return ParseStoredManifest(manifest_, notebook_, trees_);
  }

  // Asserts a one-line kInvalidArgument that mentions `field`.
  void ExpectRejected(const std::string& field) {
    auto s = Check();
    ASSERT_FALSE(s.has_value()) << manifest_.dump() << notebook_.dump();
    EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
    const std::string& msg = s.error().message();
    EXPECT_NE(msg.find(field), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }

  std::string dir_;
  json manifest_, notebook_;
  std::vector<std::string> trees_ = {"runtime"};
};

TEST_F(StoredManifestTest, AcceptsWhatBuildWrites) {
  auto s = Check();
  ASSERT_TRUE(s.has_value()) << s.error().message();
  EXPECT_EQ(s->name, "demo");
  EXPECT_TRUE(s->permissions.network);
  ASSERT_EQ(s->permissions.host_paths.size(), 1u);
  EXPECT_EQ(s->permissions.host_paths[0].host, "/srv/atlas");
  EXPECT_EQ(s->limits.memory_bytes, 1ull << 30);
  EXPECT_EQ(s->runtime_kind, "folder");
  ASSERT_EQ(s->languages.size(), 1u);
  EXPECT_EQ(s->languages[0].suffix, ".js");
  ASSERT_EQ(s->code_cells.size(), 1u);
  EXPECT_EQ(s->code_cells[0].index, 1u);
  EXPECT_EQ(s->code_cells[0].limits.wall_ms, 60000u);
}

TEST_F(StoredManifestTest, IgnoresUnknownKeys) {
  manifest_["future_field"] = {{"x", 1}};
  notebook_["cells"][1]["future"] = true;
  EXPECT_TRUE(Check().has_value());
}

TEST_F(StoredManifestTest, RejectsRelativeHostPath) {
  manifest_["permissions"]["host_paths"][0]["host"] = "../../etc";
  ExpectRejected("permissions.host_paths[0].host");
}

TEST_F(StoredManifestTest, RejectsHostPathWithDotDot) {
  manifest_["permissions"]["host_paths"][0]["host"] = "/srv/../etc";
  ExpectRejected("host_paths[0].host");
}

TEST_F(StoredManifestTest, RejectsReservedSandboxPath) {
  manifest_["permissions"]["host_paths"][0]["sandbox"] = "/proc/self";
  ExpectRejected("host_paths[0].sandbox");
}

// Every folder the hatch sandbox mounts itself is reserved, so a
// stored manifest cannot ask for a bind that hatch would refuse late.
TEST_F(StoredManifestTest, RejectsEverySandboxLayoutPath) {
  for (const char* path : {"/.egg", "/out", "/out/x", "/tmp", "/scratch/a",
                           "/data", "/sys/fs", "/dev/shm"}) {
    manifest_["permissions"]["host_paths"][0]["sandbox"] = path;
    ExpectRejected("host_paths[0].sandbox");
    if (HasFatalFailure()) return;
  }
}

TEST_F(StoredManifestTest, RejectsRelativeSandboxPath) {
  manifest_["permissions"]["host_paths"][0]["sandbox"] = "atlas";
  ExpectRejected("host_paths[0].sandbox");
}

TEST_F(StoredManifestTest, RejectsDeviceEscapingDev) {
  manifest_["permissions"]["devices"][0] = "/dev/../etc/shadow";
  ExpectRejected("permissions.devices[0]");
}

TEST_F(StoredManifestTest, RejectsDeviceOutsideDev) {
  manifest_["permissions"]["devices"][0] = "/etc/shadow";
  ExpectRejected("permissions.devices[0]");
}

TEST_F(StoredManifestTest, RejectsNetworkThatIsNotABool) {
  manifest_["permissions"]["network"] = "yes";
  ExpectRejected("permissions.network");
}

TEST_F(StoredManifestTest, RejectsUnknownVersion) {
  manifest_["egg_manifest"] = 2;
  ExpectRejected("egg_manifest");
}

TEST_F(StoredManifestTest, RejectsEmptyManifest) {
  manifest_ = json::object();
  ExpectRejected("egg_manifest");
}

TEST_F(StoredManifestTest, RejectsMissingPermissions) {
  manifest_.erase("permissions");
  ExpectRejected("permissions");
}

TEST_F(StoredManifestTest, RejectsRuntimeTreeThatIsNotRuntime) {
  manifest_["runtime"]["tree"] = "nope";
  ExpectRejected("runtime.tree");
  manifest_["runtime"]["tree"] = "../x";
  ExpectRejected("runtime.tree");
}

TEST_F(StoredManifestTest, RejectsRuntimeTreeMissingFromTheEgg) {
  trees_.clear();
  ExpectRejected("runtime.tree");
}

TEST_F(StoredManifestTest, RejectsDataTreeMissingFromTheEgg) {
  manifest_["data"]["entries"] = {{{"path", "x.csv"}, {"type", "file"}}};
  ExpectRejected("data.tree");
}

TEST_F(StoredManifestTest, RejectsDataEntryWithDotDot) {
  trees_.push_back("data");
  manifest_["data"]["entries"] = {{{"path", "../x"}, {"type", "file"}}};
  ExpectRejected("data.entries[0].path");
}

TEST_F(StoredManifestTest, RejectsLimitAboveMaximum) {
  manifest_["limits"]["memory_bytes"] = 1ull << 50;
  ExpectRejected("limits.memory_bytes");
}

TEST_F(StoredManifestTest, RejectsLimitBelowMinimum) {
  manifest_["limits"]["memory_bytes"] = 12;
  ExpectRejected("limits.memory_bytes");
}

TEST_F(StoredManifestTest, RejectsLimitThatIsNotAWholeNumber) {
  manifest_["limits"]["wall_ms"] = "5s";
  ExpectRejected("limits.wall_ms");
  manifest_["limits"]["wall_ms"] = -1;
  ExpectRejected("limits.wall_ms");
}

TEST_F(StoredManifestTest, RejectsCellLimitAboveTheEggs) {
  notebook_["cells"][1]["limits"]["wall_ms"] = 10 * 60 * 1000;
  ExpectRejected("cell 2 limits.wall_ms");
}

TEST_F(StoredManifestTest, RejectsCellLimitAboveTheEggDefault) {
  notebook_["cells"][1]["limits"]["processes"] = 1000;
  ExpectRejected("cell 2 limits.processes");
}

TEST_F(StoredManifestTest, RejectsScratchInCellLimits) {
  notebook_["cells"][1]["limits"]["scratch_bytes"] = 1 << 20;
  ExpectRejected("scratch_bytes");
}

TEST_F(StoredManifestTest, RejectsCellPermissionsBeyondTheEggs) {
  notebook_["cells"][1]["permissions"]["devices"] = {"/dev/kvm"};
  ExpectRejected("cell 2 permissions");
}

TEST_F(StoredManifestTest, RejectsBadCellLanguage) {
  notebook_["cells"][1]["language"] = "../sh";
  ExpectRejected("cell 2 language");
}

TEST_F(StoredManifestTest, RejectsCellCountThatDoesNotMatch) {
  manifest_["cells"]["total"] = 7;
  ExpectRejected("cells.total");
}

TEST_F(StoredManifestTest, RejectsRedefinedBuiltinLanguage) {
  manifest_["languages"]["python"] = {{"command", {"sh", "{file}"}}};
  ExpectRejected("languages.python");
}

TEST_F(StoredManifestTest, RejectsLanguageCommandWithoutFile) {
  manifest_["languages"]["node"]["command"] = {"node"};
  ExpectRejected("languages.node.command");
}

TEST_F(StoredManifestTest, RejectsNameWithPathCharacters) {
  manifest_["name"] = "../evil";
  ExpectRejected("manifest.name");
}

TEST_F(StoredManifestTest, RejectsCreatedThatIsNotCanonical) {
  manifest_["created"] = "yesterday";
  ExpectRejected("manifest.created");
}

}  // namespace
}  // namespace egg
