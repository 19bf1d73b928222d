// Tests for the notebook library: nbformat import, the egg section,
// comparison, images, and the three exports (the HTML one opened in
// headless Chromium where it is installed).
#include "egg/notebook.h"

#include <gtest/gtest.h>
#include <png.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace egg {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string NotebookDir() {
  return std::string(EGG_SOURCE_DIR) + "/../shared/notebooks";
}

std::string TempDir() {
  char tmpl[] = "/tmp/egg-notebook-test-XXXXXX";
  char* dir = mkdtemp(tmpl);
  EXPECT_NE(dir, nullptr);
  return dir ? dir : "/tmp";
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// Runs a shell command; returns its exit status and stdout.
int RunCommand(const std::string& command, std::string* out = nullptr) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) text.append(buf, n);
  int status = pclose(pipe);
  if (out != nullptr) *out = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool Have(const std::string& program) {
  return RunCommand("command -v " + program + " >/dev/null 2>&1") == 0;
}

json MinimalIpynb() {
  return {
      {"nbformat", 4},
      {"nbformat_minor", 5},
      {"metadata",
       {{"kernelspec",
         {{"name", "python3"},
          {"display_name", "Python 3"},
          {"language", "python"}}}}},
      {"cells",
       {{{"cell_type", "markdown"},
         {"id", "intro"},
         {"metadata", json::object()},
         {"source", {"# Title\n", "text"}}},
        {{"cell_type", "code"},
         {"id", "c1"},
         {"metadata", json::object()},
         {"execution_count", 1},
         {"source", "print(1)\n1+1"},
         {"outputs",
          {{{"output_type", "stream"}, {"name", "stdout"}, {"text", {"1\n"}}},
           {{"output_type", "execute_result"},
            {"execution_count", 1},
            {"metadata", json::object()},
            {"data", {{"text/plain", {"2"}}}}}}}}}}};
}

Result<NotebookImport> ParseJson(const json& nb) {
  return ParseIpynb(nb.dump());
}

std::string ErrorOf(const json& nb) {
  auto r = ParseJson(nb);
  EXPECT_FALSE(r.has_value());
  if (r) return "";
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument) << r.error().message();
  return r.error().message();
}

// A solid-colour RGBA PNG, with one pixel block changed.
std::string MakePng(int w, int h, uint8_t value, int changed = 0) {
  std::vector<uint8_t> pixels(static_cast<size_t>(w) * h * 4, value);
  for (int i = 0; i < changed && i < w * h; ++i) pixels[i * 4] ^= 0xFF;
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = w;
  image.height = h;
  image.format = PNG_FORMAT_RGBA;
  png_alloc_size_t size = 0;
  png_image_write_to_memory(&image, nullptr, &size, 0, pixels.data(), 0,
                            nullptr);
  std::string out(size, '\0');
  EXPECT_TRUE(png_image_write_to_memory(&image, out.data(), &size, 0,
                                        pixels.data(), 0, nullptr));
  out.resize(size);
  return out;
}

// A PNG of pseudo-random pixels, which does not compress.
std::string MakeNoisyPng(int w, int h) {
  std::vector<uint8_t> pixels(static_cast<size_t>(w) * h * 4);
  uint32_t x = 12345;
  for (auto& p : pixels) {
    x = x * 1103515245 + 12345;
    p = static_cast<uint8_t>(x >> 24);
  }
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = w;
  image.height = h;
  image.format = PNG_FORMAT_RGBA;
  png_alloc_size_t size = 0;
  png_image_write_to_memory(&image, nullptr, &size, 0, pixels.data(), 0,
                            nullptr);
  std::string out(size, '\0');
  EXPECT_TRUE(png_image_write_to_memory(&image, out.data(), &size, 0,
                                        pixels.data(), 0, nullptr));
  out.resize(size);
  return out;
}

json PngOutput(const std::string& png) {
  return {{"output_type", "display_data"},
          {"metadata", json::object()},
          {"data",
           {{"image/png", EncodeBase64(png)},
            {"text/plain", "<Figure size 640x480 with 1 Axes>"}}}};
}

// Compares output lists written as brace lists (a one-element brace list
// would otherwise become that element, not an array).
OutputComparison Cmp(std::vector<json> stored, std::vector<json> fresh,
                     const CompareOptions& options) {
  return CompareOutputs(json(stored), json(fresh), options);
}

json Stream(const std::string& text, const std::string& name = "stdout") {
  return {{"output_type", "stream"}, {"name", name}, {"text", text}};
}

json Result1(const std::string& text) {
  return {{"output_type", "execute_result"},
          {"execution_count", 1},
          {"metadata", json::object()},
          {"data", {{"text/plain", text}}}};
}

// --- import ---------------------------------------------------------------

TEST(ImportIpynb, ImportsCellsOutputsAndKernelLanguage) {
  auto r = ParseJson(MinimalIpynb());
  ASSERT_TRUE(r) << r.error().message();
  const Notebook& nb = r->notebook;
  EXPECT_EQ(nb.language, "python");
  EXPECT_EQ(nb.kernel_name, "python3");
  ASSERT_EQ(nb.cells.size(), 2u);
  EXPECT_EQ(nb.cells[0].type, CellType::kMarkdown);
  EXPECT_EQ(nb.cells[0].source, "# Title\ntext");
  EXPECT_EQ(nb.cells[1].language, "python");
  EXPECT_EQ(nb.cells[1].execution_count, 1);
  ASSERT_EQ(nb.cells[1].outputs.size(), 2u);
  EXPECT_EQ(nb.cells[1].outputs[0]["text"], "1\n");
  EXPECT_EQ(nb.cells[1].outputs[1]["data"]["text/plain"], "2");
}

TEST(ImportIpynb, TakesLanguageFromLanguageInfoWhenKernelspecLacksIt) {
  json nb = MinimalIpynb();
  nb["metadata"] = {{"kernelspec", {{"name", "ir"}}},
                    {"language_info", {{"name", "R"}}}};
  auto r = ParseJson(nb);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->notebook.language, "r");
  EXPECT_EQ(r->notebook.cells[1].language, "r");
}

TEST(ImportIpynb, GivesDeterministicIdsToCellsWithoutOne) {
  json nb = MinimalIpynb();
  nb["nbformat_minor"] = 4;
  nb["cells"][0].erase("id");
  nb["cells"][1].erase("id");
  auto r = ParseJson(nb);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->notebook.cells[0].id, "cell-1");
  EXPECT_EQ(r->notebook.cells[1].id, "cell-2");
}

TEST(ImportIpynb, KeepsAttachments) {
  json nb = MinimalIpynb();
  nb["cells"][0]["attachments"] = {
      {"a.png", {{"image/png", EncodeBase64(MakePng(2, 2, 9))}}}};
  auto r = ParseJson(nb);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->notebook.cells[0].attachments.contains("a.png"));
}

TEST(ImportIpynb, RejectsOutputsThatAreNotAnArray) {
  json nb = MinimalIpynb();
  nb["cells"][1]["outputs"] = "nope";
  EXPECT_NE(ErrorOf(nb).find("cell 2: 'outputs' must be an array"),
            std::string::npos);
}

TEST(ImportIpynb, RejectsCodeCellWithoutOutputs) {
  json nb = MinimalIpynb();
  nb["cells"][1].erase("outputs");
  EXPECT_NE(ErrorOf(nb).find("cell 2: 'outputs' is missing"),
            std::string::npos);
}

TEST(ImportIpynb, RejectsUnknownCellType) {
  json nb = MinimalIpynb();
  nb["cells"][0]["cell_type"] = "heading";
  EXPECT_NE(ErrorOf(nb).find("cell 1: 'cell_type'"), std::string::npos);
}

TEST(ImportIpynb, RejectsSourceThatIsNotText) {
  json nb = MinimalIpynb();
  nb["cells"][0]["source"] = {1, 2};
  EXPECT_NE(ErrorOf(nb).find("cell 1: 'source'"), std::string::npos);
}

TEST(ImportIpynb, RejectsUnknownOutputType) {
  json nb = MinimalIpynb();
  nb["cells"][1]["outputs"][0]["output_type"] = "pyout";
  EXPECT_NE(ErrorOf(nb).find("cell 2: output 1: 'output_type'"),
            std::string::npos);
}

TEST(ImportIpynb, RejectsStreamWithBadName) {
  json nb = MinimalIpynb();
  nb["cells"][1]["outputs"][0]["name"] = "stdin";
  EXPECT_NE(ErrorOf(nb).find("cell 2: output 1: 'name'"), std::string::npos);
}

TEST(ImportIpynb, RejectsDisplayDataWithoutData) {
  json nb = MinimalIpynb();
  nb["cells"][1]["outputs"][1].erase("data");
  EXPECT_NE(ErrorOf(nb).find("cell 2: output 2: 'data' is missing"),
            std::string::npos);
}

TEST(ImportIpynb, RejectsBadMimeType) {
  json nb = MinimalIpynb();
  nb["cells"][1]["outputs"][1]["data"] = {{"text plain\"><x", "2"}};
  EXPECT_NE(ErrorOf(nb).find("bad MIME type"), std::string::npos);
}

TEST(ImportIpynb, RejectsErrorOutputWithoutEname) {
  json nb = MinimalIpynb();
  nb["cells"][1]["outputs"][0] = {
      {"output_type", "error"}, {"evalue", "x"}, {"traceback", json::array()}};
  EXPECT_NE(ErrorOf(nb).find("'ename' must be a string"), std::string::npos);
}

TEST(ImportIpynb, RejectsTracebackOfNonStrings) {
  json nb = MinimalIpynb();
  nb["cells"][1]["outputs"][0] = {{"output_type", "error"},
                                  {"ename", "E"},
                                  {"evalue", "x"},
                                  {"traceback", {1}}};
  EXPECT_NE(ErrorOf(nb).find("'traceback'"), std::string::npos);
}

TEST(ImportIpynb, RejectsNonIntegerExecutionCount) {
  json nb = MinimalIpynb();
  nb["cells"][1]["execution_count"] = "1";
  EXPECT_NE(ErrorOf(nb).find("cell 2: 'execution_count'"), std::string::npos);
}

TEST(ImportIpynb, RejectsBadCellId) {
  json nb = MinimalIpynb();
  nb["cells"][0]["id"] = "a b/../c";
  EXPECT_NE(ErrorOf(nb).find("cell 1: 'id'"), std::string::npos);
}

TEST(ImportIpynb, RejectsRepeatedCellId) {
  json nb = MinimalIpynb();
  nb["cells"][1]["id"] = "intro";
  EXPECT_NE(ErrorOf(nb).find("cell 2: 'id' \"intro\" repeats"),
            std::string::npos);
}

TEST(ImportIpynb, RejectsOutputsOnMarkdownCell) {
  json nb = MinimalIpynb();
  nb["cells"][0]["outputs"] = json::array();
  EXPECT_NE(ErrorOf(nb).find("cell 1: only code cells"), std::string::npos);
}

TEST(ImportIpynb, RejectsAttachmentsThatAreNotAnObject) {
  json nb = MinimalIpynb();
  nb["cells"][0]["attachments"] = json::array();
  EXPECT_NE(ErrorOf(nb).find("cell 1: 'attachments'"), std::string::npos);
}

TEST(ImportIpynb, RejectsCellsThatAreNotAnArray) {
  json nb = MinimalIpynb();
  nb["cells"] = json::object();
  EXPECT_NE(ErrorOf(nb).find("'cells' must be an array"), std::string::npos);
}

TEST(ImportIpynb, RejectsNbformat3) {
  json nb = MinimalIpynb();
  nb["nbformat"] = 3;
  auto r = ParseJson(nb);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kNotSupported);
}

TEST(ImportIpynb, RejectsInvalidJson) {
  auto r = ParseIpynb("{\"nbformat\": 4, \"cells\": [");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
}

TEST(ImportIpynb, RejectsDeepNestingWithoutRecursingIntoIt) {
  std::string deep =
      "{\"nbformat\":4,\"cells\":[],\"x\":" + std::string(100000, '[') +
      std::string(100000, ']') + "}";
  auto r = ParseIpynb(deep);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("nested deeper"), std::string::npos);
}

TEST(ImportIpynb, MissingFileIsNotFoundOrIo) {
  auto r = ImportIpynb("/nonexistent/egg/notebook.ipynb");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().code(), Code::kInvalidArgument);
}

TEST(ImportIpynb, ImportsEveryRealNotebook) {
  if (!fs::is_directory(NotebookDir())) {
    GTEST_SKIP() << "real notebooks not present at " << NotebookDir();
  }
  int count = 0;
  for (const auto& entry : fs::directory_iterator(NotebookDir())) {
    if (entry.path().extension() != ".ipynb") continue;
    auto r = ImportIpynb(entry.path());
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_FALSE(r->notebook.cells.empty()) << entry.path();
    EXPECT_FALSE(r->notebook.language.empty()) << entry.path();
    ++count;
  }
  EXPECT_GE(count, 7);
}

// --- the egg section ------------------------------------------------------

TEST(NotebookJson, RoundTripsThroughTheEggSection) {
  auto r = ParseJson(MinimalIpynb());
  ASSERT_TRUE(r);
  r->notebook.cells[1].extra["permissions"] = {{"network", false}};
  json section = NotebookToJson(r->notebook);
  auto back = NotebookFromJson(section);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(NotebookToJson(*back), section);
  EXPECT_EQ(back->cells[1].extra["permissions"]["network"], false);
}

TEST(NotebookJson, RejectsCellWithoutId) {
  json section = NotebookToJson(ParseJson(MinimalIpynb())->notebook);
  section["cells"][0].erase("id");
  auto r = NotebookFromJson(section);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("cell 1: 'id' is missing"),
            std::string::npos);
}

TEST(NotebookJson, RejectsHostileOutputInSection) {
  json section = NotebookToJson(ParseJson(MinimalIpynb())->notebook);
  section["cells"][1]["outputs"][0] = {{"output_type", "stream"}};
  auto r = NotebookFromJson(section);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
}

TEST(RunResults, TurnsRawStdoutIntoStreamOutputs) {
  auto r = ParseRunResults(
      R"({"cells":[{"id":"c1","status":"ok","stdout":"hi\n","x":1},
                   {"id":"c2","status":"timeout"}]})");
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(r->cells.size(), 2u);
  EXPECT_TRUE(r->cells[0].ran);
  EXPECT_EQ(r->cells[0].outputs[0]["text"], "hi\n");
  EXPECT_TRUE(r->cells[1].failed);
  EXPECT_EQ(r->cells[1].failure, "timeout");
}

TEST(RunResults, ReadsEggHatchResultsWithEncodedStreams) {
  auto r = ParseRunResults(R"({"egg_results":1,"cells":[
      {"index":0,"id":"c1","language":"python","status":"error",
       "stdout":{"encoding":"base64","data":"aGk="},
       "stderr":{"encoding":"utf-8","data":"Traceback\nKeyError: 'k'\n"}},
      {"index":1,"id":"c2","status":"limit","limit":"wall_time"}]})");
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(r->cells[0].outputs.size(), 3u);
  EXPECT_EQ(r->cells[0].outputs[0]["text"], "hi");
  EXPECT_EQ(r->cells[0].outputs[2]["ename"], "KeyError");
  EXPECT_EQ(r->cells[0].outputs[2]["evalue"], "'k'");
  EXPECT_TRUE(r->cells[1].failed);
  EXPECT_EQ(r->cells[1].failure, "limit (wall_time limit)");
}

TEST(RunResults, RejectsBadStreamEncoding) {
  auto r = ParseRunResults(
      R"({"cells":[{"id":"c1","stdout":{"encoding":"rot13","data":""}}]})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
}

TEST(RunResults, RejectsRanThatIsNotABoolean) {
  auto r = ParseRunResults(R"({"cells":[{"id":"c1","ran":"yes"}]})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
}

// --- comparison -----------------------------------------------------------

TEST(Compare, IgnoresMemoryAddresses) {
  CompareOptions opt;
  auto c = Cmp({Result1("<Foo at 0x7f3a2b4c5d60>")},
               {Result1("<Foo at 0x55d0c0ffee00>")}, opt);
  EXPECT_TRUE(c.equal) << c.diff;
  opt.ignore_addresses = false;
  EXPECT_FALSE(Cmp({Result1("<Foo at 0x7f3a2b4c5d60>")},
                   {Result1("<Foo at 0x55d0c0ffee00>")}, opt)
                   .equal);
}

TEST(Compare, IgnoresTimings) {
  CompareOptions opt;
  EXPECT_TRUE(
      Cmp({Stream("Wall time: 1.52 s\n")}, {Stream("Wall time: 310 ms\n")}, opt)
          .equal);
  EXPECT_TRUE(Cmp({Stream("3.2 \xc2\xb5s per loop\n")},
                  {Stream("15 ns per loop\n")}, opt)
                  .equal);
}

TEST(Compare, KeepsNumbersThatAreNotTimings) {
  CompareOptions opt;
  EXPECT_FALSE(Cmp({Result1("0.5")}, {Result1("0.25")}, opt).equal);
  EXPECT_FALSE(Cmp({Stream("3 cats\n")}, {Stream("4 cats\n")}, opt).equal);
}

TEST(Compare, FloatsWithinRelativeToleranceMatch) {
  CompareOptions opt;
  EXPECT_TRUE(
      Cmp({Result1("0.6186673737323087")}, {Result1("0.61866737373231")}, opt)
          .equal);
  EXPECT_FALSE(Cmp({Result1("0.6186673")}, {Result1("0.6186674")}, opt).equal);
  opt.float_relative_tolerance = 0;
  EXPECT_FALSE(
      Cmp({Result1("0.6186673737323087")}, {Result1("0.61866737373231")}, opt)
          .equal);
}

TEST(Compare, IntegersMustMatchExactly) {
  CompareOptions opt;
  opt.float_relative_tolerance = 0.5;
  EXPECT_FALSE(Cmp({Result1("[10, 20]")}, {Result1("[10, 21]")}, opt).equal);
  EXPECT_TRUE(Cmp({Result1("[1.0, 20]")}, {Result1("[1.1, 20]")}, opt).equal);
}

TEST(Compare, IgnoresTrailingWhitespaceAndAnsiColour) {
  CompareOptions opt;
  EXPECT_TRUE(
      Cmp({Stream("\x1b[0;31mred\x1b[0m  \n\n")}, {Stream("red\n")}, opt)
          .equal);
}

TEST(Compare, JoinsConsecutiveStreams) {
  CompareOptions opt;
  EXPECT_TRUE(
      Cmp({Stream("a\nb\n")}, {Stream("a\n"), Stream("b\n")}, opt).equal);
}

TEST(Compare, IgnoresStderrUnlessAsked) {
  CompareOptions opt;
  std::vector<json> stored = {Stream("x\n")};
  std::vector<json> fresh = {Stream("x\n"),
                             Stream("DeprecationWarning\n", "stderr")};
  EXPECT_TRUE(Cmp(stored, fresh, opt).equal);
  opt.compare_stderr = true;
  EXPECT_FALSE(Cmp(stored, fresh, opt).equal);
}

TEST(Compare, ComparesErrorsByNameAndMessage) {
  CompareOptions opt;
  json a = {{"output_type", "error"},
            {"ename", "ZeroDivisionError"},
            {"evalue", "division by zero"},
            {"traceback", {"\x1b[0;31m<ipython-input-5>\x1b[0m"}}};
  json b = a;
  b["traceback"] = {"File \"<cell 5>\", line 1"};
  EXPECT_TRUE(Cmp({a}, {b}, opt).equal);
  b["evalue"] = "float division by zero";
  auto c = Cmp({a}, {b}, opt);
  EXPECT_FALSE(c.equal);
  EXPECT_NE(c.diff.find("float division by zero"), std::string::npos);
}

TEST(Compare, DiffShowsBothSides) {
  CompareOptions opt;
  auto c = Cmp({Stream("a\nb\nc\n")}, {Stream("a\nB\nc\n")}, opt);
  ASSERT_FALSE(c.equal);
  EXPECT_NE(c.diff.find("- b"), std::string::npos) << c.diff;
  EXPECT_NE(c.diff.find("+ B"), std::string::npos) << c.diff;
  EXPECT_NE(c.diff.find("line 2"), std::string::npos) << c.diff;
}

TEST(Compare, DiffEscapesTerminalControls) {
  CompareOptions opt;
  opt.strip_ansi = false;
  auto c = Cmp({Stream("a\n")}, {Stream("\x1b]0;pwn\x07\n")}, opt);
  ASSERT_FALSE(c.equal);
  EXPECT_EQ(c.diff.find('\x1b'), std::string::npos);
  EXPECT_EQ(c.diff.find('\x07'), std::string::npos);
}

TEST(Compare, MissingOutputDiffers) {
  CompareOptions opt;
  auto c = Cmp({Result1("2")}, {}, opt);
  EXPECT_FALSE(c.equal);
  EXPECT_NE(c.diff.find("only in stored"), std::string::npos);
}

TEST(Compare, ImagesWithinTolerancePassAndBeyondItDiffer) {
  CompareOptions opt;
  std::string a = MakePng(20, 20, 100);
  std::string near = MakePng(20, 20, 110);
  std::string far = MakePng(20, 20, 100, /*changed=*/40);
  EXPECT_TRUE(Cmp({PngOutput(a)}, {PngOutput(near)}, opt).equal);
  auto c = Cmp({PngOutput(a)}, {PngOutput(far)}, opt);
  EXPECT_FALSE(c.equal);
  EXPECT_NE(c.diff.find("10.00% of pixels differ"), std::string::npos)
      << c.diff;
}

TEST(Compare, ImagesOfDifferentSizeDiffer) {
  CompareOptions opt;
  auto c = Cmp({PngOutput(MakePng(20, 20, 1))}, {PngOutput(MakePng(20, 21, 1))},
               opt);
  EXPECT_FALSE(c.equal);
  EXPECT_NE(c.diff.find("20x20 vs 20x21"), std::string::npos) << c.diff;
}

TEST(Compare, HashModeDemandsIdenticalBytes) {
  CompareOptions opt;
  opt.images = ImageCompare::kHash;
  EXPECT_FALSE(
      Cmp({PngOutput(MakePng(4, 4, 100))}, {PngOutput(MakePng(4, 4, 101))}, opt)
          .equal);
  EXPECT_TRUE(
      Cmp({PngOutput(MakePng(4, 4, 100))}, {PngOutput(MakePng(4, 4, 100))}, opt)
          .equal);
}

TEST(Compare, ReportCountsReproducedCells) {
  auto nb = ParseJson(MinimalIpynb());
  ASSERT_TRUE(nb);
  NotebookRun run;
  CellRun cell;
  cell.id = "c1";
  cell.ran = true;
  cell.outputs = json::array({Stream("1\n"), Result1("2")});
  run.cells.push_back(cell);
  ReproReport report = CompareNotebook(nb->notebook, run, CompareOptions{});
  EXPECT_EQ(report.code_cells, 1u);
  EXPECT_EQ(report.reproduced, 1u);
  run.cells[0].outputs = json::array({Stream("1\n"), Result1("3")});
  report = CompareNotebook(nb->notebook, run, CompareOptions{});
  EXPECT_EQ(report.reproduced, 0u);
  EXPECT_EQ(report.Find("c1")->verdict, CellVerdict::kDiffers);
  EXPECT_NE(FormatReport(report).find("reproduced 0 of 1"), std::string::npos);
  run.cells[0].failed = true;
  run.cells[0].failure = "timeout after 30 s";
  report = CompareNotebook(nb->notebook, run, CompareOptions{});
  EXPECT_EQ(report.Find("c1")->verdict, CellVerdict::kFailed);
}

// A cell with no execution count and no output was never run where the
// egg was made: a fresh run that prints nothing does not reproduce it. A
// cell that ran there and printed nothing does.
TEST(Compare, CellNeverRunWhereStoredIsNotReproducedByAnEmptyRun) {
  Notebook nb;
  NotebookCell never;
  never.id = "never";
  never.language = "python";
  never.source = "x = 1";
  never.outputs = json::array();
  NotebookCell ran = never;
  ran.id = "ran";
  ran.execution_count = 1;
  nb.cells = {never, ran};
  NotebookRun run;
  for (const char* id : {"never", "ran"}) {
    CellRun c;
    c.id = id;
    c.ran = true;
    c.outputs = json::array();
    run.cells.push_back(c);
  }
  ReproReport report = CompareNotebook(nb, run, CompareOptions{});
  EXPECT_EQ(report.Find("never")->verdict, CellVerdict::kNoStored);
  EXPECT_EQ(report.Find("ran")->verdict, CellVerdict::kReproduced);
  EXPECT_EQ(report.reproduced, 1u);
}

TEST(Compare, ReportWithNothingStoredSaysSoInOneLine) {
  auto ipynb = MinimalIpynb();
  for (auto& c : ipynb["cells"]) {
    if (c["cell_type"] == "code") c["outputs"] = json::array();
  }
  auto nb = ParseJson(ipynb);
  ASSERT_TRUE(nb);
  NotebookRun run;
  CellRun cell;
  cell.id = "c1";
  cell.ran = true;
  cell.outputs = json::array({Stream("fresh text\n")});
  run.cells.push_back(cell);
  ReproReport report = CompareNotebook(nb->notebook, run, CompareOptions{});
  EXPECT_EQ(report.Find("c1")->verdict, CellVerdict::kNoStored);
  std::string text = FormatReport(report);
  EXPECT_EQ(text,
            "no stored outputs to compare with (egg build --precompute "
            "stores them)\n");
}

// A match that needed normalising says so: a stored address or timing
// that differs from the fresh one is still "reproduced" by default, but
// the report names what was normalised away, and strict options see the
// difference.
TEST(Compare, ReproducedAfterNormalisingSaysWhatWasNormalised) {
  auto nb = ParseJson(MinimalIpynb());
  ASSERT_TRUE(nb);
  nb->notebook.cells[1].outputs =
      json::array({Stream("at 0x0123456789ab took 12 s\n")});
  NotebookRun run;
  CellRun cell;
  cell.id = "c1";
  cell.ran = true;
  cell.outputs = json::array({Stream("at 0xffffffffffff took 0 s\n")});
  run.cells.push_back(cell);

  ReproReport report = CompareNotebook(nb->notebook, run, CompareOptions{});
  ASSERT_EQ(report.reproduced, 1u);
  EXPECT_EQ(report.reproduced_after_normalising, 1u);
  const CellReport* c1 = report.Find("c1");
  ASSERT_NE(c1, nullptr);
  EXPECT_EQ(c1->normalised, (std::vector<std::string>{"addresses", "timings"}));
  EXPECT_EQ(CellVerdictText(*c1),
            "reproduced (after normalising: addresses, timings)");
  std::string text = FormatReport(report);
  EXPECT_NE(text.find("cell 2 (id c1): reproduced (after normalising: "
                      "addresses, timings)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("reproduced 1 of 1 code cells (1 after normalising"),
            std::string::npos)
      << text;
  json j = ReportToJson(report);
  EXPECT_EQ(j["reproduced_after_normalising"], 1);
  EXPECT_EQ(j["cells"][0]["verdict"], "reproduced");
  EXPECT_EQ(j["cells"][0]["normalised"], json({"addresses", "timings"}));

  ExportOptions opt;
  opt.report = &report;
  auto html = ExportNotebook(nb->notebook, ExportFormat::kHtml, opt);
  ASSERT_TRUE(html);
  EXPECT_NE(html->find("reproduced (after normalising: addresses, timings)"),
            std::string::npos);
  auto md = ExportNotebook(nb->notebook, ExportFormat::kMarkdown, opt);
  ASSERT_TRUE(md);
  EXPECT_NE(md->find("reproduced (after normalising: addresses, timings)"),
            std::string::npos);

  // Strict: the difference shows.
  report = CompareNotebook(nb->notebook, run, StrictCompareOptions());
  EXPECT_EQ(report.reproduced, 0u);
  EXPECT_EQ(report.Find("c1")->verdict, CellVerdict::kDiffers);

  // An exact match needed nothing and says nothing more.
  run.cells[0].outputs = nb->notebook.cells[1].outputs;
  report = CompareNotebook(nb->notebook, run, CompareOptions{});
  EXPECT_TRUE(report.Find("c1")->normalised.empty());
  EXPECT_EQ(CellVerdictText(*report.Find("c1")), "reproduced");
  EXPECT_EQ(FormatReport(report), "reproduced 1 of 1 code cells\n");
}

TEST(Compare, SurvivesUnnormalisedHostileOutputs) {
  CompareOptions opt;
  std::vector<json> a = {{{"output_type", 7}},
                         {{"output_type", "error"}, {"ename", 1}},
                         {{"output_type", "display_data"}, {"data", "x"}},
                         5};
  auto c = Cmp(a, a, opt);
  EXPECT_FALSE(c.equal);  // no common MIME type in the broken bundle
}

// --- images ---------------------------------------------------------------

TEST(Images, Base64RoundTrips) {
  for (std::string s : {"", "a", "ab", "abc", "abcd", "\xff\x00\x10"}) {
    auto back = DecodeBase64(EncodeBase64(s));
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, s);
  }
}

TEST(Images, RejectsBadBase64) {
  EXPECT_FALSE(DecodeBase64("ab$c"));
  EXPECT_FALSE(DecodeBase64("a"));
  EXPECT_FALSE(DecodeBase64("ab=c"));
}

TEST(Images, DecodesPng) {
  auto img = DecodePng(MakePng(3, 2, 77));
  ASSERT_TRUE(img) << img.error().message();
  EXPECT_EQ(img->width, 3u);
  EXPECT_EQ(img->height, 2u);
  EXPECT_EQ(img->rgba[0], 77);
}

TEST(Images, RejectsTruncatedPng) {
  std::string png = MakePng(30, 30, 77);
  EXPECT_FALSE(DecodePng(png.substr(0, png.size() / 2)));
  EXPECT_FALSE(DecodePng("not a png"));
}

TEST(Images, RejectsPngClaimingHugeSize) {
  std::string png = MakePng(1, 1, 0);
  // IHDR width at offset 16: claim 65535 x 65535 (the CRC now fails too,
  // either check must refuse it).
  png[16] = 0, png[17] = 0, png[18] = '\xff', png[19] = '\xff';
  png[20] = 0, png[21] = 0, png[22] = '\xff', png[23] = '\xff';
  EXPECT_FALSE(DecodePng(png));
}

// --- export ---------------------------------------------------------------

Notebook HostileNotebook() {
  const std::string script =
      "<script>document.title='P'+'WNED';var d=document.createElement("
      "'div');d.id='own'+'ed';document.body.appendChild(d);"
      "try{parent.document.title='P'+'WNED'}catch(e){}</script>";
  const std::string svg =
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\">"
      "<script>document.title='P'+'WNED'</script><rect width=\"10\" "
      "height=\"10\" fill=\"red\"/></svg>";
  json nb = MinimalIpynb();
  nb["cells"][0]["source"] =
      "# Hostile\n" + script +
      "\n[x](javascript:alert(1))\n"
      "<img src=x onerror=\"document.title='P'+'WNED'\">";
  nb["cells"][1]["outputs"] = {
      Stream("</pre>" + script),
      {{"output_type", "display_data"},
       {"metadata", json::object()},
       {"data", {{"text/html", script + "<b>bold</b>"}}}},
      {{"output_type", "display_data"},
       {"metadata", json::object()},
       {"data", {{"image/svg+xml", svg}}}},
      {{"output_type", "display_data"},
       {"metadata", json::object()},
       {"data", {{"text/markdown", script}}}},
      {{"output_type", "error"},
       {"ename", "E"},
       {"evalue", script},
       {"traceback", {script}}}};
  nb["cells"][1]["source"] = "x = '</code></pre>" + script + "'";
  auto r = ParseJson(nb);
  EXPECT_TRUE(r);
  return r->notebook;
}

std::string Export(const Notebook& nb, ExportFormat format,
                   ExportOptions opt = {}) {
  auto r = ExportNotebook(nb, format, opt);
  EXPECT_TRUE(r);
  return r ? *r : "";
}

TEST(ExportHtml, EscapesEveryHostileString) {
  std::string html = Export(HostileNotebook(), ExportFormat::kHtml);
  // The only <script is none at all: every one from the egg is escaped.
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("onerror="), std::string::npos);
  EXPECT_EQ(html.find("javascript:"), std::string::npos);
  EXPECT_NE(html.find("Content-Security-Policy"), std::string::npos);
  EXPECT_NE(html.find("default-src 'none'"), std::string::npos);
  EXPECT_EQ(html.find("script-src"), std::string::npos);
}

TEST(ExportHtml, ShowsHtmlOutputInScriptlessSandboxedFrame) {
  std::string html = Export(HostileNotebook(), ExportFormat::kHtml);
  EXPECT_NE(html.find("<iframe sandbox=\"\""), std::string::npos);
  EXPECT_EQ(html.find("allow-scripts"), std::string::npos);
}

TEST(ExportHtml, ShowsSvgOnlyAsImageDataUri) {
  std::string html = Export(HostileNotebook(), ExportFormat::kHtml);
  EXPECT_NE(html.find("src=\"data:image/svg+xml;base64,"), std::string::npos);
  EXPECT_EQ(html.find("<svg"), std::string::npos);
}

TEST(ExportHtml, CutsOutputsOverTheCap) {
  auto nb = ParseJson(MinimalIpynb());
  ASSERT_TRUE(nb);
  nb->notebook.cells[1].outputs = json::array(
      {Stream(std::string(5000, 'x')), PngOutput(MakeNoisyPng(64, 64))});
  ExportOptions opt;
  opt.max_output_bytes = 1000;
  std::string html = Export(nb->notebook, ExportFormat::kHtml, opt);
  EXPECT_NE(html.find("[output cut: 4000 more bytes"), std::string::npos);
  EXPECT_NE(html.find("over the size cap]"), std::string::npos);
  EXPECT_EQ(html.find(std::string(1001, 'x')), std::string::npos);
  EXPECT_EQ(html.find("data:image/png"), std::string::npos);
}

TEST(ExportHtml, InlinesPngAndMarksVerdicts) {
  auto nb = ParseJson(MinimalIpynb());
  ASSERT_TRUE(nb);
  nb->notebook.cells[1].outputs = json::array({PngOutput(MakePng(2, 2, 3))});
  NotebookRun run;
  ReproReport report = CompareNotebook(nb->notebook, run, CompareOptions{});
  ExportOptions opt;
  opt.report = &report;
  std::string html = Export(nb->notebook, ExportFormat::kHtml, opt);
  EXPECT_NE(html.find("src=\"data:image/png;base64,"), std::string::npos);
  EXPECT_NE(html.find("class=\"cell code not_run\""), std::string::npos);
  EXPECT_NE(html.find("reproduced 0 of 1"), std::string::npos);
}

TEST(ExportHtml, HighlightsKeywordsAndEscapes) {
  std::string h = HighlightCode("def f(x): return '<b>' # c", "python");
  EXPECT_NE(h.find("<span class=\"k\">def</span>"), std::string::npos);
  EXPECT_NE(h.find("<span class=\"s\">&#39;&lt;b&gt;&#39;</span>"),
            std::string::npos);
  EXPECT_NE(h.find("<span class=\"c\"># c</span>"), std::string::npos);
  EXPECT_EQ(HighlightCode("<x>", "cobol"), "&lt;x&gt;");
}

TEST(ExportHtml, MarkdownDropsRawHtml) {
  std::string h = RenderMarkdown("**b** <script>x</script> | a |\n|---|\n");
  EXPECT_NE(h.find("<strong>b</strong>"), std::string::npos);
  EXPECT_EQ(h.find("<script>"), std::string::npos);
}

// Opens a page in headless Chromium and returns the DOM after scripts had
// their chance to run.
bool DumpDom(const std::string& page, std::string* dom) {
  std::string profile = TempDir();
  std::string command =
      "timeout 120 chromium --headless --no-sandbox --disable-gpu "
      "--disable-background-networking --disable-component-update "
      "--disable-sync --no-first-run --virtual-time-budget=3000 "
      "--user-data-dir=" +
      profile + " --dump-dom file://" + page + " 2>/dev/null";
  int rc = RunCommand(command, dom);
  fs::remove_all(profile);
  return rc == 0 && !dom->empty();
}

TEST(ExportHtml, HostileScriptDoesNotRunInChromium) {
  if (!Have("chromium")) GTEST_SKIP() << "chromium is not installed";
  std::string dir = TempDir();

  // Control: the same script in a plain page does run, so the check below
  // can fail.
  std::string control = dir + "/control.html";
  WriteFile(control,
            "<!DOCTYPE html><html><head><title>ok</title></head><body>"
            "<iframe sandbox=\"allow-scripts allow-same-origin\" srcdoc=\""
            "<script>parent.document.body.appendChild(parent.document."
            "createElement('hr')).id='fr'+'ame'</script>\"></iframe>"
            "<script>document.title='P'+'WNED'</script></body></html>");
  std::string dom;
  ASSERT_TRUE(DumpDom(control, &dom));
  ASSERT_NE(dom.find("PWNED"), std::string::npos) << dom;
  ASSERT_NE(dom.find("id=\"frame\""), std::string::npos) << dom;

  std::string page = dir + "/hostile.html";
  WriteFile(page, Export(HostileNotebook(), ExportFormat::kHtml));
  ASSERT_TRUE(DumpDom(page, &dom));
  EXPECT_NE(dom.find("<title>notebook</title>"), std::string::npos) << dom;
  EXPECT_NE(dom.find("<h1>Hostile</h1>"), std::string::npos);
  EXPECT_EQ(dom.find("PWNED"), std::string::npos) << dom;
  EXPECT_EQ(dom.find("id=\"owned\""), std::string::npos);
  fs::remove_all(dir);
}

// SVG attachments of a markdown cell, as text (nbformat's form) or base64,
// are shown as <img> data: URIs, never as inline SVG that could run.
Notebook SvgAttachmentNotebook() {
  const std::string svg =
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" "
      "height=\"10\"><script>document.title='P'+'WNED'</script><rect "
      "width=\"10\" height=\"10\" fill=\"red\"/></svg>";
  json nb = MinimalIpynb();
  nb["cells"][0]["source"] = "![t](attachment:t.svg) ![b](attachment:b.svg)";
  nb["cells"][0]["attachments"] = {
      {"t.svg", {{"image/svg+xml", svg}}},
      {"b.svg", {{"image/svg+xml", EncodeBase64(svg)}}}};
  auto parsed = ParseJson(nb);
  EXPECT_TRUE(parsed);
  return parsed ? parsed->notebook : Notebook{};
}

TEST(ExportHtml, InlinesSvgAttachmentsAsImageDataUris) {
  std::string html = Export(SvgAttachmentNotebook(), ExportFormat::kHtml);
  size_t first = html.find("<img src=\"data:image/svg+xml;base64,");
  ASSERT_NE(first, std::string::npos) << html;
  EXPECT_NE(html.find("<img src=\"data:image/svg+xml;base64,", first + 1),
            std::string::npos)
      << html;
  EXPECT_EQ(html.find("attachment:"), std::string::npos) << html;
  EXPECT_EQ(html.find("<svg"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
}

TEST(ExportHtml, SvgAttachmentShowsButDoesNotRunInChromium) {
  if (!Have("chromium")) GTEST_SKIP() << "chromium is not installed";
  std::string dir = TempDir();
  std::string page = dir + "/svg.html";
  WriteFile(page, Export(SvgAttachmentNotebook(), ExportFormat::kHtml));
  std::string dom;
  ASSERT_TRUE(DumpDom(page, &dom));
  EXPECT_NE(dom.find("<img src=\"data:image/svg+xml;base64,"),
            std::string::npos)
      << dom;
  EXPECT_EQ(dom.find("PWNED"), std::string::npos) << dom;
  fs::remove_all(dir);
}

TEST(ExportMarkdown, FencesCodeAndEscapesTerminalControls) {
  auto nb = ParseJson(MinimalIpynb());
  ASSERT_TRUE(nb);
  nb->notebook.cells[1].outputs =
      json::array({Stream("\x1b]0;title\x07ok ``` \x1b[31m\n")});
  std::string md = Export(nb->notebook, ExportFormat::kMarkdown);
  EXPECT_NE(md.find("```python\nprint(1)\n1+1\n```\n"), std::string::npos)
      << md;
  EXPECT_NE(md.find("````text stdout\nok ``` \n````"), std::string::npos) << md;
  EXPECT_EQ(md.find('\x1b'), std::string::npos);
  EXPECT_EQ(md.find('\x07'), std::string::npos);
}

TEST(ExportIpynb, RoundTripsThroughImport) {
  auto nb = ParseJson(MinimalIpynb());
  ASSERT_TRUE(nb);
  std::string text = Export(nb->notebook, ExportFormat::kIpynb);
  auto back = ParseIpynb(text);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(NotebookToJson(back->notebook), NotebookToJson(nb->notebook));
}

TEST(ExportIpynb, UsesFreshOutputsWhenGivenARun) {
  auto nb = ParseJson(MinimalIpynb());
  ASSERT_TRUE(nb);
  NotebookRun run;
  CellRun cell;
  cell.id = "c1";
  cell.ran = true;
  cell.execution_count = 7;
  cell.outputs = json::array({Stream("fresh\n")});
  run.cells.push_back(cell);
  ExportOptions opt;
  opt.run = &run;
  auto back = ParseIpynb(Export(nb->notebook, ExportFormat::kIpynb, opt));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->notebook.cells[1].outputs[0]["text"], "fresh\n");
  EXPECT_EQ(back->notebook.cells[1].execution_count, 7);
}

TEST(ExportIpynb, ValidatesWithNbformat) {
  if (RunCommand("/usr/bin/python3 -c 'import nbformat' 2>/dev/null") != 0) {
    GTEST_SKIP() << "python3-nbformat is not installed";
  }
  std::string dir = TempDir();
  std::vector<Notebook> notebooks = {HostileNotebook()};
  if (fs::is_directory(NotebookDir())) {
    for (const auto& entry : fs::directory_iterator(NotebookDir())) {
      if (entry.path().extension() != ".ipynb") continue;
      auto r = ImportIpynb(entry.path());
      ASSERT_TRUE(r);
      notebooks.push_back(r->notebook);
    }
  }
  for (size_t i = 0; i < notebooks.size(); ++i) {
    std::string path = dir + "/" + std::to_string(i) + ".ipynb";
    WriteFile(path, Export(notebooks[i], ExportFormat::kIpynb));
    std::string out;
    int rc = RunCommand(
        "/usr/bin/python3 -c 'import nbformat,sys; "
        "nbformat.validate(nbformat.read(sys.argv[1], as_version=4))"
        "' " +
            path + " 2>&1",
        &out);
    EXPECT_EQ(rc, 0) << path << ": " << out;
  }
  fs::remove_all(dir);
}

// --- the CLI ----------------------------------------------------------------

std::string EggBin() {
  const char* bin = std::getenv("EGG_BIN");
  return bin != nullptr && fs::exists(bin) ? bin : "";
}

TEST(ExportCli, ExportsANotebookToEachFormat) {
  if (EggBin().empty()) GTEST_SKIP() << "EGG_BIN is not set";
  std::string dir = TempDir();
  std::string nb = dir + "/n.ipynb";
  WriteFile(nb, MinimalIpynb().dump());
  std::string out;
  EXPECT_EQ(RunCommand(EggBin() + " export " + nb + " --to md", &out), 0);
  EXPECT_NE(out.find("```python\nprint(1)"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(EggBin() + " export " + nb + " --to html -o " + dir +
                       "/n.html"),
            0);
  auto html = ImportIpynb(nb);  // the source is untouched
  ASSERT_TRUE(html);
  EXPECT_EQ(RunCommand(EggBin() + " export " + nb + " --to ipynb -o " + dir +
                       "/back.ipynb"),
            0);
  EXPECT_TRUE(ImportIpynb(dir + "/back.ipynb"));
  fs::remove_all(dir);
}

TEST(ExportCli, ReportsFreshResultsAndExitsFourWhenACellDiffers) {
  if (EggBin().empty()) GTEST_SKIP() << "EGG_BIN is not set";
  std::string dir = TempDir();
  std::string nb = dir + "/n.ipynb";
  WriteFile(nb, MinimalIpynb().dump());
  WriteFile(dir + "/same.json",
            R"({"cells":[{"id":"c1","status":"ok","outputs":[)"
            R"({"output_type":"stream","name":"stdout","text":"1\n"},)"
            R"({"output_type":"execute_result","execution_count":1,)"
            R"("metadata":{},"data":{"text/plain":"2"}}]}]})");
  WriteFile(dir + "/diff.json",
            R"({"cells":[{"id":"c1","status":"ok","stdout":"1\n"}]})");
  std::string base = EggBin() + " export " + nb + " --to md -o " + dir +
                     "/o.md --force --report --results ";
  EXPECT_EQ(RunCommand(base + dir + "/same.json 2>/dev/null"), 0);
  std::string err;
  EXPECT_EQ(RunCommand(base + dir + "/diff.json 2>&1", &err), 4);
  EXPECT_NE(err.find("reproduced 0 of 1"), std::string::npos) << err;
  fs::remove_all(dir);
}

TEST(ExportCli, RejectsUnknownFormatAndMalformedNotebook) {
  if (EggBin().empty()) GTEST_SKIP() << "EGG_BIN is not set";
  std::string dir = TempDir();
  std::string nb = dir + "/n.ipynb";
  WriteFile(nb, MinimalIpynb().dump());
  EXPECT_EQ(RunCommand(EggBin() + " export " + nb + " --to pdf 2>/dev/null"),
            2);
  json bad = MinimalIpynb();
  bad["cells"][1]["outputs"] = 3;
  WriteFile(nb, bad.dump());
  std::string err;
  EXPECT_EQ(RunCommand(EggBin() + " export " + nb + " 2>&1", &err), 2);
  EXPECT_NE(err.find("cell 2: 'outputs' must be an array"), std::string::npos)
      << err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace egg
