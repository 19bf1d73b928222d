// End-to-end tests of `egg hatch`: eggs are written with the format and
// manifest libraries, then hatched by the egg binary ($EGG_BIN).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli_test_util.h"
#include "egg/egg.h"
#include "egg/manifest.h"
#include "egg/sandbox.h"
#include "loopback_greeter.h"
#include "temp_dir.h"

namespace egg {
namespace {

using egg_test::EggBin;
using egg_test::ReadFile;

namespace fs = std::filesystem;

using egg_test::TempDir;

// Writes an egg from a parsed manifest, with a tiny folder as its runtime
// (the tests hatch with --host-runtime).
void WriteTestEgg(Manifest m, const std::string& work, const std::string& out) {
  std::string rt = work + "/rt";
  fs::create_directories(rt);
  std::ofstream(rt + "/README") << "placeholder runtime\n";
  m.runtime.kind = RuntimeKind::kFolder;
  m.runtime.path = "rt";
  EggInput in;
  auto mj = ManifestJsonValue(m);
  ASSERT_TRUE(mj.has_value()) << mj.error().message();
  auto nj = NotebookJsonValue(m);
  ASSERT_TRUE(nj.has_value()) << nj.error().message();
  in.manifest = *mj;
  in.notebook = *nj;
  std::string stage = work + "/stage";
  fs::create_directories(stage);
  ASSERT_TRUE(StageData(m, stage).has_value());
  TreeInput data;
  data.name = "data";
  data.directory = stage;
  TreeInput runtime;
  runtime.name = "runtime";
  runtime.directory = rt;
  in.trees = {data, runtime};
  auto w = WriteEgg(in, out);
  ASSERT_TRUE(w.has_value()) << w.error().message();
}

// Runs egg with no controlling terminal, stdin /dev/null and the user's
// own store; returns the exit code, stderr in *err.
int RunEgg(const std::vector<std::string>& args, std::string* err) {
  TempDir io("egg-hatch-cli-io");
  egg_test::EggRun run = egg_test::RunEggCapture(io.path(), args, "");
  *err = run.err;
  return run.code;
}

Result<Manifest> ManifestFromYaml(const std::string& yaml,
                                  const std::string& folder) {
  return ParseManifest(yaml, folder, "test.yaml");
}

// Writes the egg of manifest `yaml` (its runtime the folder rt, made
// here) to `out`; false, with the failure recorded, when it cannot.
bool WriteYamlEgg(const TempDir& t, const std::string& yaml,
                  const std::string& out) {
  fs::create_directories(t.path() + "/rt");
  auto m = ManifestFromYaml(yaml, t.path());
  EXPECT_TRUE(m.has_value()) << m.error().message();
  if (!m) return false;
  WriteTestEgg(*m, t.path(), out);
  return !::testing::Test::HasFailure();
}

TEST(HatchCliTest, HatchesTheBundledExampleInTheNamespacesSandbox) {
  if (!ProbeSandboxHost().user_namespaces) {
    GTEST_SKIP() << "the host cannot create user namespaces";
  }
  TempDir t;
  auto m =
      LoadManifest(std::string(EGG_SOURCE_DIR) + "/examples/hello/egg.yaml");
  ASSERT_TRUE(m.has_value()) << m.error().message();
  std::string egg = t.path() + "/hello.egg";
  WriteTestEgg(*m, t.path(), egg);
  std::string results = t.path() + "/r.json";
  std::string out = t.path() + "/out";
  std::string err;
  int code = RunEgg({"hatch", egg, "--host-runtime", "--allow-unsigned", "-o",
                     results, "--out-dir", out},
                    &err);
  ASSERT_EQ(code, 0) << err;
  auto doc = nlohmann::json::parse(ReadFile(results));
  EXPECT_EQ(doc["isolation"], "namespaces");
  ASSERT_EQ(doc["cells"].size(), 4u);
  for (const auto& c : doc["cells"]) EXPECT_EQ(c["status"], "ok") << c;
  EXPECT_NE(
      doc["cells"][0]["stdout"]["data"].get<std::string>().find("rows: 12"),
      std::string::npos);
  EXPECT_NE(doc["cells"][2]["stdout"]["data"].get<std::string>().find(
                "fertiliser adds"),
            std::string::npos);
  ASSERT_EQ(doc["cells"][3]["files"].size(), 1u);
  EXPECT_EQ(doc["cells"][3]["files"][0]["path"], "group_means.csv");
  EXPECT_TRUE(fs::exists(out + "/group_means.csv"));
}

TEST(HatchCliTest, CellCannotReachTheAgentsControlChannel) {
  if (!ProbeSandboxHost().user_namespaces) {
    GTEST_SKIP() << "the host cannot create user namespaces";
  }
  TempDir t;
  std::string egg = t.path() + "/snoop.egg";
  ASSERT_TRUE(
      WriteYamlEgg(t,
                   "name: snoop\nruntime: {folder: rt}\ncells:\n"
                   "  - language: bash\n"
                   "    code: |\n"
                   "      ls /proc/1/fd >/dev/null 2>&1 && echo fd-list-open\n"
                   "      readlink /proc/1/fd/3 && echo fd3-open\n"
                   "      for f in /proc/self/fd/*; do readlink \"$f\"; done\n"
                   "      true\n",
                   egg));
  std::string results = t.path() + "/r.json";
  std::string err;
  int code = RunEgg({"hatch", egg, "--host-runtime", "--allow-unsigned", "-o",
                     results, "--out-dir", t.path() + "/out"},
                    &err);
  ASSERT_EQ(code, 0) << err;
  auto doc = nlohmann::json::parse(ReadFile(results));
  std::string out = doc["cells"][0]["stdout"]["data"];
  EXPECT_EQ(out.find("fd-list-open"), std::string::npos) << out;
  EXPECT_EQ(out.find("fd3-open"), std::string::npos) << out;
  EXPECT_EQ(out.find("socket:"), std::string::npos) << out;
}

TEST(HatchCliTest, UngrantedPermissionIsRefusedWithoutATerminal) {
  TempDir t;
  std::string egg = t.path() + "/net.egg";
  ASSERT_TRUE(WriteYamlEgg(t,
                           "name: wants-net\n"
                           "runtime: {folder: rt}\n"
                           "permissions: {network: true}\n"
                           "cells:\n"
                           "  - language: bash\n"
                           "    code: touch /out/ran\n",
                           egg));
  std::string out = t.path() + "/out";
  std::string err;
  int code = RunEgg(
      {"hatch", egg, "--host-runtime", "--allow-unsigned", "--out-dir", out},
      &err);
  EXPECT_EQ(code, 5) << err;
  EXPECT_NE(err.find("network"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(t.path() + "/net.results.json"));
}

TEST(HatchCliTest, UnsignedEggIsRefusedWithoutATerminalOrAllowUnsigned) {
  TempDir t;
  std::string egg = t.path() + "/plain.egg";
  ASSERT_TRUE(WriteYamlEgg(t,
                           "name: plain\nruntime: {folder: rt}\ncells:\n"
                           "  - language: bash\n    code: touch /out/ran\n",
                           egg));
  std::string err;
  int code = RunEgg(
      {"hatch", egg, "--host-runtime", "--out-dir", t.path() + "/out"}, &err);
  EXPECT_EQ(code, 5) << err;
  EXPECT_FALSE(fs::exists(t.path() + "/out"));
}

// Hatches `yaml` (with a folder runtime) in the namespaces sandbox on the
// host's runtime; returns the exit code and the results JSON.
int HatchYaml(const TempDir& t, const std::string& yaml, nlohmann::json* doc,
              std::string* err, const std::vector<std::string>& flags = {}) {
  std::string egg = t.path() + "/t.egg";
  if (!WriteYamlEgg(t, yaml, egg)) return -1;
  std::string results = t.path() + "/r.json";
  std::vector<std::string> args = {
      "hatch", egg,     "--host-runtime", "--allow-unsigned",
      "-o",    results, "--out-dir",      t.path() + "/out"};
  args.insert(args.end(), flags.begin(), flags.end());
  int code = RunEgg(args, err);
  *doc = nlohmann::json::parse(ReadFile(results), nullptr, false);
  return code;
}

// A hatch whose first cell passed the egg's output limit, which ends the
// run: exit 4, cell 1 is `limit` / `output` and cell 2 did not run.
void ExpectOutputLimitEndedTheRun(int code, const nlohmann::json& doc,
                                  const std::string& err) {
  EXPECT_EQ(code, 4) << err;
  ASSERT_FALSE(doc.is_discarded()) << err;
  EXPECT_EQ(doc["cells"][0]["status"], "limit") << doc["cells"][0];
  EXPECT_EQ(doc["cells"][0]["limit"], "output") << doc["cells"][0];
  EXPECT_EQ(doc["cells"][1]["status"], "not_run") << doc["cells"][1];
}

// The egg's wall time is for the whole run: a cell gets what is left of
// it, the agent stops the cell there (not the sandbox's backstop), and no
// later cell runs.
TEST(HatchCliTest, EggWallTimeCoversTheCellsTogether) {
  if (!ProbeSandboxHost().user_namespaces) {
    GTEST_SKIP() << "the host cannot create user namespaces";
  }
  TempDir t;
  nlohmann::json doc;
  std::string err;
  int code = HatchYaml(t,
                       "name: wall\nruntime: {folder: rt}\n"
                       "limits: {wall_time: 3s}\ncells:\n"
                       "  - language: bash\n    code: sleep 1\n"
                       "  - language: bash\n    code: sleep 100\n"
                       "  - language: bash\n    code: echo after\n",
                       &doc, &err);
  EXPECT_EQ(code, 4) << err;
  ASSERT_FALSE(doc.is_discarded()) << err;
  EXPECT_EQ(doc["cells"][0]["status"], "ok") << doc["cells"][0];
  EXPECT_EQ(doc["cells"][1]["status"], "limit") << doc["cells"][1];
  EXPECT_EQ(doc["cells"][1]["limit"], "wall_time");
  EXPECT_LT(doc["cells"][1]["duration_ms"].get<uint64_t>(), 2900u);
  EXPECT_EQ(doc["cells"][2]["status"], "not_run") << doc["cells"][2];
  EXPECT_NE(
      doc["cells"][2]["note"].get<std::string>().find("wall time is spent"),
      std::string::npos)
      << doc["cells"][2];
  EXPECT_EQ(doc["agent_error"], "") << doc;
}

// Past its memory limit the sandbox stops as a whole: the cell is charged
// with the memory limit and every later cell says why it did not run,
// none is blamed on the agent.
TEST(HatchCliTest, MemoryLimitEndsTheRunAndNamesItForLaterCells) {
  if (!ProbeSandboxHost().user_namespaces) {
    GTEST_SKIP() << "the host cannot create user namespaces";
  }
  if (geteuid() != 0) GTEST_SKIP() << "memory cgroups need root here";
  TempDir t;
  nlohmann::json doc;
  std::string err;
  int code =
      HatchYaml(t,
                "name: mem\nruntime: {folder: rt}\nlimits: {memory: 128MiB}\n"
                "cells:\n"
                "  - language: python\n    code: x = bytearray(1500 << 20)\n"
                "  - language: python\n    code: print('after')\n"
                "  - language: bash\n    code: echo after\n",
                &doc, &err);
  EXPECT_EQ(code, 4) << err;
  ASSERT_FALSE(doc.is_discarded()) << err;
  EXPECT_EQ(doc["cells"][0]["status"], "limit") << doc["cells"][0];
  EXPECT_EQ(doc["cells"][0]["limit"], "memory");
  for (int i : {1, 2}) {
    EXPECT_EQ(doc["cells"][i]["status"], "not_run") << doc["cells"][i];
    EXPECT_NE(doc["cells"][i]["note"].get<std::string>().find("memory"),
              std::string::npos)
        << doc["cells"][i];
  }
}

// RLIMIT_FSIZE: the kernel stops a file in /out one byte past the egg's
// output limit, whatever the hatcher's polling of /out sees.
TEST(HatchCliTest, ShellCellCannotWriteAFilePastTheOutputLimit) {
  if (!ProbeSandboxHost().user_namespaces) {
    GTEST_SKIP() << "the host cannot create user namespaces";
  }
  TempDir t;
  nlohmann::json doc;
  std::string err;
  int code = HatchYaml(t,
                       "name: big\nruntime: {folder: rt}\n"
                       "limits: {output: 1MiB}\ncells:\n"
                       "  - language: bash\n"
                       "    code: head -c 8388608 /dev/zero > big; echo $?\n"
                       "  - language: bash\n    code: echo after\n",
                       &doc, &err);
  EXPECT_EQ(code, 4) << err;
  ASSERT_FALSE(doc.is_discarded()) << err;
  EXPECT_EQ(doc["cells"][0]["status"], "limit") << doc["cells"][0];
  EXPECT_EQ(doc["cells"][0]["limit"], "output");
  EXPECT_EQ(fs::file_size(t.path() + "/out/big"), (1u << 20) + 1);
  // The egg's output limit is for the whole run: the run ends there.
  EXPECT_EQ(doc["cells"][1]["status"], "not_run") << doc["cells"][1];
  EXPECT_NE(
      doc["cells"][1]["note"].get<std::string>().find("output limit is spent"),
      std::string::npos)
      << doc["cells"][1];
}

// Files a cell deletes in /out while it holds them open still fill the
// host's disk, though no listing shows them: they count against the
// egg's output limit too.
TEST(HatchCliTest, DeletedFilesHeldOpenInOutCountAgainstTheOutputLimit) {
  if (!ProbeSandboxHost().user_namespaces) {
    GTEST_SKIP() << "the host cannot create user namespaces";
  }
  TempDir t;
  nlohmann::json doc;
  std::string err;
  int code = HatchYaml(
      t,
      "name: hidden\nruntime: {folder: rt}\n"
      "limits: {output: 64KiB}\ncells:\n"
      "  - language: python\n    code: |\n"
      "      import os, time\n"
      "      fds = []\n"
      "      for i in range(64):\n"
      "          fd = os.open('/out/u%d' % i, os.O_CREAT | os.O_WRONLY)\n"
      "          os.unlink('/out/u%d' % i)\n"
      "          os.write(fd, b'x' * 65536)\n"
      "          fds.append(fd)\n"
      "      time.sleep(1)\n"
      "  - language: python\n    code: print(len(fds))\n",
      &doc, &err);
  ExpectOutputLimitEndedTheRun(code, doc, err);
}

// The same when the file is held by an orphan the cell left behind
// (reparented to the sandbox's first process) and the cell ends as soon
// as the file is written: the check after the cell finds it.
TEST(HatchCliTest, DeletedFileHeldByAnOrphanCountsWhenTheCellEnds) {
  if (!ProbeSandboxHost().user_namespaces) {
    GTEST_SKIP() << "the host cannot create user namespaces";
  }
  TempDir t;
  nlohmann::json doc;
  std::string err;
  int code = HatchYaml(
      t,
      "name: orphan\nruntime: {folder: rt}\n"
      "limits: {output: 64KiB}\ncells:\n"
      "  - language: python\n    code: |\n"
      "      import os, time\n"
      "      r, w = os.pipe()\n"
      "      if os.fork() == 0:\n"
      "          if os.fork() == 0:\n"
      "              os.setsid()\n"
      "              fd = os.open('/out/h', os.O_CREAT | os.O_WRONLY)\n"
      "              os.unlink('/out/h')\n"
      "              os.write(fd, b'x' * (1 << 20))\n"
      "              os.write(w, b'k')\n"
      "              time.sleep(60)\n"
      "          os._exit(0)\n"
      "      os.read(r, 1)\n"
      "  - language: python\n    code: print('later')\n",
      &doc, &err);
  ExpectOutputLimitEndedTheRun(code, doc, err);
}

// A process a cell leaves writing to /out in the background cannot get
// later cells charged one after the other: the first charge ends the run,
// and the writer dies with the sandbox.
TEST(HatchCliTest, BackgroundWriterPastTheOutputLimitDiesWithTheRun) {
  if (!ProbeSandboxHost().user_namespaces) {
    GTEST_SKIP() << "the host cannot create user namespaces";
  }
  TempDir t;
  nlohmann::json doc;
  std::string err;
  std::string yaml =
      "name: bg\nruntime: {folder: rt}\n"
      "limits: {output: 1MiB}\ncells:\n"
      "  - language: bash\n"
      "    code: setsid bash -c 'i=0; while :; do i=$((i + 1)); "
      "head -c 200000 /dev/zero > f$i; sleep 0.05; done' &\n";
  for (int i = 0; i < 5; ++i) {
    yaml += "  - language: bash\n    code: sleep 1\n";
  }
  int code = HatchYaml(t, yaml, &doc, &err);
  EXPECT_EQ(code, 4) << err;
  ASSERT_FALSE(doc.is_discarded()) << err;
  int charged = 0;
  for (const auto& c : doc["cells"]) charged += c["status"] == "limit";
  EXPECT_EQ(charged, 1) << doc["cells"];
  EXPECT_EQ(doc["cells"][5]["status"], "not_run") << doc["cells"][5];
  // The writer is gone: /out no longer grows.
  auto out_size = [&] {
    uint64_t total = 0;
    for (const auto& e : fs::directory_iterator(t.path() + "/out")) {
      total += e.file_size();
    }
    return total;
  };
  uint64_t total = out_size();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(out_size(), total);
  EXPECT_LT(total, 8u << 20);
}

TEST(HatchCliTest, PythonCellCannotWriteAFilePastTheOutputLimit) {
  if (!ProbeSandboxHost().user_namespaces) {
    GTEST_SKIP() << "the host cannot create user namespaces";
  }
  TempDir t;
  nlohmann::json doc;
  std::string err;
  // Python ignores SIGXFSZ, so the write fails with EFBIG instead.
  int code = HatchYaml(t,
                       "name: big\nruntime: {folder: rt}\n"
                       "limits: {output: 1MiB}\ncells:\n"
                       "  - language: python\n"
                       "    code: open('big', 'wb').write(bytes(8 << 20))\n",
                       &doc, &err);
  EXPECT_EQ(code, 4) << err;
  ASSERT_FALSE(doc.is_discarded()) << err;
  EXPECT_EQ(doc["cells"][0]["status"], "limit") << doc["cells"][0];
  EXPECT_EQ(doc["cells"][0]["limit"], "output");
  EXPECT_NE(doc["cells"][0]["stderr"]["data"].get<std::string>().find(
                "File too large"),
            std::string::npos);
  EXPECT_EQ(fs::file_size(t.path() + "/out/big"), (1u << 20) + 1);
}

// A cell that meets the task limit leaves its shell unusable; the next
// cell of the language gets a fresh session, and the results say so.
TEST(HatchCliTest, CellAfterAForkBombRunsInAFreshSession) {
  if (!ProbeSandboxHost().user_namespaces || !ProbeSandboxHost().cgroup_pids) {
    GTEST_SKIP() << "needs user namespaces and a pids cgroup";
  }
  TempDir t;
  nlohmann::json doc;
  std::string err;
  int code = HatchYaml(
      t,
      "name: bomb\nruntime: {folder: rt}\ncells:\n"
      "  - language: bash\n"
      "    limits: {processes: 16}\n"
      "    code: |\n"
      "      state=kept\n"
      // Python, not a shell loop: bash retries a refused fork for seconds.
      "      python3 -c 'import os, time\n"
      "      for i in range(64):\n"
      "          try:\n"
      "              if os.fork() == 0: time.sleep(300); os._exit(0)\n"
      "          except OSError: break'\n"
      "  - language: bash\n"
      "    code: echo \"${state:-gone}\"; jobs | wc -l\n",
      &doc, &err);
  EXPECT_EQ(code, 4) << err;
  ASSERT_FALSE(doc.is_discarded()) << err;
  EXPECT_EQ(doc["cells"][0]["status"], "limit") << doc["cells"][0];
  EXPECT_EQ(doc["cells"][0]["limit"], "processes");
  EXPECT_EQ(doc["cells"][1]["status"], "ok") << doc["cells"][1];
  EXPECT_TRUE(doc["cells"][1]["fresh_session"]);
  EXPECT_EQ(doc["cells"][1]["stdout"]["data"], "gone\n0\n");
}

// The egg is granted the network; cell 1 narrows its own permissions to
// none. It runs in a sandbox of its own with no network, and a fresh
// session; cells 2 and 3 run together again with the egg's network.
// Cells whose permissions alternate run in sandbox after sandbox; the
// egg's output limit still covers the whole run: once /out passes it no
// later cell runs, and the streams kept for all cells stay under it.
TEST(HatchCliTest, OutputLimitSpansSandboxesOfAlternatingPermissions) {
  if (!ProbeSandboxHost().user_namespaces) {
    GTEST_SKIP() << "the host cannot create user namespaces";
  }
  auto egg_of = [](const std::string& code) {
    std::string yaml =
        "name: alternate\nruntime: {folder: rt}\n"
        "permissions: {network: true}\nlimits: {output: 8KiB}\ncells:\n";
    for (int i = 0; i < 6; ++i) {
      yaml += "  - language: python\n";
      if (i % 2 == 1) yaml += "    permissions: {}\n";
      yaml += "    code: |\n" + code;
    }
    return yaml;
  };
  {
    SCOPED_TRACE("files in /out");
    TempDir t;
    nlohmann::json doc;
    std::string err;
    int code = HatchYaml(t,
                         egg_of("      import os\n"
                                "      n = len(os.listdir('/out'))\n"
                                "      with open('/out/f%d' % n, 'w') as f:\n"
                                "          f.write('y' * 6000)\n"),
                         &doc, &err, {"--grant", "network"});
    EXPECT_EQ(code, 4) << err;
    ASSERT_FALSE(doc.is_discarded()) << err;
    const auto& c = doc["cells"];
    ASSERT_EQ(c.size(), 6u);
    EXPECT_EQ(c[0]["status"], "ok") << c[0];
    EXPECT_EQ(c[1]["status"], "limit") << c[1];
    EXPECT_EQ(c[1]["limit"], "output") << c[1];
    for (size_t i = 2; i < c.size(); ++i) {
      EXPECT_EQ(c[i]["status"], "not_run") << c[i];
    }
    uint64_t in_out = 0;
    for (const auto& e : fs::directory_iterator(t.path() + "/out")) {
      in_out += fs::file_size(e.path());
      // The second sandbox could write beside the first one's files;
      // after the run every file is the hatching user's again.
      struct stat st;
      ASSERT_EQ(lstat(e.path().c_str(), &st), 0);
      EXPECT_EQ(st.st_uid, getuid()) << e.path();
    }
    EXPECT_EQ(in_out, 2u * 6000);
  }
  {
    SCOPED_TRACE("streams");
    TempDir t;
    nlohmann::json doc;
    std::string err;
    (void)HatchYaml(t, egg_of("      print('x' * 3000)\n"), &doc, &err,
                    {"--grant", "network"});
    ASSERT_FALSE(doc.is_discarded()) << err;
    uint64_t kept = 0;
    for (const auto& c : doc["cells"]) {
      kept += c["stdout"]["bytes"].get<uint64_t>() +
              c["stderr"]["bytes"].get<uint64_t>();
    }
    EXPECT_LE(kept, 8u * 1024);
    EXPECT_GE(kept, 6000u);
  }
}

TEST(HatchCliTest, CellWithNarrowerPermissionsCannotUseWhatTheEggWasGranted) {
  if (!ProbeSandboxHost().user_namespaces) {
    GTEST_SKIP() << "the host cannot create user namespaces";
  }
  egg_test::LoopbackGreeter server("hi\n");
  ASSERT_NE(server.port(), 0) << "cannot listen on 127.0.0.1";
  std::string port = std::to_string(server.port());
  std::string reach =
      "import socket\n"
      "try:\n"
      "    s = socket.create_connection(('127.0.0.1', " +
      port +
      "), timeout=5)\n"
      "    print(s.recv(3).decode(), end='')\n"
      "except OSError:\n"
      "    print('no network')\n";
  auto indent = [](const std::string& code) {
    std::string out;
    size_t pos = 0;
    while (pos < code.size()) {
      size_t end = code.find('\n', pos);
      out += "      " + code.substr(pos, end - pos) + "\n";
      pos = end + 1;
    }
    return out;
  };
  TempDir t;
  std::string egg = t.path() + "/narrow.egg";
  ASSERT_TRUE(WriteYamlEgg(
      t,
      "name: narrow\nruntime: {folder: rt}\n"
      "permissions: {network: true}\ncells:\n"
      "  - language: python\n    code: |\n" +
          indent(reach + "x = 1\n") +
          "  - language: python\n    permissions: {}\n    code: |\n" +
          indent(reach + "print('x' in globals())\n") +
          "  - language: python\n    code: |\n" + indent(reach + "y = 2\n") +
          "  - language: python\n    code: print(y)\n",
      egg));
  std::string results = t.path() + "/r.json";
  std::string err;
  int code =
      RunEgg({"hatch", egg, "--host-runtime", "--allow-unsigned", "--grant",
              "network", "-o", results, "--out-dir", t.path() + "/out"},
             &err);
  EXPECT_EQ(code, 0) << err;
  auto doc = nlohmann::json::parse(ReadFile(results), nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << err;
  const auto& c = doc["cells"];
  EXPECT_EQ(c[0]["stdout"]["data"], "hi\n") << c[0];
  EXPECT_EQ(c[1]["stdout"]["data"], "no network\nFalse\n") << c[1];
  EXPECT_TRUE(c[1]["fresh_session"]) << c[1];
  EXPECT_EQ(c[2]["stdout"]["data"], "hi\n") << c[2];
  EXPECT_TRUE(c[2]["fresh_session"]) << c[2];
  EXPECT_EQ(c[3]["stdout"]["data"], "2\n") << c[3];
  EXPECT_FALSE(c[3]["fresh_session"]) << c[3];
}

// The egg's wall time covers every sandbox of a run: a cell in a second,
// narrower sandbox gets only what the first one left.
TEST(HatchCliTest, EggWallTimeSpansTheSandboxesOfNarrowerCells) {
  if (!ProbeSandboxHost().user_namespaces) {
    GTEST_SKIP() << "the host cannot create user namespaces";
  }
  TempDir t;
  nlohmann::json doc;
  std::string err;
  int code = HatchYaml(t,
                       "name: wall\nruntime: {folder: rt}\n"
                       "permissions: {network: true}\n"
                       "limits: {wall_time: 4s}\ncells:\n"
                       "  - language: bash\n    code: sleep 2.5\n"
                       "  - language: bash\n    permissions: {}\n"
                       "    code: sleep 3; echo slept\n",
                       &doc, &err, {"--grant", "network"});
  EXPECT_EQ(code, 4) << err;
  ASSERT_FALSE(doc.is_discarded()) << err;
  EXPECT_EQ(doc["cells"][0]["status"], "ok") << doc["cells"][0];
  EXPECT_EQ(doc["cells"][1]["status"], "limit") << doc["cells"][1];
  EXPECT_EQ(doc["cells"][1]["limit"], "wall_time") << doc["cells"][1];
  EXPECT_EQ(doc["cells"][1]["stdout"]["data"], "") << doc["cells"][1];
}

// One kernel would run every cell in one sandbox: refused, before
// anything runs or is written.
TEST(HatchCliTest, KernelPathRefusesCellsWithPermissionsOfTheirOwn) {
  TempDir t;
  std::string egg = t.path() + "/k.egg";
  ASSERT_TRUE(WriteYamlEgg(
      t,
      "name: k\nruntime: {folder: rt}\npermissions: {network: true}\n"
      "cells:\n  - language: python\n    code: print(1)\n"
      "  - language: python\n    permissions: {}\n    code: print(2)\n",
      egg));
  std::string err;
  int code = RunEgg({"hatch", egg, "--host-runtime", "--allow-unsigned",
                     "--grant", "network", "--kernel", "jupyter"},
                    &err);
  EXPECT_EQ(code, 3) << err;
  EXPECT_NE(err.find("cell 2 has permissions of its own"), std::string::npos)
      << err;
  EXPECT_FALSE(fs::exists(t.path() + "/k.out"));
  EXPECT_FALSE(fs::exists(t.path() + "/k.results.json"));
}

// The results are written while the killed box is torn down; `egg
// hatch` still returns only once nothing a cell started is left. The
// sleeper names a marker unique to this test in its arguments, so the
// host's process table can be searched for it.
TEST(HatchCliTest, NothingACellStartedOutlivesTheHatch) {
  if (!ProbeSandboxHost().user_namespaces) {
    GTEST_SKIP() << "the host cannot create user namespaces";
  }
  TempDir t;
  std::string marker =
      "egg-outlive-marker-" + fs::path(t.path()).filename().string();
  nlohmann::json doc;
  std::string err;
  int code =
      HatchYaml(t,
                "name: outlive\nruntime: {folder: rt}\ncells:\n"
                "  - language: bash\n"
                "    code: |\n"
                "      setsid python3 -c 'import time; time.sleep(300)' " +
                    marker +
                    " </dev/null >/dev/null 2>&1 &\n"
                    "      sleep 0.2; echo started\n",
                &doc, &err);
  ASSERT_EQ(code, 0) << err;
  ASSERT_FALSE(doc.is_discarded()) << err;
  EXPECT_EQ(doc["cells"][0]["stdout"]["data"], "started\n");
  int found = 0;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = ReadFile(e.path().string() + "/cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(marker) != std::string::npos &&
        cmdline.find("time.sleep") != std::string::npos) {
      ++found;
    }
  }
  EXPECT_EQ(found, 0);
}

TEST(HatchCliTest, FailingCellExitsFourAndWritesResults) {
  TempDir t;
  std::string egg = t.path() + "/fails.egg";
  ASSERT_TRUE(WriteYamlEgg(t,
                           "name: fails\nruntime: {folder: rt}\ncells:\n"
                           "  - language: bash\n    code: echo one\n"
                           "  - language: bash\n    code: (exit 3)\n",
                           egg));
  std::string err;
  int code = RunEgg({"hatch", egg, "--no-sandbox", "--allow-unsigned",
                     "--out-dir", t.path() + "/out"},
                    &err);
  EXPECT_EQ(code, 4) << err;
  auto doc = nlohmann::json::parse(ReadFile(t.path() + "/fails.results.json"));
  EXPECT_EQ(doc["cells"][0]["status"], "ok");
  EXPECT_EQ(doc["cells"][1]["status"], "error");
  EXPECT_EQ(doc["cells"][1]["exit_code"], 3);
}

// A cell leaves a set-user-ID copy of a program, a set-group-ID folder
// and a world-writable file in /out: on the host, none keeps those bits.
TEST(HatchCliTest, OutputFilesKeepNoPrivilegeAndBelongToTheHatchingUser) {
  if (!ProbeSandboxHost().user_namespaces) {
    GTEST_SKIP() << "the host cannot create user namespaces";
  }
  TempDir t;
  std::string egg = t.path() + "/setid.egg";
  ASSERT_TRUE(
      WriteYamlEgg(t,
                   "name: setid\nruntime: {folder: rt}\ncells:\n"
                   "  - language: bash\n    code: |\n"
                   "      cp /usr/bin/true /out/suid && chmod 6755 /out/suid\n"
                   "      mkdir -p /out/d/e && chmod 3777 /out/d /out/d/e\n"
                   "      echo x > /out/d/e/w && chmod 4777 /out/d/e/w\n"
                   "      ln -s /etc/hostname /out/link\n"
                   "      stat -c %a /out/suid\n",
                   egg));
  std::string out = t.path() + "/out";
  std::string err;
  int code = RunEgg(
      {"hatch", egg, "--host-runtime", "--allow-unsigned", "--out-dir", out},
      &err);
  ASSERT_EQ(code, 0) << err;
  auto doc = nlohmann::json::parse(ReadFile(t.path() + "/setid.results.json"));
  // Inside, the cell did set the bits.
  EXPECT_EQ(doc["cells"][0]["stdout"]["data"], "6755\n");
  for (const char* rel : {"suid", "d", "d/e", "d/e/w"}) {
    struct stat st;
    ASSERT_EQ(lstat((out + "/" + rel).c_str(), &st), 0) << rel;
    EXPECT_EQ(st.st_mode & (S_ISUID | S_ISGID | S_ISVTX | S_IWGRP | S_IWOTH),
              0u)
        << rel << " mode " << std::oct << (st.st_mode & 07777);
  }
  // Everything, the folder and a link included, is the hatching user's:
  // not left to the host's nobody, whom any nobody process could be.
  for (const char* rel : {"", "/suid", "/d", "/d/e", "/d/e/w", "/link"}) {
    struct stat st;
    ASSERT_EQ(lstat((out + rel).c_str(), &st), 0) << rel;
    EXPECT_EQ(st.st_uid, getuid()) << rel;
    EXPECT_EQ(st.st_gid, getgid()) << rel;
  }
  struct stat host;
  ASSERT_EQ(stat("/etc/hostname", &host), 0);
  EXPECT_EQ(host.st_uid, 0u) << "a link's target was changed";
}

// Folders nested past the listing depth cannot hide bytes from the output
// limit: the cell is stopped with the output limit and, since /out can no
// longer be counted, no later cell runs.
TEST(HatchCliTest, DeeplyNestedOutputCountsAsOverTheOutputLimit) {
  if (!ProbeSandboxHost().user_namespaces) {
    GTEST_SKIP() << "the host cannot create user namespaces";
  }
  TempDir t;
  std::string egg = t.path() + "/deep.egg";
  ASSERT_TRUE(WriteYamlEgg(
      t,
      "name: deep\nruntime: {folder: rt}\nlimits: {output: 1MiB}\ncells:\n"
      "  - language: bash\n    code: |\n"
      "      cd /out\n"
      "      for i in $(seq 200); do mkdir e && cd e; done\n"
      "      echo hidden > f\n"
      "      sleep 30\n"
      "  - language: bash\n    code: echo later\n",
      egg));
  std::string err;
  int code = RunEgg({"hatch", egg, "--host-runtime", "--allow-unsigned",
                     "--out-dir", t.path() + "/out"},
                    &err);
  auto doc = nlohmann::json::parse(ReadFile(t.path() + "/deep.results.json"),
                                   nullptr, false);
  ExpectOutputLimitEndedTheRun(code, doc, err);
}

// The inode of the store's marker for the one materialised tree.
ino_t MaterialisedMarkerInode(const std::string& store) {
  for (const auto& e : fs::directory_iterator(store + "/roots")) {
    if (e.path().extension() == ".ok") {
      struct stat st;
      if (stat(e.path().c_str(), &st) == 0) return st.st_ino;
    }
  }
  return 0;
}

TEST(HatchCliTest, SecondHatchReusesTheRuntimeMaterialisedInTheStore) {
  TempDir t;
  std::string egg = t.path() + "/twice.egg";
  ASSERT_TRUE(WriteYamlEgg(t,
                           "name: twice\nruntime: {folder: rt}\ncells:\n"
                           "  - language: bash\n    code: echo hi\n",
                           egg));
  std::string store = t.path() + "/store";
  std::string err;
  ASSERT_EQ(RunEgg({"hatch", egg, "--no-sandbox", "--allow-unsigned", "--store",
                    store, "--out-dir", t.path() + "/out1"},
                   &err),
            0)
      << err;
  EXPECT_NE(err.find("extracting into the store"), std::string::npos) << err;
  ino_t first = MaterialisedMarkerInode(store);
  ASSERT_NE(first, 0u);

  ASSERT_EQ(RunEgg({"hatch", egg, "--no-sandbox", "--allow-unsigned", "--store",
                    store, "--out-dir", t.path() + "/out2"},
                   &err),
            0)
      << err;
  EXPECT_NE(err.find("cached in the store"), std::string::npos) << err;
  EXPECT_EQ(err.find("extracting"), std::string::npos) << err;
  EXPECT_EQ(MaterialisedMarkerInode(store), first);
}

// Flips one byte inside the zstd frame of the runtime tree's first chunk.
void DamageRuntimeChunk(const std::string& egg_path) {
  auto egg = EggFile::Open(egg_path);
  ASSERT_TRUE(egg.has_value()) << egg.error().message();
  auto tree = egg->FindTree("runtime");
  ASSERT_TRUE(tree.has_value());
  Digest raw{};
  for (const TreeEntry& e : (*tree)->entries) {
    if (!e.chunks.empty()) raw = e.chunks[0];
  }
  uint64_t at = 0;
  for (const ChunkEntry& c : egg->chunk_index()) {
    if (c.raw == raw)
      at = egg->layout().blocks.offset + c.offset + c.frame_length / 2;
  }
  ASSERT_NE(at, 0u);
  std::fstream f(egg_path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(at));
  char byte = 0;
  f.read(&byte, 1);
  byte = static_cast<char>(byte ^ 0x5a);
  f.seekp(static_cast<std::streamoff>(at));
  f.write(&byte, 1);
}

// The runtime of the second hatch comes from the store, so its chunks in
// the egg are not hashed again; with an empty store the same damage is
// found before anything runs.
TEST(HatchCliTest, RuntimeInTheStoreIsNotRehashedButAFreshStoreChecksIt) {
  TempDir t;
  std::string egg = t.path() + "/twice.egg";
  ASSERT_TRUE(WriteYamlEgg(t,
                           "name: twice\nruntime: {folder: rt}\ncells:\n"
                           "  - language: bash\n    code: echo hi\n",
                           egg));
  std::string store = t.path() + "/store";
  std::string err;
  ASSERT_EQ(RunEgg({"hatch", egg, "--no-sandbox", "--allow-unsigned", "--store",
                    store, "--out-dir", t.path() + "/out1"},
                   &err),
            0)
      << err;
  DamageRuntimeChunk(egg);

  EXPECT_EQ(RunEgg({"hatch", egg, "--no-sandbox", "--allow-unsigned", "--store",
                    store, "--out-dir", t.path() + "/out2"},
                   &err),
            0)
      << err;
  EXPECT_NE(err.find("not re-read"), std::string::npos) << err;

  EXPECT_EQ(RunEgg({"hatch", egg, "--no-sandbox", "--allow-unsigned", "--store",
                    t.path() + "/empty-store", "--out-dir", t.path() + "/out3"},
                   &err),
            1)
      << err;
  EXPECT_FALSE(fs::exists(t.path() + "/out3"));
}

TEST(HatchCliTest, MistypedGrantIsAUsageErrorAndRunsNothing) {
  TempDir t;
  std::string egg = t.path() + "/plain.egg";
  ASSERT_TRUE(WriteYamlEgg(t,
                           "name: plain\nruntime: {folder: rt}\ncells:\n"
                           "  - language: bash\n    code: touch /out/ran\n",
                           egg));
  for (const char* grant :
       {"bogus", "netwrk", "host-path:relative", "device:", "Network"}) {
    std::string out = t.path() + "/out";
    std::string err;
    int code = RunEgg({"hatch", egg, "--no-sandbox", "--allow-unsigned",
                       "--grant", grant, "--out-dir", out},
                      &err);
    EXPECT_EQ(code, 2) << grant << ": " << err;
    EXPECT_NE(err.find("--grant"), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_FALSE(fs::exists(out)) << grant;
  }
}

// Numeric flags take plain whole numbers in range: a negative or
// overflowing value is a one-line usage error, never a wrapped "no cap".
TEST(HatchCliTest, NegativeOrOverflowingNumericFlagIsAUsageError) {
  TempDir t;
  std::string egg = t.path() + "/plain.egg";
  ASSERT_TRUE(WriteYamlEgg(t,
                           "name: plain\nruntime: {folder: rt}\ncells:\n"
                           "  - language: bash\n    code: echo hi\n",
                           egg));
  std::vector<std::vector<std::string>> runs;
  for (const char* v : {"-1", "99999999999999999999", "1e3", "", "0x10"}) {
    runs.push_back({"export", egg, "--to", "md", "-o", t.path() + "/x.md",
                    "--max-output-bytes", v});
    runs.push_back(
        {"verify", egg, "--export-entry", v, "--signature", t.path() + "/sig"});
    runs.push_back({"runtime", "debian", "--source-date-epoch", v, "bash"});
  }
  for (const auto& args : runs) {
    std::string err;
    std::string shown;
    for (const auto& a : args) shown += a + " ";
    EXPECT_EQ(RunEgg(args, &err), 2) << shown << ": " << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  }
  EXPECT_FALSE(fs::exists(t.path() + "/x.md"));
  std::string err;
  EXPECT_EQ(RunEgg({"export", egg, "--to", "md", "-o", t.path() + "/x.md",
                    "--max-output-bytes", "4096"},
                   &err),
            0)
      << err;
}

// A closed terminal (SIGHUP), like Ctrl-C, stops the run the orderly
// way: the sandbox goes, /out keeps no set-user-ID bit and partial
// results are written (exit 130). It killed egg before, leaving them.
TEST(HatchCliTest, HangupStopsTheRunLikeAnInterrupt) {
  if (!ProbeSandboxHost().user_namespaces) {
    GTEST_SKIP() << "the host cannot create user namespaces";
  }
  TempDir t;
  std::string egg = t.path() + "/t.egg";
  ASSERT_TRUE(WriteYamlEgg(t,
                           "name: hup\nruntime: {folder: rt}\ncells:\n"
                           "  - language: bash\n    code: |\n"
                           "      touch /out/suid && chmod 6755 /out/suid\n"
                           "      touch /out/ready\n"
                           "      sleep 60\n"
                           "  - language: bash\n    code: echo never\n",
                           egg));
  std::string out = t.path() + "/out";
  std::string results = t.path() + "/r.json";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(devnull, 2);
    std::string bin = EggBin();
    std::vector<std::string> all = {bin,      "hatch",     egg,
                                    "--host-runtime", "--allow-unsigned",
                                    "-o",     results,     "--out-dir",
                                    out};
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  for (int i = 0; i < 600 && !fs::exists(out + "/ready"); ++i) {
    usleep(50000);
  }
  ASSERT_TRUE(fs::exists(out + "/ready"));
  ASSERT_EQ(kill(pid, SIGHUP), 0);
  int ws = 0;
  ASSERT_EQ(waitpid(pid, &ws, 0), pid);
  ASSERT_TRUE(WIFEXITED(ws)) << "egg died of signal " << WTERMSIG(ws);
  EXPECT_EQ(WEXITSTATUS(ws), 130);
  struct stat st;
  ASSERT_EQ(stat((out + "/suid").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 06000, 0u);
  auto doc = nlohmann::json::parse(ReadFile(results), nullptr, false);
  ASSERT_FALSE(doc.is_discarded());
  EXPECT_EQ(doc["interrupted"], true);
  EXPECT_EQ(doc["cells"][1]["status"], "not_run");
}

TEST(HatchCliTest, NextHatchRemovesADeadHatchsFolderAndKeepsALiveOnes) {
  TempDir t;
  std::string egg = t.path() + "/plain.egg";
  ASSERT_TRUE(WriteYamlEgg(t,
                           "name: plain\nruntime: {folder: rt}\ncells:\n"
                           "  - language: bash\n    code: echo hi\n",
                           egg));

  // Without a sandbox, and in one (where the sweep runs while the box is
  // torn down).
  for (bool sandbox : {false, true}) {
    SCOPED_TRACE(sandbox ? "sandbox" : "no sandbox");
    if (sandbox && !ProbeSandboxHost().user_namespaces) continue;
    // A pid that has certainly ended, and this (live) test's own pid.
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    ASSERT_GT(dead, 0);
    waitpid(dead, nullptr, 0);
    std::string stale = "/tmp/egg-hatch-" + std::to_string(dead) + "-zzTEST";
    std::string live =
        "/tmp/egg-hatch-" + std::to_string(getpid()) + "-zzTEST";
    for (const auto& d : {stale, live}) {
      fs::create_directories(d + "/drivers");
      std::ofstream(d + "/egg-agent") << "left behind\n";
    }

    std::string err;
    std::string out = t.path() + (sandbox ? "/out-sandbox" : "/out");
    std::vector<std::string> args = {"hatch", egg, "--allow-unsigned",
                                     "--store", t.path() + "/store",
                                     "--out-dir", out};
    // The test's runtime folder is empty: a sandbox takes the host's.
    args.push_back(sandbox ? "--host-runtime" : "--no-sandbox");
    int code = RunEgg(args, &err);
    bool stale_left = fs::exists(stale);
    bool live_left = fs::exists(live);
    fs::remove_all(stale);
    fs::remove_all(live);
    ASSERT_EQ(code, 0) << err;
    EXPECT_FALSE(stale_left);
    EXPECT_TRUE(live_left);
  }
}

}  // namespace
}  // namespace egg
