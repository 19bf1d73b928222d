// How the egg binary fails: an output that is not a regular file or
// cannot be written is refused before any work (and before any cell
// runs), a stdout that cannot be written fails the command, an empty
// option value is a usage error, and read-only commands create nothing.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "cli_test_util.h"
#include "egg/egg.h"
#include "temp_dir.h"

namespace {

namespace fs = std::filesystem;
using egg_test::EggBin;
using egg_test::EggRun;
using egg_test::ReadFile;
using egg_test::TempDir;

struct RunOptions {
  // stdout: this descriptor (kept open in the child), else a file.
  int stdout_fd = -1;
  bool ignore_sigpipe = false;
};

// Runs egg ARGS with stdin /dev/null, no terminal, and HOME,
// XDG_CONFIG_HOME and XDG_CACHE_HOME inside `dir`: nothing the test does
// can reach the user's own keys or store.
EggRun RunIn(const TempDir& dir, const std::vector<std::string>& args,
             RunOptions options = {}) {
  egg_test::EggRunOptions o;
  o.cache_home = dir.Sub("home");
  o.config_home = dir.path();
  o.stdout_fd = options.stdout_fd;
  o.ignore_sigpipe = options.ignore_sigpipe;
  return egg_test::RunEggCapture(dir.path(), args, o);
}

bool IsCharDevice(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
}

class CliErrorsTest : public ::testing::Test {
 protected:
  // A one-cell egg (bash, "echo hello") with a placeholder runtime,
  // built by the egg binary itself.
  void SetUp() override {
    fs::create_directories(t_.Sub("home"));
    fs::create_directories(t_.Sub("rt"));
    std::ofstream(t_.Sub("rt/README")) << "placeholder runtime\n";
    std::ofstream(t_.Sub("egg.yaml"))
        << "name: t\ncreated: 2024-01-01T00:00:00Z\n"
           "runtime: {folder: rt}\n"
           "cells:\n  - id: a\n    language: bash\n    code: echo hello\n";
    EggRun built = RunIn(t_, {"build", manifest(), "-o", egg()});
    ASSERT_EQ(built.code, 0) << built.err;
  }

  // Makes a character device node (major, minor) of our own; false when
  // this host does not let the test make one.
  bool MakeNode(const std::string& path, unsigned major, unsigned minor) {
    return mknod(path.c_str(), S_IFCHR | 0666, makedev(major, minor)) == 0;
  }

  std::string manifest() const { return t_.Sub("egg.yaml"); }
  std::string egg() const { return t_.Sub("t.egg"); }

  TempDir t_{"egg-cli-errors"};
};

TEST_F(CliErrorsTest, HatchRefusesADeviceNodeAsResultsAndRunsNothing) {
  std::string node = t_.Sub("null");
  if (!MakeNode(node, 1, 3)) GTEST_SKIP() << "cannot mknod here";
  EggRun run = RunIn(t_, {"hatch", egg(), "--allow-unsigned", "--host-runtime",
                          "-o", node, "--out-dir", t_.Sub("out")});
  EXPECT_EQ(run.code, 2) << run.err;
  EXPECT_NE(run.err.find("character device"), std::string::npos) << run.err;
  EXPECT_TRUE(IsCharDevice(node));
  EXPECT_FALSE(fs::exists(t_.Sub("out"))) << "a cell ran";
}

TEST_F(CliErrorsTest, BuildWithForceRefusesADeviceNodeAsOutput) {
  std::string node = t_.Sub("null");
  if (!MakeNode(node, 1, 3)) GTEST_SKIP() << "cannot mknod here";
  EggRun run = RunIn(t_, {"build", manifest(), "-o", node, "--force"});
  EXPECT_EQ(run.code, 2) << run.err;
  EXPECT_TRUE(IsCharDevice(node));
}

TEST_F(CliErrorsTest, KeygenRefusesAFifoAsKeyPath) {
  std::string fifo = t_.Sub("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EggRun run = RunIn(t_, {"keygen", "-o", fifo, "--force"});
  EXPECT_EQ(run.code, 2) << run.err;
  struct stat st;
  ASSERT_EQ(lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

TEST_F(CliErrorsTest, KeygenWritesNoPrivateKeyWhenItsPubFileIsAFifo) {
  std::string key = t_.Sub("key");
  ASSERT_EQ(mkfifo((key + ".pub").c_str(), 0600), 0);
  EggRun run = RunIn(t_, {"keygen", "-o", key, "--force"});
  EXPECT_EQ(run.code, 2) << run.err;
  EXPECT_FALSE(fs::exists(key));
}

TEST_F(CliErrorsTest, HatchJsonToAFullStdoutFails) {
  std::string full = t_.Sub("full");
  if (!MakeNode(full, 1, 7)) GTEST_SKIP() << "cannot mknod here";
  int fd = open(full.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  // No sandbox: what is tested is the write to stdout after the run.
  EggRun run = RunIn(t_,
                     {"hatch", egg(), "--allow-unsigned", "--host-runtime",
                      "--no-sandbox", "--out-dir", t_.Sub("out"), "--json"},
                     {.stdout_fd = fd});
  close(fd);
  EXPECT_EQ(run.code, 2) << run.err;
  EXPECT_NE(run.err.find("writing to stdout: No space left on device"),
            std::string::npos)
      << run.err;
}

TEST_F(CliErrorsTest, ExportRefusesAFolderAsOutput) {
  fs::create_directories(t_.Sub("dir"));
  EggRun run = RunIn(t_, {"export", egg(), "-o", t_.Sub("dir"), "--force"});
  EXPECT_EQ(run.code, 2) << run.err;
  EXPECT_TRUE(fs::is_directory(t_.Sub("dir")));
}

TEST_F(CliErrorsTest, ExportReplacesASymlinkAsALinkNotItsTarget) {
  std::ofstream(t_.Sub("target")) << "kept\n";
  fs::create_symlink(t_.Sub("target"), t_.Sub("link"));
  EggRun run = RunIn(t_, {"export", egg(), "-o", t_.Sub("link"), "--force"});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_FALSE(fs::is_symlink(t_.Sub("link")));
  EXPECT_EQ(ReadFile(t_.Sub("target")), "kept\n");
}

TEST_F(CliErrorsTest, HatchWithResultsInAMissingFolderExitsTwoAndRunsNothing) {
  EggRun run =
      RunIn(t_, {"hatch", egg(), "--allow-unsigned", "--host-runtime", "-o",
                 t_.Sub("missing/r.json"), "--out-dir", t_.Sub("out")});
  EXPECT_EQ(run.code, 2) << run.err;
  EXPECT_EQ(run.err.find("results in"), std::string::npos) << run.err;
  EXPECT_FALSE(fs::exists(t_.Sub("out"))) << "a cell ran";
}

TEST_F(CliErrorsTest, HatchWithResultsNamingAFolderExitsTwoAndRunsNothing) {
  fs::create_directories(t_.Sub("dir"));
  EggRun run = RunIn(t_, {"hatch", egg(), "--allow-unsigned", "--host-runtime",
                          "-o", t_.Sub("dir"), "--out-dir", t_.Sub("out")});
  EXPECT_EQ(run.code, 2) << run.err;
  EXPECT_EQ(run.err.find("results in"), std::string::npos) << run.err;
  EXPECT_FALSE(fs::exists(t_.Sub("out"))) << "a cell ran";
  EXPECT_TRUE(fs::is_directory(t_.Sub("dir")));
}

// `-o` naming the egg itself would replace the egg with its results.
TEST_F(CliErrorsTest, ResultsThatWouldReplaceTheEggAreRefused) {
  std::string before = ReadFile(egg());
  EggRun run = RunIn(t_, {"hatch", egg(), "--host-runtime", "--allow-unsigned",
                          "-o", egg(), "--out-dir", t_.Sub("out")});
  EXPECT_EQ(run.code, 2) << run.err;
  EXPECT_NE(run.err.find("is the egg itself"), std::string::npos) << run.err;
  EXPECT_EQ(ReadFile(egg()), before);
  EXPECT_FALSE(fs::exists(t_.Sub("out"))) << "a cell ran";
}

TEST_F(CliErrorsTest, FullStdoutFailsEveryPrintingCommand) {
  std::string full = t_.Sub("full");
  if (!MakeNode(full, 1, 7)) GTEST_SKIP() << "cannot mknod here";
  std::vector<std::vector<std::string>> commands = {
      {"verify", egg(), "--json"},
      {"info", egg()},
      {"info", egg(), "--json"},
      {"ls", egg()},
      {"export", egg(), "-o", "-"},
      {"cat", egg(), "runtime:README"},
      {"--version"},
      {"--help"},
      {"hatch", "--help"},
  };
  for (const auto& args : commands) {
    int fd = open(full.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    EggRun run = RunIn(t_, args, {.stdout_fd = fd});
    close(fd);
    EXPECT_EQ(run.code, 2) << args[0] << ": " << run.err;
    EXPECT_NE(run.err.find("writing to stdout: No space left on device"),
              std::string::npos)
        << args[0] << ": " << run.err;
  }
}

TEST_F(CliErrorsTest, StdoutClosedByItsReaderFailsTheCommand) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  close(p[0]);
  EggRun run = RunIn(t_, {"export", egg(), "--to", "html"},
                     {.stdout_fd = p[1], .ignore_sigpipe = true});
  close(p[1]);
  EXPECT_EQ(run.code, 2) << run.err;
  EXPECT_NE(run.err.find("writing to stdout: Broken pipe"), std::string::npos)
      << run.err;
}

// An unknown option or command first is named, not answered with "a
// subcommand is required"; only the named command's options are built,
// and every command still parses its own.
TEST_F(CliErrorsTest, UnknownOptionOrCommandFirstIsNamed) {
  for (const char* bad : {"--versio", "-V", "--", "--version=1"}) {
    EggRun run = RunIn(t_, {bad, "hatch"});
    EXPECT_EQ(run.code, 2) << bad;
    EXPECT_NE(run.err.find(std::string("unknown option '") + bad + "'"),
              std::string::npos)
        << run.err;
  }
  EggRun run = RunIn(t_, {"HATCH"});
  EXPECT_EQ(run.code, 2);
  EXPECT_NE(run.err.find("unknown command 'HATCH'"), std::string::npos)
      << run.err;
  for (const char* cmd : {"build", "keygen", "verify", "sign", "hatch", "info",
                          "ls", "cat", "extract", "runtime", "store", "export",
                          "push", "pull", "update-runtime"}) {
    EggRun help = RunIn(t_, {cmd, "--help"});
    EXPECT_EQ(help.code, 0) << cmd << ": " << help.err;
    EXPECT_NE(help.out.find(cmd), std::string::npos) << help.out;
  }
}

TEST_F(CliErrorsTest, EmptyOptionValueIsAUsageErrorNamingTheOption) {
  std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"keygen", "-o", ""}, "--output"},
      {{"keygen", "--comment", ""}, "--comment"},
      {{"build", manifest(), "-o", ""}, "--output"},
      {{"hatch", egg(), "--out-dir", ""}, "--out-dir"},
      {{"hatch", egg(), "-o", ""}, "--results"},
      {{"verify", egg(), "--trusted", ""}, "--trusted"},
      {{"store", "ls", "--store", ""}, "--store"},
      {{"hatch", ""}, "egg argument"},
  };
  for (const auto& [args, name] : cases) {
    EggRun run = RunIn(t_, args);
    EXPECT_EQ(run.code, 2) << args[0] << ": " << run.err;
    EXPECT_NE(run.err.find(name), std::string::npos)
        << args[0] << ": " << run.err;
  }
  EXPECT_FALSE(fs::exists(t_.Sub("home/config/egg/id_ed25519")));
}

TEST_F(CliErrorsTest, ReadOnlyStoreCommandsDoNotCreateAMissingStore) {
  std::string store = t_.Sub("missing/store");
  std::vector<std::vector<std::string>> commands = {
      {"store", "ls", "--store", store},
      {"store", "ls", "--store", store, "--json"},
      {"store", "verify", "--store", store},
      {"store", "gc", "--store", store},
      {"runtime", "ls", "--store", store},
  };
  for (const auto& args : commands) {
    EggRun run = RunIn(t_, args);
    EXPECT_EQ(run.code, 0) << args[1] << ": " << run.err;
    EXPECT_FALSE(fs::exists(t_.Sub("missing"))) << args[1];
  }
  EggRun json = RunIn(t_, {"store", "ls", "--store", store, "--json"});
  EXPECT_EQ(json.out, "[]\n");
  EggRun show = RunIn(t_, {"runtime", "show", "sha256:" + std::string(64, 'a'),
                           "--store", store});
  EXPECT_EQ(show.code, 2) << show.err;
  EXPECT_FALSE(fs::exists(t_.Sub("missing")));
}

TEST_F(CliErrorsTest, ReadOnlyStoreCommandsDoNotMakeAFolderIntoAStore) {
  fs::create_directories(t_.Sub("plain"));
  EggRun run = RunIn(t_, {"store", "ls", "--store", t_.Sub("plain")});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_TRUE(fs::is_empty(t_.Sub("plain")));
}

TEST_F(CliErrorsTest, BuildRemovesTheFoldersOfDeadBuildsOnly) {
  // A pid that is surely gone: a child that has been reaped.
  pid_t child = fork();
  if (child == 0) _exit(0);
  ASSERT_GT(child, 0);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  std::string dead = std::to_string(child);
  std::string live = std::to_string(getpid());
  const std::string dead_dirs[] = {".egg-precompute-" + dead + "-aaaaaa",
                                   ".egg-build-" + dead + "-bbbbbb",
                                   ".egg-sign-" + dead + "-cccccc"};
  for (const auto& d : dead_dirs) fs::create_directories(t_.Sub(d + "/out"));
  std::string alive = t_.Sub(".egg-precompute-" + live + "-dddddd");
  fs::create_directories(alive);
  // Dead here but its lock held: a build in another pid namespace.
  std::string locked = t_.Sub(".egg-precompute-" + dead + "-eeeeee");
  fs::create_directories(locked);
  int lock = open(locked.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(lock, 0);
  ASSERT_EQ(flock(lock, LOCK_EX), 0);

  EggRun run = RunIn(t_, {"build", manifest(), "-o", t_.Sub("again.egg")});
  close(lock);
  ASSERT_EQ(run.code, 0) << run.err;
  for (const auto& d : dead_dirs) EXPECT_FALSE(fs::exists(t_.Sub(d))) << d;
  EXPECT_TRUE(fs::exists(alive));
  EXPECT_TRUE(fs::exists(locked));
}

TEST_F(CliErrorsTest, ConsentListShowsLimitsInTheManifestsUnits) {
  std::ofstream(t_.Sub("long.yaml"))
      << "name: long\ncreated: 2024-01-01T00:00:00Z\n"
         "runtime: {folder: rt}\nlimits: {wall_time: 7d, memory: 4GiB}\n"
         "cells:\n  - id: a\n    language: bash\n    code: echo hi\n";
  EggRun built =
      RunIn(t_, {"build", t_.Sub("long.yaml"), "-o", t_.Sub("long.egg")});
  ASSERT_EQ(built.code, 0) << built.err;
  EggRun run = RunIn(t_, {"hatch", t_.Sub("long.egg"), "--allow-unsigned",
                          "--host-runtime", "--out-dir", t_.Sub("out")});
  EXPECT_EQ(run.code, 5) << run.err;
  EXPECT_NE(run.err.find("wall_time 7d (default 30m)"), std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find("memory 4GiB (default 2GiB)"), std::string::npos)
      << run.err;
}

TEST_F(CliErrorsTest, InfoEscapesABrokenManifestsStringOnlyOnce) {
  auto built = egg::EggFile::Open(egg());
  ASSERT_TRUE(built.has_value()) << built.error().message();
  egg::EggInput in;
  in.manifest = built->manifest();
  in.manifest["runtime"]["kind"] = "odd\x1bkind";
  in.notebook = built->notebook();
  in.trees.push_back({"runtime", t_.Sub("rt"), {}, nullptr});
  ASSERT_TRUE(egg::WriteEgg(in, t_.Sub("odd.egg")).has_value());
  EggRun run = RunIn(t_, {"info", t_.Sub("odd.egg")});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_NE(run.err.find("'odd\\x1bkind'"), std::string::npos) << run.err;
  EXPECT_EQ(run.err.find('\x1b'), std::string::npos);
}

TEST_F(CliErrorsTest, BuildOfAMissingManifestNamesItOnce) {
  std::string missing = t_.Sub("missing.yaml");
  EggRun run = RunIn(t_, {"build", missing});
  EXPECT_EQ(run.code, 2) << run.err;
  size_t first = run.err.find(missing);
  ASSERT_NE(first, std::string::npos) << run.err;
  EXPECT_EQ(run.err.find(missing, first + 1), std::string::npos) << run.err;
}

}  // namespace
