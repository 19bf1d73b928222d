// End-to-end tests of `egg build` through the real binary ($EGG_BIN): the
// bundled example builds byte-identically in different folders, time
// zones and locales; an existing output is never replaced without
// --force; a bad manifest exits 2 and leaves nothing behind.
//
// The example asks for a Debian runtime built by mmdebstrap, which needs
// the network and minutes; these tests swap in a small runtime folder and
// keep everything else of the example as it is.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "egg/egg.h"
#include "egg/manifest.h"
#include "egg/notebook.h"

namespace egg {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

class BuildCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* bin = std::getenv("EGG_BIN");
    if (bin == nullptr || !Exists(bin)) GTEST_SKIP() << "EGG_BIN is not set";
    bin_ = bin;
    char tmpl[] = "/tmp/egg-build-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    src_ = root_ + "/hello";
    Sh("cp -r '" + std::string(EGG_SOURCE_DIR) + "/examples/hello' '" + src_ +
       "'");
    // A small root file system instead of the Debian one.
    Sh("mkdir -p '" + src_ + "/rootfs/bin' '" + src_ + "/rootfs/etc' && " +
       "printf 'ID=test\\n' > '" + src_ + "/rootfs/etc/os-release' && " +
       "printf '#!/bin/sh\\necho hi\\n' > '" + src_ + "/rootfs/bin/hi' && " +
       "chmod 755 '" + src_ + "/rootfs/bin/hi'");
    std::string yaml = ReadAll(src_ + "/egg.yaml");
    size_t start = yaml.find("runtime:\n");
    size_t end = yaml.find("\ndata:");
    ASSERT_NE(start, std::string::npos);
    ASSERT_NE(end, std::string::npos);
    yaml.replace(start, end - start, "runtime:\n  folder: rootfs\n");
    std::ofstream(src_ + "/egg.yaml", std::ios::binary) << yaml;
    Sh("mkdir -p '" + root_ + "/out1' '" + root_ + "/out2' '" + root_ +
       "/cache'");
  }
  void TearDown() override {
    if (!root_.empty()) Sh("rm -rf '" + root_ + "'");
  }

  int Sh(const std::string& cmd) {
    int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  // Runs `egg build` with extra environment and arguments; returns the
  // exit status; stdout and stderr land in root_/stdout, root_/stderr.
  int Build(const std::string& env, const std::string& args) {
    return Sh("env -u SOURCE_DATE_EPOCH XDG_CACHE_HOME='" + root_ + "/cache' " +
              env + " '" + bin_ + "' build " + args + " >'" + root_ +
              "/stdout' 2>'" + root_ + "/stderr'");
  }

  std::string Stderr() { return ReadAll(root_ + "/stderr"); }

  // Names in `dir` starting with '.' (temporary files left behind).
  std::string HiddenNames(const std::string& dir) {
    std::string out;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return "";
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != ".." && n[0] == '.') out += n + " ";
    }
    ::closedir(d);
    return out;
  }

  std::string bin_, root_, src_;
};

TEST_F(BuildCliTest, ExampleBuildsByteIdenticallyAcrossFoldersZonesLocales) {
  std::string a = root_ + "/out1/plant.egg";
  std::string b = root_ + "/out2/plant.egg";
  ASSERT_EQ(Build("TZ=UTC LC_ALL=C", "'" + src_ + "/egg.yaml' -o '" + a + "'"),
            0)
      << Stderr();
  // A second copy of the sources in another folder, another zone/locale.
  Sh("cp -r '" + src_ + "' '" + root_ + "/hello2'");
  ASSERT_EQ(Build("TZ=Asia/Kolkata LC_ALL=C.UTF-8",
                  "'" + root_ + "/hello2/egg.yaml' -o '" + b + "'"),
            0)
      << Stderr();
  std::string bytes_a = ReadAll(a);
  ASSERT_FALSE(bytes_a.empty());
  EXPECT_TRUE(bytes_a == ReadAll(b)) << "eggs differ";
  EXPECT_NE(ReadAll(root_ + "/stdout").find("sha256:"), std::string::npos);
  EXPECT_EQ(HiddenNames(root_ + "/out1"), "");
}

TEST_F(BuildCliTest, StoredManifestAndNotebookMatchTheParser) {
  std::string out = root_ + "/out1/plant.egg";
  ASSERT_EQ(Build("", "'" + src_ + "/egg.yaml' -o '" + out + "'"), 0)
      << Stderr();
  auto egg = EggFile::Open(out);
  ASSERT_TRUE(egg.has_value()) << egg.error().message();
  auto m = LoadManifest(src_ + "/egg.yaml");
  ASSERT_TRUE(m.has_value()) << m.error().message();
  EXPECT_EQ(egg->manifest_json(), ManifestJson(*m).value());
  EXPECT_EQ(egg->notebook_json(), NotebookJson(*m).value());
  auto csv = egg->ReadFile("data", "measurements.csv");
  ASSERT_TRUE(csv.has_value()) << csv.error().message();
  EXPECT_EQ(*csv, ReadAll(src_ + "/data/measurements.csv"));
  EXPECT_TRUE(egg->FindEntry("runtime", "bin/hi").has_value());
}

TEST_F(BuildCliTest, DefaultOutputIsNameBesideTheManifest) {
  ASSERT_EQ(Build("", "'" + src_ + "/egg.yaml'"), 0) << Stderr();
  EXPECT_TRUE(Exists(src_ + "/plant-growth.egg"));
  EXPECT_EQ(HiddenNames(src_), "");
}

TEST_F(BuildCliTest, NeverOverwritesWithoutForce) {
  std::string out = root_ + "/out1/plant.egg";
  std::ofstream(out) << "precious";
  EXPECT_EQ(Build("", "'" + src_ + "/egg.yaml' -o '" + out + "'"), 2);
  EXPECT_NE(Stderr().find("--force"), std::string::npos) << Stderr();
  EXPECT_EQ(ReadAll(out), "precious");

  EXPECT_EQ(Build("", "'" + src_ + "/egg.yaml' -o '" + out + "' --force"), 0)
      << Stderr();
  EXPECT_NE(ReadAll(out), "precious");
  EXPECT_EQ(HiddenNames(root_ + "/out1"), "");
}

TEST_F(BuildCliTest, MissingDataFileExits2AndWritesNothing) {
  ASSERT_EQ(::unlink((src_ + "/data/measurements.csv").c_str()), 0);
  std::string out = root_ + "/out1/plant.egg";
  EXPECT_EQ(Build("", "'" + src_ + "/egg.yaml' -o '" + out + "'"), 2);
  std::string err = Stderr();
  EXPECT_NE(err.find("egg.yaml:"), std::string::npos) << err;
  EXPECT_NE(err.find("measurements.csv"), std::string::npos) << err;
  EXPECT_FALSE(Exists(out));
  EXPECT_EQ(HiddenNames(root_ + "/out1"), "");
}

TEST_F(BuildCliTest, BadManifestExits2WithLocatedError) {
  std::ofstream(src_ + "/egg.yaml", std::ios::app) << "permisions: {}\n";
  EXPECT_EQ(Build("", "'" + src_ + "/egg.yaml' -o '" + root_ + "/out1/x.egg'"),
            2);
  EXPECT_NE(Stderr().find("did you mean 'permissions'?"), std::string::npos)
      << Stderr();
  EXPECT_FALSE(Exists(root_ + "/out1/x.egg"));
}

TEST_F(BuildCliTest, SignedBuildCarriesABuilderSignature) {
  if (Sh("command -v ssh-keygen >/dev/null") != 0) {
    GTEST_SKIP() << "ssh-keygen is not installed";
  }
  ASSERT_EQ(Sh("ssh-keygen -q -t ed25519 -N '' -C test -f '" + root_ +
               "/key' </dev/null"),
            0);
  std::string out = root_ + "/out1/signed.egg";
  ASSERT_EQ(Build("", "'" + src_ + "/egg.yaml' -o '" + out + "' --sign '" +
                          root_ + "/key'"),
            0)
      << Stderr();
  auto egg = EggFile::Open(out, EggFile::Depth::kSummary);
  ASSERT_TRUE(egg.has_value()) << egg.error().message();
  EXPECT_FALSE(egg->signatures().empty());
  EXPECT_EQ(HiddenNames(root_ + "/out1"), "");

  // The same build unsigned has the same content root.
  std::string plain = root_ + "/out2/plain.egg";
  ASSERT_EQ(Build("", "'" + src_ + "/egg.yaml' -o '" + plain + "'"), 0);
  auto unsigned_egg = EggFile::Open(plain, EggFile::Depth::kSummary);
  ASSERT_TRUE(unsigned_egg.has_value());
  EXPECT_EQ(egg->content_root(), unsigned_egg->content_root());
}

TEST_F(BuildCliTest, BadSigningKeyExits2AndWritesNothing) {
  std::ofstream(root_ + "/key") << "not a key";
  std::string out = root_ + "/out1/signed.egg";
  EXPECT_EQ(Build("", "'" + src_ + "/egg.yaml' -o '" + out + "' --sign '" +
                          root_ + "/key'"),
            2);
  EXPECT_FALSE(Exists(out));
}

// ---- notebooks -------------------------------------------------------------

// A small nbformat-4 notebook with stored outputs.
constexpr const char* kNotebook = R"({
 "nbformat": 4, "nbformat_minor": 5,
 "metadata": {"kernelspec": {"name": "python3", "language": "python",
                             "display_name": "Python 3"}},
 "cells": [
  {"id": "intro", "cell_type": "markdown", "metadata": {},
   "source": ["# Title\n"]},
  {"id": "sum", "cell_type": "code", "metadata": {}, "execution_count": 1,
   "source": ["print(1 + 1)\n", "3 * 3"],
   "outputs": [
    {"output_type": "stream", "name": "stdout", "text": ["2\n"]},
    {"output_type": "execute_result", "execution_count": 1,
     "metadata": {}, "data": {"text/plain": ["9"]}}]}
 ]})";

// Outputs of every cell of a notebook, in order.
nlohmann::json Outputs(const Notebook& nb) {
  nlohmann::json out = nlohmann::json::array();
  for (const NotebookCell& c : nb.cells) out.push_back(c.outputs);
  return out;
}

TEST_F(BuildCliTest, NotebookBuildKeepsStoredOutputsThroughExport) {
  std::ofstream(root_ + "/My Analysis.ipynb") << kNotebook;
  ASSERT_EQ(Build("", "'" + root_ + "/My Analysis.ipynb' --runtime '" + src_ +
                          "/rootfs'"),
            0)
      << Stderr();
  std::string egg_path = root_ + "/My-Analysis.egg";
  auto egg = EggFile::Open(egg_path);
  ASSERT_TRUE(egg.has_value()) << egg.error().message();
  EXPECT_EQ(egg->manifest()["name"], "My-Analysis");
  EXPECT_TRUE(egg->FindEntry("runtime", "bin/hi").has_value());
  auto stored = NotebookFromJson(egg->notebook());
  ASSERT_TRUE(stored.has_value()) << stored.error().message();
  ASSERT_EQ(stored->cells.size(), 2u);
  EXPECT_EQ(stored->cells[1].language, "python");
  EXPECT_EQ(stored->cells[1].source, "print(1 + 1)\n3 * 3");
  auto original = ParseIpynb(kNotebook);
  ASSERT_TRUE(original.has_value()) << original.error().message();
  EXPECT_EQ(Outputs(stored.value()), Outputs(original->notebook));
  EXPECT_EQ(Outputs(stored.value())[1].size(), 2u);

  // egg export --to ipynb gives the same outputs back.
  ASSERT_EQ(Sh("'" + bin_ + "' export '" + egg_path + "' --to ipynb -o '" +
               root_ + "/back.ipynb' 2>'" + root_ + "/stderr'"),
            0)
      << Stderr();
  auto back = ImportIpynb(root_ + "/back.ipynb");
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(Outputs(back->notebook), Outputs(original->notebook));
}

TEST_F(BuildCliTest, NotebookWithoutRuntimeBuildsWithAWarning) {
  std::ofstream(root_ + "/nb.ipynb") << kNotebook;
  ASSERT_EQ(Build("", "'" + root_ + "/nb.ipynb' -o '" + root_ +
                          "/out1/nb.egg'"),
            0)
      << Stderr();
  EXPECT_NE(Stderr().find("--host-runtime"), std::string::npos) << Stderr();
  auto egg = EggFile::Open(root_ + "/out1/nb.egg");
  ASSERT_TRUE(egg.has_value()) << egg.error().message();
  EXPECT_EQ(egg->manifest()["runtime"]["kind"], "none");
  EXPECT_FALSE(egg->FindTree("runtime"));
}

TEST_F(BuildCliTest, MalformedNotebookNamesTheCellAndField) {
  std::string bad = kNotebook;
  size_t at = bad.find("\"outputs\": [");
  ASSERT_NE(at, std::string::npos);
  bad.replace(at, std::string("\"outputs\": [").size(),
              "\"outputs\": 7, \"x\": [");
  std::ofstream(root_ + "/bad.ipynb") << bad;
  EXPECT_EQ(Build("", "'" + root_ + "/bad.ipynb' --runtime '" + src_ +
                          "/rootfs' -o '" + root_ + "/out1/bad.egg'"),
            2);
  std::string err = Stderr();
  EXPECT_NE(err.find("cell 2"), std::string::npos) << err;
  EXPECT_NE(err.find("outputs"), std::string::npos) << err;
  EXPECT_EQ(err.find('\n'), err.size() - 1) << err;
  EXPECT_FALSE(Exists(root_ + "/out1/bad.egg"));
}

TEST_F(BuildCliTest, ManifestNotebookFieldUsesTheManifestsMetadata) {
  std::ofstream(src_ + "/analysis.ipynb") << kNotebook;
  std::string yaml = ReadAll(src_ + "/egg.yaml");
  size_t cells = yaml.find("\ncells:");
  ASSERT_NE(cells, std::string::npos);
  yaml = yaml.substr(0, cells + 1) + "notebook: analysis.ipynb\n";
  std::ofstream(src_ + "/egg.yaml", std::ios::binary) << yaml;
  std::string out = root_ + "/out1/nb.egg";
  ASSERT_EQ(Build("", "'" + src_ + "/egg.yaml' -o '" + out + "'"), 0)
      << Stderr();
  auto egg = EggFile::Open(out);
  ASSERT_TRUE(egg.has_value()) << egg.error().message();
  EXPECT_EQ(egg->manifest()["name"], "plant-growth");
  EXPECT_EQ(egg->manifest()["limits"]["memory_bytes"], 512ull << 20);
  EXPECT_EQ(egg->manifest()["cells"]["total"], 2);
  EXPECT_TRUE(egg->ReadFile("data", "measurements.csv").has_value());
  auto stored = NotebookFromJson(egg->notebook());
  ASSERT_TRUE(stored.has_value()) << stored.error().message();
  EXPECT_EQ(Outputs(*stored)[1].size(), 2u);
  std::vector<std::string> trees;
  for (const TreeRef& t : egg->layout().trees) trees.push_back(t.name);
  auto checked = ParseStoredManifest(egg->manifest(), egg->notebook(), trees);
  EXPECT_TRUE(checked.has_value()) << checked.error().message();
}

TEST_F(BuildCliTest, EverySharedNotebookBuilds) {
  std::string folder = std::string(EGG_SOURCE_DIR) + "/../shared/notebooks";
  if (!Exists(folder)) GTEST_SKIP() << "no shared notebooks at " << folder;
  int built = 0;
  for (const auto& e : std::filesystem::directory_iterator(folder)) {
    std::string path = e.path().string();
    if (e.path().extension() != ".ipynb") continue;
    std::string out = root_ + "/out1/" + std::to_string(built) + ".egg";
    ASSERT_EQ(Build("", "'" + path + "' --runtime '" + src_ +
                            "/rootfs' -o '" + out + "'"),
              0)
        << path << ": " << Stderr();
    auto egg = EggFile::Open(out);
    ASSERT_TRUE(egg.has_value()) << path << ": " << egg.error().message();
    auto original = ImportIpynb(path);
    ASSERT_TRUE(original.has_value()) << original.error().message();
    auto stored = NotebookFromJson(egg->notebook());
    ASSERT_TRUE(stored.has_value()) << stored.error().message();
    EXPECT_EQ(Outputs(*stored), Outputs(original->notebook)) << path;
    ++built;
  }
  EXPECT_GT(built, 0);
}

TEST_F(BuildCliTest, RuntimeOptionIsRefusedForAManifest) {
  EXPECT_EQ(Build("", "'" + src_ + "/egg.yaml' --runtime '" + src_ +
                          "/rootfs'"),
            2);
  EXPECT_NE(Stderr().find("--runtime"), std::string::npos) << Stderr();
}

// ---- stored manifests checked by hatch and info ------------------------------

TEST_F(BuildCliTest, HatchRefusesCraftedManifestBeforeAskingAnything) {
  std::string good = root_ + "/out1/good.egg";
  ASSERT_EQ(Build("", "'" + src_ + "/egg.yaml' -o '" + good + "'"), 0)
      << Stderr();
  auto egg = EggFile::Open(good);
  ASSERT_TRUE(egg.has_value()) << egg.error().message();

  struct Case {
    const char* name;
    void (*edit)(nlohmann::json&);
    const char* field;
  };
  const Case cases[] = {
      {"hostpath",
       [](nlohmann::json& m) {
         m["permissions"]["host_paths"] = {
             {{"host", "../../etc"}, {"sandbox", "/etc2"}, {"writable", false}}};
       },
       "host_paths[0].host"},
      {"device",
       [](nlohmann::json& m) {
         m["permissions"]["devices"] = {"/dev/../etc/shadow"};
       },
       "devices[0]"},
      {"version", [](nlohmann::json& m) { m["egg_manifest"] = 2; },
       "egg_manifest"},
      {"empty", [](nlohmann::json& m) { m = nlohmann::json::object(); },
       "egg_manifest"},
      {"tree", [](nlohmann::json& m) { m["runtime"]["tree"] = "../x"; },
       "runtime.tree"},
  };
  for (const Case& c : cases) {
    EggInput in;
    in.manifest = egg->manifest();
    c.edit(in.manifest);
    in.notebook = egg->notebook();
    TreeInput data{"data", root_ + "/data-" + c.name};
    ASSERT_EQ(Sh("mkdir -p '" + data.directory + "' && cp '" + src_ +
                 "/data/measurements.csv' '" + data.directory + "/'"),
              0);
    TreeInput rt{"runtime", src_ + "/rootfs"};
    in.trees = {data, rt};
    std::string crafted = root_ + "/out2/" + c.name + ".egg";
    auto w = WriteEgg(in, crafted);
    ASSERT_TRUE(w.has_value()) << w.error().message();

    int code = Sh("'" + bin_ + "' hatch --allow-unsigned --host-runtime '" +
                  crafted + "' --out-dir '" + root_ + "/hatch-" + c.name +
                  "' </dev/null >'" + root_ + "/stdout' 2>'" + root_ +
                  "/stderr'");
    EXPECT_EQ(code, 2) << c.name << ": " << Stderr();
    EXPECT_NE(Stderr().find(c.field), std::string::npos)
        << c.name << ": " << Stderr();
    EXPECT_EQ(Stderr().find("asks to"), std::string::npos) << Stderr();
    EXPECT_FALSE(Exists(root_ + "/hatch-" + c.name)) << c.name;

    // egg info still shows the egg, with a warning.
    code = Sh("'" + bin_ + "' info '" + crafted + "' >'" + root_ +
              "/stdout' 2>'" + root_ + "/stderr'");
    EXPECT_EQ(code, 0) << c.name << ": " << Stderr();
    EXPECT_NE(Stderr().find("breaks the manifest rules"), std::string::npos)
        << c.name << ": " << Stderr();
  }
}

}  // namespace
}  // namespace egg
