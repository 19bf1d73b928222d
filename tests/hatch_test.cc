// Tests of running cells: the agent and drivers run as plain processes
// (no sandbox), driven through RunCells.
#include "egg/hatch.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/fd.h"
#include "egg/notebook.h"
#include "hatch/out_files.h"
#include "hatch/out_tree.h"
#include "hatch/wire.h"
#include "temp_dir.h"

namespace egg {
namespace {

std::string AgentPath() { return std::string(EGG_BINARY_DIR) + "/egg-agent"; }
std::string DriversDir() { return std::string(EGG_BINARY_DIR) + "/drivers"; }

bool HaveProgram(const std::string& name) {
  std::string cmd = "command -v " + name + " >/dev/null 2>&1";
  return system(cmd.c_str()) == 0;
}

using egg_test::TempDir;

CellInput Cell(uint32_t index, const std::string& language,
               const std::string& code) {
  CellInput c;
  c.index = index;
  c.id = "c" + std::to_string(index);
  c.language = language;
  c.code = code;
  c.limits.wall_ms = 60000;
  return c;
}

RunOptions Options(const std::string& out_dir) {
  RunOptions o;
  o.setup.drivers_dir = DriversDir();
  o.setup.cwd = out_dir;
  o.setup.cell_dir = out_dir;
  o.output_dir = out_dir;
  return o;
}

RunReport RunAll(const std::vector<CellInput>& cells, RunOptions options) {
  auto host = StartLocalAgent(AgentPath());
  EXPECT_TRUE(host.has_value()) << host.error().message();
  auto report = RunCells(cells, **host, options);
  EXPECT_TRUE(report.has_value()) << report.error().message();
  return *report;
}

class HatchTest : public ::testing::Test {
 protected:
  TempDir out_;
};

TEST_F(HatchTest, PythonSessionKeepsStateAcrossCells) {
  auto r = RunAll({Cell(0, "python", "x = 41\ndef f(v):\n    return v + 1\n"),
                   Cell(1, "python", "print('unrelated')"),
                   Cell(2, "python", "print(f(x))")},
                  Options(out_.path()));
  ASSERT_EQ(r.cells.size(), 3u);
  for (const auto& c : r.cells) {
    EXPECT_EQ(c.status, CellStatus::kOk) << c.note << c.stderr_data.bytes;
  }
  EXPECT_EQ(r.cells[2].stdout_data.bytes, "42\n");
  EXPECT_TRUE(r.AllSucceeded());
}

TEST_F(HatchTest, BashSessionKeepsStateAcrossCells) {
  auto r = RunAll(
      {Cell(0, "bash", "greeting=hello; count() { echo $(( $1 + 1 )); }"),
       Cell(1, "bash", "cd /; echo \"$greeting\"; count 2"),
       Cell(2, "bash", "pwd; false")},
      Options(out_.path()));
  EXPECT_EQ(r.cells[0].status, CellStatus::kOk);
  EXPECT_EQ(r.cells[1].stdout_data.bytes, "hello\n3\n");
  EXPECT_EQ(r.cells[2].stdout_data.bytes, "/\n");
  EXPECT_EQ(r.cells[2].status, CellStatus::kError);
  EXPECT_EQ(r.cells[2].exit_code, 1);
}

TEST_F(HatchTest, ShSessionKeepsStateAcrossCells) {
  auto r = RunAll({Cell(0, "sh", "v='a b'\n"), Cell(1, "sh", "echo \"$v\"")},
                  Options(out_.path()));
  EXPECT_EQ(r.cells[1].status, CellStatus::kOk) << r.cells[1].stderr_data.bytes;
  EXPECT_EQ(r.cells[1].stdout_data.bytes, "a b\n");
}

TEST_F(HatchTest, RSessionKeepsStateAcrossCells) {
  if (!HaveProgram("Rscript")) GTEST_SKIP() << "Rscript is not installed";
  auto r = RunAll(
      {Cell(0, "r", "x <- c(1, 2, 3)"), Cell(1, "r", "cat(sum(x), \"\\n\")"),
       Cell(2, "r", "stop(\"boom\")"), Cell(3, "r", "cat(length(x), \"\\n\")")},
      Options(out_.path()));
  EXPECT_EQ(r.cells[1].status, CellStatus::kOk) << r.cells[1].stderr_data.bytes;
  EXPECT_EQ(r.cells[1].stdout_data.bytes, "6 \n");
  EXPECT_EQ(r.cells[2].status, CellStatus::kError);
  EXPECT_NE(r.cells[2].stderr_data.bytes.find("boom"), std::string::npos);
  EXPECT_EQ(r.cells[3].stdout_data.bytes, "3 \n");
}

TEST_F(HatchTest, PythonTracebackNamesTheCell) {
  auto r =
      RunAll({Cell(2, "python", "def g():\n    raise ValueError('bad')\ng()")},
             Options(out_.path()));
  EXPECT_EQ(r.cells[0].status, CellStatus::kError);
  const std::string& err = r.cells[0].stderr_data.bytes;
  EXPECT_NE(err.find("<cell 2>"), std::string::npos) << err;
  EXPECT_NE(err.find("ValueError: bad"), std::string::npos) << err;
  EXPECT_EQ(err.find("python.py"), std::string::npos) << err;
}

// The display driver loads linecache only when something needs a cell's
// lines; tracebacks printed by the cell itself, the driver's own error
// report and warnings must still quote the cells' source.
TEST_F(HatchTest, PythonDisplayDriverQuotesCellLinesWhereverTheyAreAsked) {
  RunOptions o = Options(out_.path());
  o.setup.rich_display = true;
  auto r =
      RunAll({Cell(0, "python", "import warnings\nwarnings.warn('w_marker')\n"),
              Cell(1, "python", "def f():\n    return 1 / 0  # f_marker\n"),
              Cell(2, "python",
                   "import traceback\ntry:\n    f()  # try_marker\n"
                   "except Exception:\n    traceback.print_exc()\n"),
              Cell(3, "python", "f()  # call_marker\n")},
             o);
  ASSERT_EQ(r.cells.size(), 4u);
  EXPECT_EQ(r.cells[0].status, CellStatus::kOk);
  EXPECT_NE(r.cells[0].stderr_data.bytes.find("warnings.warn('w_marker')"),
            std::string::npos)
      << r.cells[0].stderr_data.bytes;
  const std::string& printed = r.cells[2].stderr_data.bytes;
  EXPECT_EQ(r.cells[2].status, CellStatus::kOk);
  EXPECT_NE(printed.find("f()  # try_marker"), std::string::npos) << printed;
  EXPECT_NE(printed.find("# f_marker"), std::string::npos) << printed;
  const std::string& raised = r.cells[3].stderr_data.bytes;
  EXPECT_EQ(r.cells[3].status, CellStatus::kError);
  EXPECT_NE(raised.find("f()  # call_marker"), std::string::npos) << raised;
  EXPECT_NE(raised.find("# f_marker"), std::string::npos) << raised;
}

// The display driver runs from the bytecode egg's build puts in
// drivers/__pycache__ (python_session.py), a checked-hash .pyc: once the
// source beside it differs, the source is compiled and the old bytecode
// never runs.
TEST_F(HatchTest, DisplayDriverBytecodeThatNoLongerMatchesItsSourceIsNotRun) {
  namespace fs = std::filesystem;
  if (!fs::exists(DriversDir() + "/__pycache__")) {
    GTEST_SKIP() << "no python3 at build time: the driver has no bytecode";
  }
  TempDir drivers;
  fs::copy(DriversDir(), drivers.path(), fs::copy_options::recursive);
  {
    std::ofstream f(drivers.path() + "/python_display.py", std::ios::app);
    f << "\n_EDIT_MARK = 'the_edited_source_ran'\n";
  }
  RunOptions o = Options(out_.path());
  o.setup.drivers_dir = drivers.path();
  o.setup.rich_display = true;
  auto r = RunAll(
      {Cell(0, "python", "print(display.__globals__.get('_EDIT_MARK'))")}, o);
  ASSERT_EQ(r.cells.size(), 1u);
  EXPECT_EQ(r.cells[0].status, CellStatus::kOk) << r.cells[0].stderr_data.bytes;
  EXPECT_EQ(r.cells[0].stdout_data.bytes, "the_edited_source_ran\n");
}

// The display driver line-buffers stdout: what is left of a line when a
// cell ends is still that cell's output, written before its status.
TEST_F(HatchTest, DisplayDriverKeepsAPartialLineWithItsCell) {
  RunOptions o = Options(out_.path());
  o.setup.rich_display = true;
  auto r = RunAll({Cell(0, "python", "print('a', 'b', end='')"),
                   Cell(1, "python", "print('next')"),
                   Cell(2, "python",
                        "import subprocess\nprint('before')\n"
                        "subprocess.run(['echo', 'child'])\nprint('after')")},
                  o);
  ASSERT_EQ(r.cells.size(), 3u);
  EXPECT_EQ(r.cells[0].stdout_data.bytes, "a b");
  EXPECT_EQ(r.cells[1].stdout_data.bytes, "next\n");
  EXPECT_EQ(r.cells[2].stdout_data.bytes, "before\nchild\nafter\n");
}

TEST_F(HatchTest, RawOutputBytesRoundTripThroughResultsJson) {
  // Invalid UTF-8, NUL, a terminal escape and a title-setting sequence.
  const char raw_bytes[] =
      "\xff\xfe\x00"
      "a\x1b[2J\x1b]0;pwned\x07\xc3(";
  const char text_bytes[] = "caf\xc3\xa9 \x1b[31mred\x00";
  std::string raw(raw_bytes, sizeof(raw_bytes) - 1);
  std::string text(text_bytes, sizeof(text_bytes) - 1);
  auto r = RunAll({Cell(0, "python",
                        "import sys\n"
                        "sys.stdout.buffer.write(b'\\xff\\xfe\\x00a\\x1b[2J"
                        "\\x1b]0;pwned\\x07\\xc3(')\n"
                        "sys.stderr.buffer.write(b'caf\\xc3\\xa9 \\x1b[31mred"
                        "\\x00')\n")},
                  Options(out_.path()));
  ASSERT_EQ(r.cells[0].status, CellStatus::kOk) << r.cells[0].note;
  EXPECT_EQ(r.cells[0].stdout_data.bytes, raw);
  EXPECT_EQ(r.cells[0].stderr_data.bytes, text);

  auto doc = nlohmann::json::parse(ResultsJson(r, ResultsMeta{}));
  const auto& cell = doc["cells"][0];
  EXPECT_EQ(cell["stdout"]["encoding"], "base64");
  EXPECT_EQ(cell["stderr"]["encoding"], "utf-8");
  for (const char* stream : {"stdout", "stderr"}) {
    EncodedBytes e{cell[stream]["encoding"], cell[stream]["data"]};
    auto decoded = DecodeBytes(e);
    ASSERT_TRUE(decoded.has_value());
    EXPECT_EQ(*decoded, std::string(stream) == "stdout" ? raw : text);
  }
}

TEST_F(HatchTest, BackgroundProcessHoldingStdoutDoesNotHangTheCell) {
  auto c = Cell(0, "bash", "(sleep 120; echo late) & echo done");
  c.limits.wall_ms = 60000;
  auto r = RunAll({c, Cell(1, "bash", "echo next")}, Options(out_.path()));
  EXPECT_EQ(r.cells[0].status, CellStatus::kOk) << r.cells[0].note;
  EXPECT_EQ(r.cells[0].limit, "");
  EXPECT_EQ(r.cells[0].stdout_data.bytes, "done\n");
  EXPECT_EQ(r.cells[1].stdout_data.bytes, "next\n");
}

// A cell can swap a folder of /out for a link (to a host folder, to
// /dev) or a file for a FIFO between the listing after it and the hash
// of what changed: the hatcher hashes only regular files reached through
// no link, and never waits on one (it ran as root, hashing /dev/zero
// forever or a host file it named).
TEST(OutputFiles, HashingFollowsNoLinkAndOpensNoFifo) {
  TempDir t;
  std::string out = t.Sub("out");
  std::string host = t.Sub("host");
  std::filesystem::create_directories(out + "/dd");
  std::filesystem::create_directories(host);
  { std::ofstream(out + "/dd/zero") << "written by the cell"; }
  { std::ofstream(out + "/x") << "a file"; }
  { std::ofstream(host + "/zero") << "a host secret"; }
  ASSERT_TRUE(std::filesystem::is_regular_file(host + "/zero"));
  hatch::Listing after = hatch::ListOutput(out);
  ASSERT_EQ(after.size(), 2u);

  // Swapped after the listing: dd is now a link to the host folder and
  // x a FIFO.
  std::filesystem::remove_all(out + "/dd");
  std::filesystem::create_directory_symlink(host, out + "/dd");
  std::filesystem::remove(out + "/x");
  ASSERT_EQ(mkfifo((out + "/x").c_str(), 0644), 0);

  auto files = hatch::ChangedFiles(out, hatch::Listing{}, after);
  ASSERT_EQ(files.size(), 2u);
  for (const auto& f : files) {
    EXPECT_EQ(f.sha256, "") << f.path;
  }
  // The same names as regular files below /out are hashed.
  std::filesystem::remove(out + "/dd");
  std::filesystem::remove(out + "/x");
  std::filesystem::create_directories(out + "/dd");
  { std::ofstream(out + "/dd/zero") << "written by the cell"; }
  { std::ofstream(out + "/x") << "a file"; }
  files = hatch::ChangedFiles(out, hatch::Listing{}, hatch::ListOutput(out));
  ASSERT_EQ(files.size(), 2u);
  for (const auto& f : files) {
    EXPECT_EQ(f.sha256.size(), 64u) << f.path;
  }
}

// The display driver finds a cell's trailing expression without the
// parser where it can (its node classes cost 1.2 to 1.7 ms to build);
// tests/python_split_check.py runs both ways over tricky cells and
// wants the same values, text, errors and warnings.
TEST(PythonDriverSplit, AgreesWithTheParserWhereverItAnswers) {
  if (access("/usr/bin/python3", X_OK) != 0) {
    GTEST_SKIP() << "no /usr/bin/python3";
  }
  std::string cmd = "/usr/bin/python3 " + std::string(EGG_SOURCE_DIR) +
                    "/tests/python_split_check.py " + EGG_SOURCE_DIR +
                    "/src/hatch/drivers 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  int status = pclose(p);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find(" 0 failures"), std::string::npos) << out;
}

// Bytes a cell keeps on /out's disk with no descriptor open anywhere
// (deleted files whose descriptors sit in flight in a socket) show only
// as the file system filling: past the margin they count against the
// output limit.
TEST_F(HatchTest, DeletedFilesInFlightInASocketCountAgainstTheOutputLimit) {
  RunOptions o = Options(out_.path());
  o.out_max_bytes = 64 << 10;
  o.unexplained_margin = 4 << 20;
  auto c = Cell(0, "python",
                "import os, socket\n"
                "a, b = socket.socketpair()\n"
                "for i in range(24):\n"
                "    p = 'h%d' % i  # in /out, the cell's folder\n"
                "    fd = os.open(p, os.O_CREAT | os.O_WRONLY)\n"
                "    os.unlink(p)\n"
                "    os.write(fd, os.urandom(1 << 20))\n"
                "    os.fsync(fd)\n"
                "    socket.send_fds(a, [b'x'], [fd])\n"
                "    os.close(fd)\n");
  auto r = RunAll({c, Cell(1, "python", "print('later')")}, o);
  ASSERT_EQ(r.cells.size(), 2u);
  EXPECT_EQ(r.cells[0].status, CellStatus::kLimit)
      << r.cells[0].note << r.cells[0].stderr_data.bytes;
  EXPECT_EQ(r.cells[0].limit, "output");
  EXPECT_EQ(r.cells[1].status, CellStatus::kNotRun);
}

// The driver reads cells through one buffer: a cell far larger than a
// pipe's buffer arrives whole, and the cells after it start where it
// ends, however the reads split them.
TEST_F(HatchTest, PythonCellsLargerThanAPipeBufferRunWhole) {
  std::string big = "s = '" + std::string(300000, 'y') + "'\nprint(len(s))\n";
  auto r = RunAll({Cell(0, "python", "a = 1"), Cell(1, "python", big),
                   Cell(2, "python", "print(a + len(s))")},
                  Options(out_.path()));
  ASSERT_EQ(r.cells.size(), 3u);
  EXPECT_EQ(r.cells[1].status, CellStatus::kOk) << r.cells[1].note;
  EXPECT_EQ(r.cells[1].stdout_data.bytes, "300000\n");
  EXPECT_EQ(r.cells[2].stdout_data.bytes, "300001\n");
}

TEST_F(HatchTest, TwoGigabytesOfStdoutAreCutAtTheCapAndMarked) {
  auto c = Cell(0, "python",
                "import sys\nb = b'x' * (1 << 20)\n"
                "for _ in range(2048):\n    sys.stdout.buffer.write(b)\n");
  c.limits.output_bytes = 1 << 20;
  auto r =
      RunAll({c, Cell(1, "python", "print('fresh')")}, Options(out_.path()));
  const auto& cell = r.cells[0];
  EXPECT_EQ(cell.status, CellStatus::kLimit);
  EXPECT_EQ(cell.limit, "output");
  EXPECT_EQ(cell.stdout_data.bytes.size() + cell.stderr_data.bytes.size(),
            1u << 20);
  EXPECT_TRUE(cell.stdout_data.truncated());
  EXPECT_TRUE(r.cells[1].fresh_session);
  EXPECT_EQ(r.cells[1].stdout_data.bytes, "fresh\n");

  auto doc = nlohmann::json::parse(ResultsJson(r, ResultsMeta{}));
  EXPECT_EQ(doc["cells"][0]["stdout"]["truncated"], true);
  EXPECT_GT(doc["cells"][0]["stdout"]["dropped"].get<uint64_t>(), 0u);
}

TEST_F(HatchTest, CellOverItsWallTimeIsKilledAndReported) {
  auto c = Cell(0, "python",
                "x = 1\nprint('started', flush=True)\n"
                "while True:\n    pass\n");
  c.limits.wall_ms = 300;
  auto r = RunAll({c, Cell(1, "python", "print('x' in globals())")},
                  Options(out_.path()));
  EXPECT_EQ(r.cells[0].status, CellStatus::kLimit);
  EXPECT_EQ(r.cells[0].limit, "wall_time");
  EXPECT_EQ(r.cells[0].stdout_data.bytes, "started\n");
  EXPECT_EQ(r.cells[1].status, CellStatus::kOk);
  EXPECT_TRUE(r.cells[1].fresh_session);
  EXPECT_EQ(r.cells[1].stdout_data.bytes, "False\n");
}

TEST_F(HatchTest, CrashingPythonReportsSessionDeathAndNextCellIsFresh) {
  auto r = RunAll({Cell(0, "python", "y = 5"),
                   Cell(1, "python",
                        "import os\nprint('bye', flush=True)\n"
                        "os._exit(3)"),
                   Cell(2, "python", "print('y' in globals())")},
                  Options(out_.path()));
  EXPECT_EQ(r.cells[1].status, CellStatus::kSessionDied);
  EXPECT_EQ(r.cells[1].exit_code, 3);
  EXPECT_EQ(r.cells[1].stdout_data.bytes, "bye\n");
  EXPECT_TRUE(r.cells[2].fresh_session);
  EXPECT_FALSE(r.cells[2].note.empty());
  EXPECT_EQ(r.cells[2].stdout_data.bytes, "False\n");
}

TEST_F(HatchTest, KilledBashReportsSignalAndNextCellIsFresh) {
  auto r = RunAll({Cell(0, "bash", "v=1"), Cell(1, "bash", "kill -9 $$"),
                   Cell(2, "bash", "echo \"[${v:-unset}]\"")},
                  Options(out_.path()));
  EXPECT_EQ(r.cells[1].status, CellStatus::kSessionDied);
  EXPECT_EQ(r.cells[1].signal, 9);
  EXPECT_TRUE(r.cells[2].fresh_session);
  EXPECT_EQ(r.cells[2].stdout_data.bytes, "[unset]\n");
}

TEST_F(HatchTest, CellSeesNoSocketFromTheAgent) {
  auto r =
      RunAll({Cell(0, "bash",
                   "for f in /proc/self/fd/*; do readlink \"$f\" || :; done")},
             Options(out_.path()));
  ASSERT_EQ(r.cells[0].status, CellStatus::kOk);
  EXPECT_EQ(r.cells[0].stdout_data.bytes.find("socket:"), std::string::npos)
      << r.cells[0].stdout_data.bytes;
}

TEST_F(HatchTest, FilesWrittenToOutAreListedWithSizeAndHash) {
  auto r = RunAll({Cell(0, "python",
                        "import os\nos.makedirs('sub', exist_ok=True)\n"
                        "open('sub/a.txt', 'w').write('abc')\n"),
                   Cell(1, "bash", "echo nothing")},
                  Options(out_.path()));
  ASSERT_EQ(r.cells[0].files.size(), 1u);
  EXPECT_EQ(r.cells[0].files[0].path, "sub/a.txt");
  EXPECT_EQ(r.cells[0].files[0].size, 3u);
  EXPECT_EQ(r.cells[0].files[0].sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_TRUE(r.cells[1].files.empty());
}

TEST_F(HatchTest, PerCellCommandLanguageRunsEachCellAsItsOwnProcess) {
  auto o = Options(out_.path());
  o.setup.commands.push_back({"pyscript", {"python3", "{file}"}, ".py"});
  auto r =
      RunAll({Cell(0, "pyscript", "z = 1\nprint(__file__.endswith('.py'))"),
              Cell(1, "pyscript", "print('z' in globals())"),
              Cell(2, "pyscript", "import sys\nsys.exit(7)")},
             o);
  EXPECT_EQ(r.cells[0].stdout_data.bytes, "True\n");
  EXPECT_EQ(r.cells[1].stdout_data.bytes, "False\n");
  EXPECT_EQ(r.cells[2].status, CellStatus::kError);
  EXPECT_EQ(r.cells[2].exit_code, 7);
}

TEST_F(HatchTest, UnknownLanguageIsRefusedBeforeAnythingRuns) {
  auto host = StartLocalAgent(AgentPath());
  ASSERT_TRUE(host.has_value());
  auto r = RunCells({Cell(0, "bash", "touch ran"), Cell(1, "cobol", "x")},
                    **host, Options(out_.path()));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kNotSupported);
  EXPECT_FALSE(std::filesystem::exists(out_.path() + "/ran"));
}

TEST_F(HatchTest, StopOnErrorLeavesLaterCellsNotRun) {
  auto o = Options(out_.path());
  o.stop_on_error = true;
  auto r = RunAll({Cell(0, "bash",
                        "exit_status_is() { return 3; }; "
                        "exit_status_is"),
                   Cell(1, "bash", "touch ran")},
                  o);
  EXPECT_EQ(r.cells[0].status, CellStatus::kError);
  EXPECT_EQ(r.cells[0].exit_code, 3);
  EXPECT_EQ(r.cells[1].status, CellStatus::kNotRun);
  EXPECT_FALSE(std::filesystem::exists(out_.path() + "/ran"));
}

// The first cell's session is asked for before the first cell runs; a
// refused first cell leaves it to the next cell of its language.
TEST_F(HatchTest, ShellCellWithNulByteIsRefused) {
  auto r = RunAll({Cell(0, "bash", std::string("echo a\0b", 8)),
                   Cell(1, "bash", "echo next")},
                  Options(out_.path()));
  EXPECT_EQ(r.cells[0].status, CellStatus::kError);
  EXPECT_NE(r.cells[0].note.find("NUL"), std::string::npos);
  EXPECT_EQ(r.cells[1].status, CellStatus::kOk) << r.cells[1].note;
  EXPECT_EQ(r.cells[1].stdout_data.bytes, "next\n");
  EXPECT_FALSE(r.cells[1].fresh_session);
}

// ---- a hostile agent
// ----------------------------------------------------------

// An AgentHost whose "agent" is a thread writing chosen bytes.
class FakeAgentHost : public AgentHost {
 public:
  explicit FakeAgentHost(std::vector<uint8_t> bytes) {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ours_.Reset(sv[0]);
    theirs_.Reset(sv[1]);
    EXPECT_TRUE(WriteAll(theirs_.get(), std::span<const uint8_t>(bytes)));
  }
  int control_fd() const override { return ours_.get(); }
  Status BeforeCell(const Limits&) override { return {}; }
  std::optional<HostEnd> Ended() override { return std::nullopt; }
  void Kill() override {
    killed = true;
    theirs_.Reset();
  }
  bool killed = false;

 private:
  UniqueFd ours_, theirs_;
};

std::vector<uint8_t> HelloBytes() {
  return wire::Encode(wire::Hello{wire::kVersion, "fake"});
}

std::vector<uint8_t> Concat(std::vector<uint8_t> a,
                            const std::vector<uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

RunReport RunAgainst(std::vector<uint8_t> bytes, FakeAgentHost** out_host,
                     std::unique_ptr<FakeAgentHost>* keep) {
  *keep = std::make_unique<FakeAgentHost>(std::move(bytes));
  *out_host = keep->get();
  RunOptions o;
  o.setup.drivers_dir = DriversDir();
  auto r = RunCells({Cell(0, "python", "print(1)"), Cell(1, "python", "2")},
                    **keep, o);
  EXPECT_TRUE(r.has_value());
  return *r;
}

TEST(HostileAgentTest, OversizedFrameLengthIsRejected) {
  std::vector<uint8_t> frame = {wire::kVersion,
                                static_cast<uint8_t>(wire::Type::kStdout),
                                0,
                                0,
                                0xff,
                                0xff,
                                0xff,
                                0x7f};
  FakeAgentHost* host;
  std::unique_ptr<FakeAgentHost> keep;
  auto r = RunAgainst(Concat(HelloBytes(), frame), &host, &keep);
  EXPECT_NE(r.agent_error.find("exceeds limit"), std::string::npos)
      << r.agent_error;
  EXPECT_EQ(r.cells[0].status, CellStatus::kAgentFailed);
  EXPECT_EQ(r.cells[1].status, CellStatus::kNotRun);
  EXPECT_TRUE(host->killed);
  EXPECT_FALSE(r.AllSucceeded());
}

TEST(HostileAgentTest, UnknownFrameTypeIsRejected) {
  std::vector<uint8_t> frame = {wire::kVersion, 0x7e, 0, 0, 0, 0, 0, 0};
  FakeAgentHost* host;
  std::unique_ptr<FakeAgentHost> keep;
  auto r = RunAgainst(Concat(HelloBytes(), frame), &host, &keep);
  EXPECT_NE(r.agent_error.find("unknown frame type"), std::string::npos)
      << r.agent_error;
}

TEST(HostileAgentTest, NonZeroReservedBytesAreRejected) {
  std::vector<uint8_t> frame = {wire::kVersion,
                                static_cast<uint8_t>(wire::Type::kError),
                                1,
                                0,
                                0,
                                0,
                                0,
                                0};
  FakeAgentHost* host;
  std::unique_ptr<FakeAgentHost> keep;
  auto r = RunAgainst(Concat(HelloBytes(), frame), &host, &keep);
  EXPECT_NE(r.agent_error.find("reserved"), std::string::npos) << r.agent_error;
}

TEST(HostileAgentTest, WrongProtocolVersionInHelloIsRejected) {
  FakeAgentHost* host;
  std::unique_ptr<FakeAgentHost> keep;
  auto r = RunAgainst(wire::Encode(wire::Hello{7, "future"}), &host, &keep);
  EXPECT_NE(r.agent_error.find("protocol"), std::string::npos) << r.agent_error;
  EXPECT_EQ(r.cells[0].status, CellStatus::kNotRun);
}

TEST(HostileAgentTest, OutputForAnotherCellIsRejected) {
  auto bytes = Concat(HelloBytes(), wire::Encode(wire::SessionStarted{1, 9}));
  std::string data = "spoof";
  bytes = Concat(
      bytes, wire::EncodeOutput(
                 wire::Type::kStdout, 1, 5,
                 {reinterpret_cast<const uint8_t*>(data.data()), data.size()}));
  FakeAgentHost* host;
  std::unique_ptr<FakeAgentHost> keep;
  auto r = RunAgainst(bytes, &host, &keep);
  EXPECT_EQ(r.cells[0].status, CellStatus::kAgentFailed);
  EXPECT_TRUE(r.cells[0].stdout_data.bytes.empty());
}

// ---- wire decoders
// --------------------------------------------------------------

TEST(WireTest, CellDoneRejectsTrailingAndShortPayloads) {
  auto frame = wire::Encode(wire::CellDone{});
  std::vector<uint8_t> payload(frame.begin() + wire::kHeaderSize, frame.end());
  wire::CellDone m;
  EXPECT_TRUE(wire::Decode(payload, &m));
  payload.push_back(0);
  EXPECT_FALSE(wire::Decode(payload, &m));
  payload.resize(payload.size() - 2);
  EXPECT_FALSE(wire::Decode(payload, &m));
}

TEST(WireTest, CellDoneRejectsOutOfRangeOutcome) {
  auto frame = wire::Encode(wire::CellDone{});
  std::vector<uint8_t> payload(frame.begin() + wire::kHeaderSize, frame.end());
  payload[8] = 9;  // outcome
  wire::CellDone m;
  EXPECT_FALSE(wire::Decode(payload, &m));
}

TEST(WireTest, StartSessionRejectsStringLongerThanPayload) {
  wire::StartSession s;
  s.argv = {"python3"};
  auto frame = wire::Encode(s);
  std::vector<uint8_t> payload(frame.begin() + wire::kHeaderSize, frame.end());
  payload[9] = 0xff;  // argv[0] length low byte
  wire::StartSession m;
  EXPECT_FALSE(wire::Decode(payload, &m));
}

TEST(WireTest, StartSessionRoundTrips) {
  wire::StartSession s;
  s.session = 4;
  s.mode = wire::SessionMode::kPerCellCommand;
  s.argv = {"node", "{file}"};
  s.env = {"A=b"};
  s.cwd = "/out";
  s.cell_dir = "/tmp";
  s.cell_suffix = ".js";
  auto frame = wire::Encode(s);
  wire::Header h;
  ASSERT_FALSE(wire::DecodeHeader(frame, wire::kMaxHatcherPayload, false, &h));
  wire::StartSession m;
  ASSERT_TRUE(wire::Decode(
      std::span<const uint8_t>(frame).subspan(wire::kHeaderSize), &m));
  EXPECT_EQ(m.argv, s.argv);
  EXPECT_EQ(m.env, s.env);
  EXPECT_EQ(m.cell_suffix, ".js");
}

TEST(WireTest, HatcherTypesAreRejectedFromTheAgentDirection) {
  auto frame = wire::EncodeShutdown();
  wire::Header h;
  EXPECT_TRUE(wire::DecodeHeader(frame, wire::kMaxAgentPayload, true, &h));
}

TEST(ResultsTest, DecodeBytesRejectsBadBase64) {
  EXPECT_FALSE(DecodeBytes({"base64", "a=bc"}).has_value());
  EXPECT_FALSE(DecodeBytes({"base64", "abc"}).has_value());
  EXPECT_FALSE(DecodeBytes({"rot13", "abc"}).has_value());
  EXPECT_EQ(*DecodeBytes({"base64", "AP8="}), std::string("\x00\xff", 2));
}

// The egg's output limit is for the whole run: the cell that takes /out
// past it is charged, and the run ends there.
TEST_F(HatchTest, CellWritingPastTheOutputCapIntoOutEndsTheRun) {
  RunOptions o = Options(out_.path());
  o.out_max_bytes = 1 << 20;
  CellInput c =
      Cell(0, "bash", "while :; do head -c 262144 /dev/zero >> big; done");
  c.limits.wall_ms = 120000;
  RunReport report = RunAll({c, Cell(1, "bash", "echo next")}, o);
  ASSERT_EQ(report.cells.size(), 2u);
  EXPECT_EQ(report.cells[0].status, CellStatus::kLimit);
  EXPECT_EQ(report.cells[0].limit, "output");
  EXPECT_EQ(report.cells[1].status, CellStatus::kNotRun);
  EXPECT_NE(report.cells[1].note.find("output limit is spent"),
            std::string::npos)
      << report.cells[1].note;
  EXPECT_EQ(report.agent_error, "");
}

// The streams kept for all cells together are bounded (the egg's output
// limit), so the results stay bounded however many cells an egg has.
TEST_F(HatchTest, StreamsOfAllCellsTogetherStopAtTheRunsCap) {
  RunOptions o = Options(out_.path());
  o.streams_max_bytes = 1 << 20;
  std::vector<CellInput> cells;
  for (uint32_t i = 0; i < 4; ++i) {
    cells.push_back(Cell(i, "sh", "head -c 600000 /dev/zero"));
  }
  RunReport report = RunAll(cells, o);
  ASSERT_EQ(report.cells.size(), 4u);
  uint64_t kept = 0;
  for (const CellResult& c : report.cells) {
    kept += c.stdout_data.bytes.size() + c.stderr_data.bytes.size();
  }
  EXPECT_EQ(kept, 1u << 20);
  EXPECT_EQ(report.cells[0].status, CellStatus::kOk);
  for (size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(report.cells[i].status, CellStatus::kLimit) << i;
    EXPECT_EQ(report.cells[i].limit, "output") << i;
    EXPECT_TRUE(report.cells[i].stdout_data.truncated()) << i;
  }
}

// The files lists of a run share one budget: once it is spent, later
// entries are dropped (and counted), so the results stay bounded.
TEST(OutFilesTest, FileListsShareOneBudgetAcrossTheRun) {
  std::vector<OutputFile> files(3);
  for (size_t i = 0; i < files.size(); ++i) {
    files[i].path = "file-" + std::to_string(i) + ".txt";  // 10 bytes
  }
  uint64_t budget = 2 * (10 + hatch::kFileEntryCost);
  EXPECT_EQ(hatch::TrimFileList(&files, &budget), 1u);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[1].path, "file-1.txt");
  EXPECT_EQ(budget, 0u);
  std::vector<OutputFile> later(1);
  later[0].path = "x";
  EXPECT_EQ(hatch::TrimFileList(&later, &budget), 1u);
  EXPECT_TRUE(later.empty());
}

// A local agent whose box reports `after` limit events once a cell has
// started (the first count, taken before the cell, is zero).
class CountingHost : public AgentHost {
 public:
  CountingHost(std::unique_ptr<AgentHost> inner, LimitEvents after)
      : inner_(std::move(inner)), after_(after) {}
  int control_fd() const override { return inner_->control_fd(); }
  Status BeforeCell(const Limits& l) override { return inner_->BeforeCell(l); }
  std::optional<HostEnd> Ended() override { return inner_->Ended(); }
  void Kill() override { inner_->Kill(); }
  LimitEvents LimitEventCounts() override {
    return calls_++ == 0 ? LimitEvents{} : after_;
  }

 private:
  std::unique_ptr<AgentHost> inner_;
  LimitEvents after_;
  int calls_ = 0;
};

CellResult RunCountingOne(const std::string& code, AgentHost::LimitEvents after,
                          const std::string& out_dir) {
  auto local = StartLocalAgent(AgentPath());
  EXPECT_TRUE(local.has_value()) << local.error().message();
  CountingHost host(std::move(*local), after);
  auto report = RunCells({Cell(0, "bash", code)}, host, Options(out_dir));
  EXPECT_TRUE(report.has_value()) << report.error().message();
  return report->cells.at(0);
}

TEST_F(HatchTest, CellKilledByTheOomKillerIsReportedAsMemoryLimit) {
  CellResult r = RunCountingOne("kill -9 $$", {1, 0}, out_.path());
  EXPECT_EQ(r.status, CellStatus::kLimit);
  EXPECT_EQ(r.limit, "memory");
}

TEST_F(HatchTest, ForkBombWhoseShellSurvivesIsReportedAsProcessesLimit) {
  CellResult r = RunCountingOne("echo survived", {0, 3}, out_.path());
  EXPECT_EQ(r.status, CellStatus::kLimit);
  EXPECT_EQ(r.limit, "processes");
}

TEST_F(HatchTest, CellAfterTheProcessesLimitRunsInAFreshSession) {
  auto local = StartLocalAgent(AgentPath());
  ASSERT_TRUE(local.has_value()) << local.error().message();
  CountingHost host(std::move(*local), {0, 3});
  // The first cell leaves state and a background child behind; the task
  // limit is met during it, so neither may reach the next cell.
  auto report =
      RunCells({Cell(0, "bash", "x=set; sleep 300 &"),
                Cell(1, "bash", "echo \"${x:-unset}\"; jobs | wc -l")},
               host, Options(out_.path()));
  ASSERT_TRUE(report.has_value()) << report.error().message();
  ASSERT_EQ(report->cells.size(), 2u);
  EXPECT_EQ(report->cells[0].status, CellStatus::kLimit);
  EXPECT_EQ(report->cells[0].limit, "processes");
  EXPECT_FALSE(report->cells[0].fresh_session);
  EXPECT_EQ(report->cells[1].status, CellStatus::kOk);
  EXPECT_TRUE(report->cells[1].fresh_session);
  EXPECT_NE(report->cells[1].note.find("fresh"), std::string::npos);
  EXPECT_EQ(report->cells[1].stdout_data.bytes, "unset\n0\n");
}

TEST_F(HatchTest, CellWithNoLimitEventsKeepsItsStatus) {
  CellResult r = RunCountingOne("echo fine", {0, 0}, out_.path());
  EXPECT_EQ(r.status, CellStatus::kOk);
  EXPECT_EQ(r.limit, "");
}

// A cell whose stored output is "partial\n" and whose fresh run printed
// the same before ending with `status`.
ReproReport CompareOneCell(CellStatus status) {
  Notebook nb;
  NotebookCell cell;
  cell.id = "a";
  cell.language = "bash";
  cell.source = "echo partial; sleep 100";
  cell.outputs = nlohmann::json::array(
      {{{"output_type", "stream"}, {"name", "stdout"}, {"text", "partial\n"}}});
  nb.cells.push_back(cell);
  RunReport report;
  CellResult r;
  r.id = "a";
  r.language = "bash";
  r.status = status;
  r.stdout_data.bytes = "partial\n";
  report.cells.push_back(r);
  return CompareNotebook(nb, RunFromHatch(report, ""), CompareOptions{});
}

// A Python cell whose stored outputs end with the ZeroDivisionError it
// raises again.
ReproReport CompareRaisingCell(const std::string& fresh_error) {
  Notebook nb;
  NotebookCell cell;
  cell.id = "a";
  cell.language = "python";
  cell.source = "1/0";
  cell.outputs =
      nlohmann::json::array({{{"output_type", "error"},
                              {"ename", "ZeroDivisionError"},
                              {"evalue", "division by zero"},
                              {"traceback", nlohmann::json::array()}}});
  nb.cells.push_back(cell);
  RunReport report;
  CellResult r;
  r.id = "a";
  r.language = "python";
  r.status = CellStatus::kError;
  r.stderr_data.bytes =
      "Traceback (most recent call last):\n  File \"<cell>\", line 1\n" +
      fresh_error + "\n";
  report.cells.push_back(r);
  return CompareNotebook(nb, RunFromHatch(report, ""), CompareOptions{});
}

TEST(HatchReproTest, CellThatRaisesTheStoredErrorAgainIsReproduced) {
  EXPECT_EQ(
      CompareRaisingCell("ZeroDivisionError: division by zero").reproduced, 1u);
  ReproReport other = CompareRaisingCell("NameError: name 'x' is not defined");
  EXPECT_EQ(other.reproduced, 0u);
  ASSERT_EQ(other.cells.size(), 1u);
  EXPECT_EQ(other.cells[0].verdict, CellVerdict::kDiffers);
}

TEST(HatchReproTest, OnlyACellThatFinishedOkCountsAsReproduced) {
  ReproReport ok = CompareOneCell(CellStatus::kOk);
  EXPECT_EQ(ok.reproduced, 1u);
  for (CellStatus s : {CellStatus::kError, CellStatus::kSessionDied,
                       CellStatus::kLimit, CellStatus::kAgentFailed}) {
    ReproReport r = CompareOneCell(s);
    EXPECT_EQ(r.reproduced, 0u) << CellStatusName(s);
    ASSERT_EQ(r.cells.size(), 1u);
    EXPECT_EQ(r.cells[0].verdict, CellVerdict::kFailed) << CellStatusName(s);
  }
  EXPECT_EQ(CompareOneCell(CellStatus::kNotRun).reproduced, 0u);
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return 0177777;
  return st.st_mode & 07777;
}

TEST(OutFilesTest, BlocksReservedPastTheEndCountAgainstTheCap) {
  TempDir t;
  // A file whose size says 0 but which holds 8 MiB of reserved blocks
  // (FALLOC_FL_KEEP_SIZE), and a sparse file that holds almost nothing:
  // each counts by the larger of the two.
  int fd = open((t.path() + "/reserved").c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  int rc = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 8 << 20);
  close(fd);
  if (rc != 0) GTEST_SKIP() << "the test folder's file system has no fallocate";
  fd = open((t.path() + "/sparse").c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 4 << 20), 0);
  close(fd);
  uint64_t total = hatch::OutTotal(t.path());
  EXPECT_GE(total, uint64_t{12} << 20);
  EXPECT_TRUE(hatch::OutOverCap(total, 0, 10 << 20));
}

TEST(OutTreeTest, ClearsSetIdStickyAndSharedWriteBitsAtAnyDepth) {
  TempDir t;
  std::string out = t.path() + "/out";
  ASSERT_EQ(mkdir(out.c_str(), 0755), 0);
  // 1100 levels: deeper than the 1024 descriptors a process may usually
  // hold open.
  std::string deep = out;
  int fd = open(out.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 1100; ++i) {
    ASSERT_EQ(mkdirat(fd, "d", 0700), 0);
    ASSERT_EQ(fchmodat(fd, "d", 03777, 0), 0);
    int next = openat(fd, "d", O_RDONLY | O_DIRECTORY);
    ASSERT_GE(next, 0);
    close(fd);
    fd = next;
  }
  int file = openat(fd, "f", O_WRONLY | O_CREAT, 0600);
  ASSERT_GE(file, 0);
  ASSERT_EQ(fchmod(file, 06777), 0);
  close(file);
  close(fd);
  std::ofstream(out + "/top") << "x";
  ASSERT_EQ(chmod((out + "/top").c_str(), 04000), 0);  // no read bit

  auto stats = hatch::SanitizeOutputTree(out);
  ASSERT_TRUE(stats) << stats.error().message();
  EXPECT_EQ(stats->depth, 1100u);
  EXPECT_EQ(stats->changed, 1102u);
  EXPECT_EQ(ModeOf(out + "/top"), 0u);
  fd = open(out.c_str(), O_RDONLY | O_DIRECTORY);
  for (int i = 0; i < 1100; ++i) {
    struct stat st;
    ASSERT_EQ(fstatat(fd, "d", &st, AT_SYMLINK_NOFOLLOW), 0);
    ASSERT_EQ(st.st_mode & 07777, 0755u) << "level " << i;
    int next = openat(fd, "d", O_RDONLY | O_DIRECTORY);
    close(fd);
    fd = next;
  }
  struct stat st;
  ASSERT_EQ(fstatat(fd, "f", &st, AT_SYMLINK_NOFOLLOW), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  close(fd);
}

TEST(OutTreeTest, NeverChangesWhatALinkPointsTo) {
  TempDir t;
  std::string out = t.path() + "/out";
  ASSERT_EQ(mkdir(out.c_str(), 0755), 0);
  std::string outside = t.path() + "/outside";
  std::ofstream(outside) << "host";
  ASSERT_EQ(chmod(outside.c_str(), 04777), 0);
  ASSERT_EQ(symlink(outside.c_str(), (out + "/link").c_str()), 0);
  ASSERT_EQ(mkdir((t.path() + "/outdir").c_str(), 01777), 0);
  ASSERT_EQ(chmod((t.path() + "/outdir").c_str(), 01777), 0);
  ASSERT_EQ(symlink((t.path() + "/outdir").c_str(), (out + "/dl").c_str()), 0);
  auto stats = hatch::SanitizeOutputTree(out);
  ASSERT_TRUE(stats) << stats.error().message();
  EXPECT_EQ(ModeOf(outside), 04777u);
  EXPECT_EQ(ModeOf(t.path() + "/outdir"), 01777u);
  EXPECT_EQ(stats->changed, 0u);
}

TEST(OutTreeTest, MissingFolderIsAnError) {
  EXPECT_FALSE(hatch::SanitizeOutputTree("/nonexistent-egg-out-folder"));
}

}  // namespace
}  // namespace egg
