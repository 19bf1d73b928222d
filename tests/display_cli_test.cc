// End-to-end tests of rich outputs through the sandbox: notebooks are
// built into eggs and hatched by the egg binary ($EGG_BIN) with
// --host-runtime, so that the Python display driver runs inside the
// namespaces sandbox and its records reach the results JSON through the
// agent's Display frames.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

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
using egg_test::RunEgg;

namespace fs = std::filesystem;
using nlohmann::json;

using egg_test::TempDir;

bool HostHas(const std::string& program) {
  std::string cmd = "command -v " + program + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

bool HostPythonHas(const std::string& module) {
  std::string cmd =
      "/usr/bin/python3 -c 'import " + module + "' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

// A notebook (nbformat 4) in `language` with one code cell per source.
std::string WriteNotebook(const std::string& dir,
                          const std::vector<std::string>& sources,
                          const std::string& language) {
  json cells = json::array();
  for (size_t i = 0; i < sources.size(); ++i) {
    cells.push_back({{"cell_type", "code"},
                     {"id", "c" + std::to_string(i + 1)},
                     {"metadata", json::object()},
                     {"execution_count", nullptr},
                     {"outputs", json::array()},
                     {"source", sources[i]}});
  }
  json nb = {{"nbformat", 4},
             {"nbformat_minor", 5},
             {"metadata",
              {{"kernelspec",
                {{"name", language},
                 {"display_name", language},
                 {"language", language}}}}},
             {"cells", cells}};
  fs::create_directories(dir + "/rt");
  std::ofstream(dir + "/rt/README") << "placeholder runtime\n";
  std::string path = dir + "/nb.ipynb";
  std::ofstream(path) << nb.dump(1);
  return path;
}

struct Hatch {
  int code = -1;
  std::string err;
  json results;
};

// Builds the notebook into an egg and hatches it in the namespaces
// sandbox on the host's runtime.
Hatch BuildAndHatch(const TempDir& t, const std::vector<std::string>& cells,
                    const std::string& language = "python") {
  Hatch h;
  std::string nb = WriteNotebook(t.path(), cells, language);
  std::string egg = t.path() + "/nb.egg";
  int built =
      RunEgg(t.path(), {"build", nb, "--runtime", t.path() + "/rt", "-o", egg},
             &h.err);
  if (built != 0) {
    h.err = "build failed: " + h.err;
    return h;
  }
  std::string results = t.path() + "/results.json";
  h.code = RunEgg(t.path(),
                  {"hatch", egg, "--host-runtime", "--allow-unsigned", "-o",
                   results, "--out-dir", t.path() + "/out"},
                  &h.err);
  h.results = json::parse(ReadFile(results), nullptr, false);
  return h;
}

// The outputs of cell `i` of the results (an empty array if none).
json Outputs(const Hatch& h, size_t i) {
  if (!h.results.is_object() || i >= h.results["cells"].size()) {
    return json::array();
  }
  return h.results["cells"][i].value("outputs", json::array());
}

std::string Joined(const json& text) {
  if (text.is_string()) return text.get<std::string>();
  std::string all;
  for (const auto& line : text) all += line.get<std::string>();
  return all;
}

// The text of every stream output of cell `i`, in order.
std::string StreamText(const Hatch& h, size_t i) {
  std::string text;
  for (const auto& o : Outputs(h, i)) {
    if (o["output_type"] == "stream") text += Joined(o["text"]);
  }
  return text;
}

bool CanSandbox() { return ProbeSandboxHost().user_namespaces; }

TEST(DisplayCliTest, LastExpressionBecomesAnExecuteResult) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  TempDir t;
  Hatch h = BuildAndHatch(t, {"x = 21\nx * 2", "x + 1;"});
  ASSERT_EQ(h.code, 0) << h.err;
  json first = Outputs(h, 0);
  ASSERT_EQ(first.size(), 1u) << first;
  EXPECT_EQ(first[0]["output_type"], "execute_result");
  EXPECT_EQ(Joined(first[0]["data"]["text/plain"]), "42");
  EXPECT_EQ(first[0]["execution_count"], 1);
  // A trailing ';' hides the value, as in Jupyter.
  EXPECT_TRUE(Outputs(h, 1).empty()) << Outputs(h, 1);
}

TEST(DisplayCliTest, DisplayDataKeepsItsPlaceBetweenPrints) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  TempDir t;
  Hatch h = BuildAndHatch(t, {"class Page:\n"
                              "    def _repr_html_(self):\n"
                              "        return '<b>bold</b>'\n"
                              "print('before')\n"
                              "display(Page())\n"
                              "print('after')\n"});
  ASSERT_EQ(h.code, 0) << h.err;
  json o = Outputs(h, 0);
  ASSERT_EQ(o.size(), 3u) << o;
  EXPECT_EQ(o[0]["output_type"], "stream");
  EXPECT_EQ(Joined(o[0]["text"]), "before\n");
  EXPECT_EQ(o[1]["output_type"], "display_data");
  EXPECT_EQ(Joined(o[1]["data"]["text/html"]), "<b>bold</b>");
  EXPECT_EQ(Joined(o[2]["text"]), "after\n");
  // The raw stream is kept as well.
  EXPECT_EQ(h.results["cells"][0]["stdout"]["data"], "before\nafter\n");
}

TEST(DisplayCliTest, OutputOfASubprocessIsNotLost) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  TempDir t;
  Hatch h = BuildAndHatch(t, {"import subprocess\n"
                              "print('parent', flush=True)\n"
                              "subprocess.run(['echo', 'from-child'])\n"
                              "print('parent again')\n"
                              "'value'"});
  ASSERT_EQ(h.code, 0) << h.err;
  std::string text;
  bool result = false;
  for (const auto& o : Outputs(h, 0)) {
    if (o["output_type"] == "stream") text += Joined(o["text"]);
    if (o["output_type"] == "execute_result") result = true;
  }
  EXPECT_EQ(text, "parent\nfrom-child\nparent again\n");
  EXPECT_TRUE(result);
}

TEST(DisplayCliTest, ExceptionBecomesAnErrorOutput) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  TempDir t;
  Hatch h = BuildAndHatch(t, {"1 / 0"});
  ASSERT_EQ(h.code, 4) << h.err;
  json o = Outputs(h, 0);
  ASSERT_EQ(o.size(), 1u) << o;
  EXPECT_EQ(o[0]["output_type"], "error");
  EXPECT_EQ(o[0]["ename"], "ZeroDivisionError");
  EXPECT_EQ(o[0]["evalue"], "division by zero");
}

TEST(DisplayCliTest, MatplotlibFigureBecomesAPng) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  if (!HostPythonHas("matplotlib")) {
    GTEST_SKIP() << "python3-matplotlib is not installed on the host";
  }
  TempDir t;
  Hatch h = BuildAndHatch(t, {"import matplotlib.pyplot as plt\n"
                              "plt.plot([1, 3, 2]);"});
  ASSERT_EQ(h.code, 0) << h.err;
  json o = Outputs(h, 0);
  ASSERT_EQ(o.size(), 1u) << o;
  EXPECT_EQ(o[0]["output_type"], "display_data");
  std::string png = Joined(o[0]["data"]["image/png"]);
  // base64 of the PNG signature.
  EXPECT_EQ(png.rfind("iVBORw0KGgo", 0), 0u) << png.substr(0, 40);
}

// The hostile cells below write to the display pipe themselves.

TEST(DisplayCliTest, MalformedDisplayRecordFailsOnlyThatCell) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  TempDir t;
  Hatch h = BuildAndHatch(
      t, {"import os\nos.write(5, b'not json\\n')", "print('still here')"});
  ASSERT_EQ(h.code, 4) << h.err;
  const json& bad = h.results["cells"][0];
  EXPECT_EQ(bad["status"], "ok");
  EXPECT_NE(bad.value("outputs_error", "").find("display records"),
            std::string::npos)
      << bad;
  EXPECT_NE(h.err.find("display records"), std::string::npos) << h.err;
  EXPECT_EQ(h.results["reproducibility"]["cells"][0]["verdict"], "failed")
      << h.results["reproducibility"];
  json next = Outputs(h, 1);
  ASSERT_EQ(next.size(), 1u) << next;
  EXPECT_EQ(Joined(next[0]["text"]), "still here\n");
}

TEST(DisplayCliTest, RecordWithAWrongFieldTypeIsRefused) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  TempDir t;
  Hatch h = BuildAndHatch(
      t, {"import os\n"
          "os.write(5, b'{\"output_type\": \"display_data\", '\n"
          "            b'\"data\": {\"image/png\": 7}, \"metadata\": {}}\\n')",
          "import os\nos.write(5, b'[' * 100000 + b'\\n')"});
  ASSERT_EQ(h.code, 4) << h.err;
  for (int i : {0, 1}) {
    EXPECT_NE(h.results["cells"][i].value("outputs_error", ""), "")
        << h.results["cells"][i];
  }
}

TEST(DisplayCliTest, FloodOfDisplayRecordsIsStoppedAtTheOutputCap) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  TempDir t;
  Hatch h = BuildAndHatch(t, {"import os\n"
                              "chunk = b'x' * (1 << 20)\n"
                              "for _ in range(64):\n"
                              "    os.write(5, chunk)\n",
                              "print('fresh')"});
  ASSERT_EQ(h.code, 4) << h.err;
  const json& flood = h.results["cells"][0];
  EXPECT_EQ(flood["status"], "limit") << flood;
  EXPECT_EQ(flood["limit"], "output") << flood;
  const json& next = h.results["cells"][1];
  EXPECT_EQ(next["status"], "ok") << next;
  EXPECT_EQ(next["fresh_session"], true) << next;
}

// A background process of one cell writes a record only while a later
// cell runs: the record is that later cell's, never the earlier one's.
TEST(DisplayCliTest, CellCannotPlaceRecordsInAnEarlierCell) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  TempDir t;
  Hatch h = BuildAndHatch(
      t, {"import os, time\n"
          "if os.fork() == 0:\n"
          "    while not os.path.exists('/tmp/go'):\n"
          "        time.sleep(0.01)\n"
          "    os.write(5, b'{\"output_type\": \"display_data\", '\n"
          "                b'\"data\": {\"text/plain\": \"forged\"}, '\n"
          "                b'\"metadata\": {}}\\n')\n"
          "    open('/tmp/done', 'w').close()\n"
          "    os._exit(0)\n"
          "print('first')",
          "import os, time\n"
          "open('/tmp/go', 'w').close()\n"
          "while not os.path.exists('/tmp/done'):\n"
          "    time.sleep(0.01)\n"
          "print('second')"});
  ASSERT_EQ(h.code, 0) << h.err;
  std::string first, second;
  for (const auto& o : Outputs(h, 0)) first += o.dump();
  for (const auto& o : Outputs(h, 1)) second += o.dump();
  EXPECT_EQ(first.find("forged"), std::string::npos) << first;
  EXPECT_NE(first.find("first"), std::string::npos) << first;
  // The control: the record did arrive, in the cell that was running.
  EXPECT_NE(second.find("forged"), std::string::npos) << second;
}

// Stdout is what the agent read on fd 1: a stream record cannot put text
// there that the cell never printed.
TEST(DisplayCliTest, StreamRecordCannotAddTextTheCellNeverPrinted) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  TempDir t;
  Hatch h = BuildAndHatch(
      t, {"import os\n"
          "os.write(5, b'{\"output_type\": \"stream\", \"name\": '\n"
          "            b'\"stdout\", \"text\": \"fake\\\\n\"}\\n')\n"
          "print('real')"});
  ASSERT_EQ(h.code, 0) << h.err;
  EXPECT_EQ(StreamText(h, 0), "real\n");
}

// Printed text reaches the hatcher once (on stdout; the stream record
// only says how many of its bytes it stands for), so a cell may print
// more than half its output cap (16 MiB by default) and stay within it.
TEST(DisplayCliTest, PrintedTextCountsOnceAgainstTheOutputCap) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  TempDir t;
  Hatch h = BuildAndHatch(t, {"import sys\n"
                              "line = 'y' * 1023 + '\\n'\n"
                              "for _ in range(10 * 1024):\n"
                              "    sys.stdout.write(line)\n"
                              "print('end')",
                              "print('next')"});
  ASSERT_EQ(h.code, 0) << h.err;
  const json& big = h.results["cells"][0];
  EXPECT_EQ(big["status"], "ok") << big.value("limit", "");
  std::string text;
  for (const auto& o : Outputs(h, 0)) {
    ASSERT_EQ(o["output_type"], "stream");
    text += Joined(o["text"]);
  }
  EXPECT_EQ(text.size(), (10u << 20) + 4);
  EXPECT_EQ(text.substr(text.size() - 4), "end\n");
}

// A stream record that claims more raw bytes than the cell printed gets
// only what was printed: references cannot invent text.
TEST(DisplayCliTest, RawReferenceCannotClaimBytesTheCellNeverPrinted) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  TempDir t;
  Hatch h = BuildAndHatch(
      t, {"import os\n"
          "print('real', flush=True)\n"
          "os.write(5, b'{\"output_type\": \"stream\", \"name\": '\n"
          "            b'\"stdout\", \"egg_raw_bytes\": 1000000}\\n')\n"});
  ASSERT_EQ(h.code, 0) << h.err;
  EXPECT_EQ(StreamText(h, 0), "real\n");
}

// A reference that also carries text, or a count that is not a byte
// count, is a malformed record: that cell fails, the next runs.
TEST(DisplayCliTest, MalformedRawReferenceFailsOnlyThatCell) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  TempDir t;
  Hatch h = BuildAndHatch(
      t, {"import os\n"
          "os.write(5, b'{\"output_type\": \"stream\", \"name\": '\n"
          "            b'\"stdout\", \"egg_raw_bytes\": -4}\\n')\n",
          "print('fine')"});
  ASSERT_EQ(h.code, 4) << h.err;
  EXPECT_NE(h.results["cells"][0].value("outputs_error", ""), "")
      << h.results["cells"][0];
  EXPECT_EQ(StreamText(h, 1), "fine\n");
}

TEST(DisplayCliTest, ExportOfTheResultsShowsTheRichOutputs) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  TempDir t;
  Hatch h = BuildAndHatch(t, {"6 * 7"});
  ASSERT_EQ(h.code, 0) << h.err;
  std::string out = t.path() + "/fresh.ipynb";
  std::string err;
  ASSERT_EQ(RunEgg(t.path(),
                   {"export", t.path() + "/nb.egg", "--to", "ipynb",
                    "--results", t.path() + "/results.json", "-o", out},
                   &err),
            0)
      << err;
  json nb = json::parse(ReadFile(out));
  json o = nb["cells"][0]["outputs"];
  ASSERT_EQ(o.size(), 1u) << o;
  EXPECT_EQ(o[0]["output_type"], "execute_result");
  EXPECT_EQ(Joined(o[0]["data"]["text/plain"]), "42");
}

// R cells as IRkernel shows them: printed text as a stream, a visible
// value as display_data text/plain, an error by name and message, a plot
// as a PNG.
TEST(DisplayCliTest, RCellsGiveValuesErrorsAndPlots) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  if (!HostHas("Rscript")) GTEST_SKIP() << "r-base-core is not installed";
  TempDir t;
  Hatch h = BuildAndHatch(
      t,
      {"a <- 8\nprint('hi')\na + 1", "f <- function() stop('deep error')\nf()",
       "plot(1:10)", "x <- 1"},
      "R");
  ASSERT_EQ(h.code, 4) << h.err;
  json o = Outputs(h, 0);
  ASSERT_EQ(o.size(), 2u) << o;
  EXPECT_EQ(Joined(o[0]["text"]), "[1] \"hi\"\n");
  EXPECT_EQ(o[1]["output_type"], "display_data");
  EXPECT_EQ(Joined(o[1]["data"]["text/plain"]), "[1] 9");
  json error = Outputs(h, 1);
  ASSERT_EQ(error.size(), 1u) << error;
  EXPECT_EQ(error[0]["output_type"], "error");
  EXPECT_EQ(error[0]["ename"], "ERROR");
  EXPECT_EQ(error[0]["evalue"], "Error in f(): deep error");
  json plot = Outputs(h, 2);
  ASSERT_EQ(plot.size(), 1u) << plot;
  EXPECT_EQ(Joined(plot[0]["data"]["image/png"]).rfind("iVBORw0KGgo", 0), 0u);
  EXPECT_TRUE(Outputs(h, 3).empty()) << Outputs(h, 3);
}

}  // namespace
}  // namespace egg
