// End-to-end tests of `egg build --precompute`: the egg binary ($EGG_BIN)
// builds eggs from manifests, runs their cells in the sandbox with
// --host-runtime and stores the outputs; hatching again must reproduce.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_test_util.h"
#include "egg/sandbox.h"
#include "temp_dir.h"

namespace egg {
namespace {

using egg_test::EggBin;
using egg_test::ReadFile;

namespace fs = std::filesystem;

using egg_test::TempDir;

// Runs egg with no controlling terminal, stdin /dev/null and the store in
// `home`/cache; returns the exit code, stdout in *out, stderr in *err.
int RunEgg(const std::string& home, const std::vector<std::string>& args,
           std::string* out, std::string* err) {
  egg_test::EggRun run = egg_test::RunEggCapture(home, args, home);
  *out = run.out;
  *err = run.err;
  return run.code;
}

// A folder with egg.yaml (the given cells) and a tiny runtime folder.
std::string WriteManifest(const std::string& dir, const std::string& extra,
                          const std::string& cells) {
  fs::create_directories(dir + "/rt");
  std::ofstream(dir + "/rt/README") << "placeholder runtime\n";
  std::string path = dir + "/egg.yaml";
  std::ofstream(path) << "name: pre\ncreated: 2024-01-01T00:00:00Z\n"
                      << "runtime: {folder: rt}\n"
                      << extra << "cells:\n"
                      << cells;
  return path;
}

// Every stream text stored for the cells of an exported notebook.
std::string StoredText(const nlohmann::json& ipynb) {
  std::string all;
  for (const auto& cell : ipynb["cells"]) {
    if (!cell.contains("outputs")) continue;
    for (const auto& o : cell["outputs"]) {
      if (o.value("output_type", "") != "stream") continue;
      const auto& text = o["text"];
      if (text.is_string()) {
        all += text.get<std::string>();
      } else {
        for (const auto& line : text) all += line.get<std::string>();
      }
    }
  }
  return all;
}

bool CanSandbox() { return ProbeSandboxHost().user_namespaces; }

const char kTwoCells[] =
    "  - language: bash\n    code: echo precomputed-hello\n"
    "  - language: bash\n    code: echo $((6 * 7)) >&1\n";

TEST(PrecomputeTest, StoresFreshOutputsThatVerifyAndReproduce) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  TempDir t;
  std::string manifest = WriteManifest(t.path(), "", kTwoCells);
  std::string egg = t.path() + "/pre.egg";
  std::string out, err;
  ASSERT_EQ(
      RunEgg(t.path(),
             {"build", manifest, "-o", egg, "--precompute", "--host-runtime"},
             &out, &err),
      0)
      << err;

  // The outputs are in the egg's notebook.
  std::string ipynb = t.path() + "/pre.ipynb";
  ASSERT_EQ(RunEgg(t.path(), {"export", egg, "--to", "ipynb", "-o", ipynb},
                   &out, &err),
            0)
      << err;
  std::string text = StoredText(nlohmann::json::parse(ReadFile(ipynb)));
  EXPECT_NE(text.find("precomputed-hello"), std::string::npos) << text;
  EXPECT_NE(text.find("42"), std::string::npos) << text;

  // They are covered by the content root.
  EXPECT_EQ(RunEgg(t.path(), {"verify", egg}, &out, &err), 0) << err;

  // Hatching again reproduces every cell.
  std::string results = t.path() + "/r.json";
  ASSERT_EQ(RunEgg(t.path(),
                   {"hatch", egg, "--host-runtime", "--allow-unsigned", "-o",
                    results, "--out-dir", t.path() + "/out"},
                   &out, &err),
            0)
      << err;
  auto doc = nlohmann::json::parse(ReadFile(results));
  const auto& repro = doc["reproducibility"];
  ASSERT_TRUE(repro.is_object()) << doc;
  EXPECT_NE(err.find("reproduced 2 of 2 code cells"), std::string::npos) << err;
}

TEST(PrecomputeTest, WithoutPrecomputeTheEggStoresNoOutputs) {
  TempDir t;
  std::string manifest = WriteManifest(t.path(), "", kTwoCells);
  std::string egg = t.path() + "/plain.egg";
  std::string out, err;
  ASSERT_EQ(RunEgg(t.path(), {"build", manifest, "-o", egg}, &out, &err), 0)
      << err;
  std::string ipynb = t.path() + "/plain.ipynb";
  ASSERT_EQ(RunEgg(t.path(), {"export", egg, "--to", "ipynb", "-o", ipynb},
                   &out, &err),
            0)
      << err;
  std::string text = StoredText(nlohmann::json::parse(ReadFile(ipynb)));
  EXPECT_EQ(text.find("precomputed-hello"), std::string::npos) << text;
}

// Nothing but the (absent) output may be left beside it.
bool OnlyInputsLeft(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename();
    if (name != "egg.yaml" && name != "rt" && name != "cache" &&
        name != "stdout" && name != "stderr") {
      return false;
    }
  }
  return true;
}

TEST(PrecomputeTest, FailingCellFailsTheBuildAndWritesNoEgg) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  TempDir t;
  std::string manifest =
      WriteManifest(t.path(), "",
                    "  - language: bash\n    code: echo one\n"
                    "  - language: bash\n    code: (exit 3)\n");
  std::string egg = t.path() + "/fails.egg";
  std::string out, err;
  EXPECT_EQ(
      RunEgg(t.path(),
             {"build", manifest, "-o", egg, "--precompute", "--host-runtime"},
             &out, &err),
      4)
      << err;
  EXPECT_FALSE(fs::exists(egg));
  EXPECT_TRUE(OnlyInputsLeft(t.path())) << err;
}

TEST(PrecomputeTest, KeepGoingStoresTheFailingCellsOutputs) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  TempDir t;
  std::string manifest =
      WriteManifest(t.path(), "",
                    "  - language: bash\n    code: (exit 3)\n"
                    "  - language: bash\n    code: echo after-the-failure\n");
  std::string egg = t.path() + "/kept.egg";
  std::string out, err;
  ASSERT_EQ(RunEgg(t.path(),
                   {"build", manifest, "-o", egg, "--precompute",
                    "--host-runtime", "--keep-going"},
                   &out, &err),
            0)
      << err;
  std::string ipynb = t.path() + "/kept.ipynb";
  ASSERT_EQ(RunEgg(t.path(), {"export", egg, "--to", "ipynb", "-o", ipynb},
                   &out, &err),
            0)
      << err;
  auto nb = nlohmann::json::parse(ReadFile(ipynb));
  EXPECT_NE(StoredText(nb).find("after-the-failure"), std::string::npos);
  // The failing cell stores how it ended.
  ASSERT_EQ(nb["cells"][0]["outputs"].size(), 1u) << nb;
  const auto& error = nb["cells"][0]["outputs"][0];
  EXPECT_EQ(error["output_type"], "error") << nb;
  EXPECT_NE(error["evalue"].get<std::string>().find("exit status 3"),
            std::string::npos)
      << nb;
}

// A cell that meets the memory limit ends the sandbox, as in hatch; with
// --keep-going that is the cell's failure, stored like any other, and
// the egg is written (later cells did not run and store nothing).
TEST(PrecomputeTest, KeepGoingStoresAMemoryLimitedCellsFailure) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  if (geteuid() != 0) GTEST_SKIP() << "memory cgroups need root here";
  TempDir t;
  std::string manifest = WriteManifest(
      t.path(), "limits: {memory: 128MiB}\n",
      "  - language: bash\n    code: echo before-the-hog\n"
      "  - language: python\n    code: x = bytearray(1500 << 20)\n"
      "  - language: bash\n    code: echo after-the-hog\n");
  std::string egg = t.path() + "/hog.egg";
  std::string out, err;
  ASSERT_EQ(RunEgg(t.path(),
                   {"build", manifest, "-o", egg, "--precompute",
                    "--host-runtime", "--keep-going"},
                   &out, &err),
            0)
      << err;
  std::string ipynb = t.path() + "/hog.ipynb";
  ASSERT_EQ(RunEgg(t.path(), {"export", egg, "--to", "ipynb", "-o", ipynb},
                   &out, &err),
            0)
      << err;
  auto nb = nlohmann::json::parse(ReadFile(ipynb));
  EXPECT_NE(StoredText(nb).find("before-the-hog"), std::string::npos);
  ASSERT_EQ(nb["cells"][1]["outputs"].size(), 1u) << nb;
  const auto& error = nb["cells"][1]["outputs"][0];
  EXPECT_EQ(error["output_type"], "error") << nb;
  EXPECT_NE(error["evalue"].get<std::string>().find("memory"),
            std::string::npos)
      << nb;
  EXPECT_TRUE(nb["cells"][2]["outputs"].empty()) << nb;

  // Without --keep-going the same failure stops the build: exit 4.
  std::string strict = t.path() + "/strict.egg";
  EXPECT_EQ(RunEgg(t.path(),
                   {"build", manifest, "-o", strict, "--precompute",
                    "--host-runtime"},
                   &out, &err),
            4)
      << err;
  EXPECT_FALSE(fs::exists(strict));
}

TEST(PrecomputeTest, UngrantedPermissionExitsFiveAndWritesNothing) {
  TempDir t;
  std::string manifest =
      WriteManifest(t.path(), "permissions: {network: true}\n",
                    "  - language: bash\n    code: echo ran\n");
  std::string egg = t.path() + "/net.egg";
  std::string out, err;
  EXPECT_EQ(
      RunEgg(t.path(),
             {"build", manifest, "-o", egg, "--precompute", "--host-runtime"},
             &out, &err),
      5)
      << err;
  EXPECT_NE(err.find("network"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(egg));
  EXPECT_TRUE(OnlyInputsLeft(t.path())) << err;
}

TEST(PrecomputeTest, GrantWithoutPrecomputeIsAUsageError) {
  TempDir t;
  std::string manifest = WriteManifest(t.path(), "", kTwoCells);
  std::string egg = t.path() + "/x.egg";
  std::string out, err;
  EXPECT_EQ(
      RunEgg(t.path(), {"build", manifest, "-o", egg, "--grant", "network"},
             &out, &err),
      2)
      << err;
  EXPECT_FALSE(fs::exists(egg));
}

bool HostHasIpykernel() {
  return fs::exists("/usr/share/jupyter/kernels/python3/kernel.json") &&
         std::system(
             "/usr/bin/python3 -c 'import ipykernel' "
             ">/dev/null 2>&1") == 0;
}

const char kShellLineCell[] =
    "  - language: python\n    code: \"!echo from-the-kernel\"\n";

// --precompute --kernel runs the cells on the Jupyter kernel (here the
// host's ipykernel), so IPython syntax the built-in driver refuses is
// run and its output stored.
TEST(PrecomputeTest, KernelPrecomputesWhatOnlyAKernelCanRun) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  if (!HostHasIpykernel()) GTEST_SKIP() << "python3-ipykernel is missing";
  TempDir t;
  std::string manifest = WriteManifest(t.path(), "", kShellLineCell);
  std::string egg = t.path() + "/k.egg";
  std::string out, err;
  // The control: the built-in Python driver fails the cell.
  EXPECT_EQ(
      RunEgg(t.path(),
             {"build", manifest, "-o", egg, "--precompute", "--host-runtime"},
             &out, &err),
      4)
      << err;
  EXPECT_FALSE(fs::exists(egg));

  ASSERT_EQ(RunEgg(t.path(),
                   {"build", manifest, "-o", egg, "--precompute",
                    "--host-runtime", "--kernel", "jupyter"},
                   &out, &err),
            0)
      << err;
  std::string ipynb = t.path() + "/k.ipynb";
  ASSERT_EQ(RunEgg(t.path(), {"export", egg, "--to", "ipynb", "-o", ipynb},
                   &out, &err),
            0)
      << err;
  std::string text = StoredText(nlohmann::json::parse(ReadFile(ipynb)));
  EXPECT_EQ(text, "from-the-kernel\n");
}

TEST(PrecomputeTest, KernelWithoutPrecomputeIsAUsageError) {
  TempDir t;
  std::string manifest = WriteManifest(t.path(), "", kTwoCells);
  std::string egg = t.path() + "/x.egg";
  std::string out, err;
  EXPECT_EQ(
      RunEgg(t.path(), {"build", manifest, "-o", egg, "--kernel", "jupyter"},
             &out, &err),
      2)
      << err;
  EXPECT_FALSE(fs::exists(egg));
}

}  // namespace
}  // namespace egg
