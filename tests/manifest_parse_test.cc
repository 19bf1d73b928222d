// Tests of the egg.yaml decoder: one per rejection rule (each asserts the
// error code and the line and column it points at), the accepted forms,
// and the canonical JSON.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <clocale>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <regex>
#include <string>

#include "common/names.h"
#include "egg/manifest.h"

namespace egg {
namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/egg-manifest-test-XXXXXX";
    char* p = ::mkdtemp(tmpl);
    EXPECT_NE(p, nullptr);
    path_ = p ? p : "";
  }
  ~TempDir() {
    if (!path_.empty()) {
      std::string cmd = "rm -rf '" + path_ + "'";
      EXPECT_EQ(std::system(cmd.c_str()), 0);
    }
  }
  const std::string& path() const { return path_; }

  void Write(const std::string& rel, const std::string& text) const {
    std::string full = path_ + "/" + rel;
    for (size_t i = path_.size() + 1; i < full.size(); ++i) {
      if (full[i] == '/') ::mkdir(full.substr(0, i).c_str(), 0755);
    }
    std::ofstream(full, std::ios::binary) << text;
  }
  void Mkdir(const std::string& rel) const {
    ASSERT_EQ(::mkdir((path_ + "/" + rel).c_str(), 0755), 0);
  }
  void Symlink(const std::string& target, const std::string& rel) const {
    ASSERT_EQ(::symlink(target.c_str(), (path_ + "/" + rel).c_str()), 0);
  }

 private:
  std::string path_;
};

// A folder with a runtime, a script and some data, and a manifest head
// that a test completes.
class ManifestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.Mkdir("rootfs");
    dir_.Write("steps/summary.py", "print('hi')\n");
    dir_.Write("measurements.csv", "x,y\n1,2\n");
    dir_.Write("more/a.txt", "a");
    dir_.Write("more/b/c.txt", "cc");
  }

  Result<Manifest> Parse(const std::string& yaml,
                         ManifestOptions options = {}) {
    if (!options.source_date_epoch) options.source_date_epoch = "0";
    return ParseManifest(yaml, dir_.path(), "egg.yaml", options);
  }

  // Asserts failure with `code` at line:column and returns the message.
  std::string ExpectError(const std::string& yaml, Code code, int line,
                          int column) {
    auto m = Parse(yaml);
    EXPECT_FALSE(m.has_value()) << yaml;
    if (m.has_value()) return "";
    const std::string& msg = m.error().message();
    EXPECT_EQ(m.error().code(), code) << msg;
    std::smatch match;
    static const std::regex kPrefix("^egg\\.yaml:([0-9]+):([0-9]+): ");
    EXPECT_TRUE(std::regex_search(msg, match, kPrefix)) << msg;
    if (match.size() == 3) {
      EXPECT_EQ(std::stoi(match[1]), line) << msg;
      EXPECT_EQ(std::stoi(match[2]), column) << msg;
    }
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    return msg;
  }

  static constexpr const char* kHead =
      "name: demo\n"
      "runtime: {folder: rootfs}\n";
  static constexpr const char* kCells =
      "cells:\n"
      "  - language: python\n"
      "    code: print(1)\n";

  TempDir dir_;
};

// ---- accepted manifests ---------------------------------------------------

TEST_F(ManifestTest, AcceptsFullManifest) {
  auto m = Parse(
      "name: cell-stats\n"
      "description: |\n"
      "  Summary statistics\n"
      "  of a CSV.\n"
      "author: A. Scientist <a@example.org>\n"
      "license: (MIT OR Apache-2.0) AND LicenseRef-Lab-1.0\n"
      "created: 2024-05-01T12:30:00Z\n"
      "runtime:\n"
      "  debian: {suite: bookworm, packages: [python3, bash]}\n"
      "permissions:\n"
      "  network: true\n"
      "  host_paths:\n"
      "    - {host: /srv/ref, sandbox: /ref, writable: false}\n"
      "  devices: [/dev/dri/renderD128]\n"
      "limits: {wall_time: 5m, cpu_time: 2m, memory: 512MiB,\n"
      "         processes: 64, scratch: 1GiB, output: 8MiB}\n"
      "data:\n"
      "  - from: measurements.csv\n"
      "  - {from: more, to: extra/more}\n"
      "  - steps/summary.py\n"
      "cells:\n"
      "  - markdown: '# Title'\n"
      "  - id: load\n"
      "    language: Python\n"
      "    source: steps/summary.py\n"
      "    limits: {wall_time: 30s}\n"
      "    permissions: {network: false}\n"
      "  - language: bash\n"
      "    code: ls /data\n"
      "  - raw: raw text\n");
  ASSERT_TRUE(m.has_value()) << m.error().message();
  EXPECT_EQ(m->name, "cell-stats");
  EXPECT_EQ(m->description, "Summary statistics\nof a CSV.\n");
  EXPECT_EQ(m->created, "2024-05-01T12:30:00Z");
  EXPECT_EQ(m->created_from, Manifest::CreatedFrom::kManifest);
  EXPECT_EQ(m->runtime.kind, RuntimeKind::kDebian);
  EXPECT_EQ(m->runtime.packages, (std::vector<std::string>{"bash", "python3"}));
  EXPECT_TRUE(m->permissions.network);
  ASSERT_EQ(m->permissions.host_paths.size(), 1u);
  EXPECT_EQ(m->permissions.host_paths[0].sandbox, "/ref");
  EXPECT_EQ(m->limits.wall_ms, 5 * 60 * 1000u);
  EXPECT_EQ(m->limits.memory_bytes, 512ull << 20);
  EXPECT_EQ(m->limits.processes, 64u);
  ASSERT_EQ(m->data.size(), 3u);
  EXPECT_EQ(m->data[0].to, "measurements.csv");
  EXPECT_EQ(m->data[1].to, "extra/more");
  EXPECT_TRUE(m->data[1].is_folder);
  EXPECT_EQ(m->data[2].to, "summary.py");
  // measurements.csv + a.txt + c.txt + summary.py; more and more/b.
  EXPECT_EQ(m->data_summary.files, 4u);
  EXPECT_EQ(m->data_summary.folders, 2u);
  EXPECT_EQ(m->data_summary.bytes, 8u + 1 + 2 + 12);
  ASSERT_EQ(m->cells.size(), 4u);
  EXPECT_EQ(m->cells[0].type, ManifestCellType::kMarkdown);
  EXPECT_EQ(m->cells[0].id, "cell-1");
  EXPECT_EQ(m->cells[1].id, "load");
  EXPECT_EQ(m->cells[1].language, "python");
  EXPECT_EQ(m->cells[1].source, "print('hi')\n");
  EXPECT_EQ(m->cells[1].limits.wall_ms, 30000u);
  ASSERT_TRUE(m->cells[1].permissions.has_value());
  EXPECT_FALSE(m->cells[1].permissions->network);
  EXPECT_EQ(m->cells[2].id, "cell-3");
  EXPECT_EQ(m->cells[3].type, ManifestCellType::kRaw);
}

TEST_F(ManifestTest, GeneratedIdNeverTakesAChosenOne) {
  auto m = Parse(std::string(kHead) +
                 "cells:\n"
                 "  - {language: sh, code: 'true'}\n"
                 "  - {id: cell-1, language: sh, code: 'true'}\n");
  ASSERT_TRUE(m.has_value()) << m.error().message();
  EXPECT_EQ(m->cells[1].id, "cell-1");
  EXPECT_EQ(m->cells[0].id, "cell-1-2");
}

TEST_F(ManifestTest, CreatedComesFromSourceDateEpochThenDefault) {
  auto m = Parse(std::string(kHead) + kCells, {.source_date_epoch = "86400"});
  ASSERT_TRUE(m.has_value()) << m.error().message();
  EXPECT_EQ(m->created, "1970-01-02T00:00:00Z");
  EXPECT_EQ(m->created_from, Manifest::CreatedFrom::kSourceDateEpoch);

  ::unsetenv("SOURCE_DATE_EPOCH");
  auto d = ParseManifest(std::string(kHead) + kCells, dir_.path(), "egg.yaml");
  ASSERT_TRUE(d.has_value()) << d.error().message();
  EXPECT_EQ(d->created, "1970-01-01T00:00:00Z");
  EXPECT_EQ(d->created_from, Manifest::CreatedFrom::kDefault);
}

TEST_F(ManifestTest, RejectsMalformedSourceDateEpoch) {
  auto m = Parse(std::string(kHead) + kCells, {.source_date_epoch = "12ab"});
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code(), Code::kInvalidArgument);
}

TEST_F(ManifestTest, AcceptsCommandLanguages) {
  auto m = Parse(std::string(kHead) +
                 "languages:\n"
                 "  node: {command: [node, '{file}'], suffix: .js}\n"
                 "  julia: {command: [julia, --startup-file=no, '{file}']}\n"
                 "cells:\n  - {language: node, code: 'console.log(1)'}\n");
  ASSERT_TRUE(m.has_value()) << m.error().message();
  ASSERT_EQ(m->languages.size(), 2u);
  EXPECT_EQ(m->languages[0].name, "julia");
  EXPECT_EQ(m->languages[1].suffix, ".js");
  auto json = ManifestJson(*m);
  ASSERT_TRUE(json.has_value());
  EXPECT_NE(json->find("\"node\":{\"command\":[\"node\",\"{file}\"],"
                       "\"suffix\":\".js\"}"),
            std::string::npos)
      << *json;
}

TEST_F(ManifestTest, RejectsLanguageCommandWithoutFile) {
  ExpectError(std::string(kHead) + kCells +
                  "languages: {node: {command: [node, x.js]}}\n",
              Code::kInvalidArgument, 6, 29);
}

TEST_F(ManifestTest, RejectsRedefiningBuiltinLanguage) {
  ExpectError(std::string(kHead) + kCells +
                  "languages: {python: {command: [sh, '{file}']}}\n",
              Code::kInvalidArgument, 6, 13);
}

TEST_F(ManifestTest, RejectsDeeplyNestedYamlWithoutCrashing) {
  std::string deep =
      "name: " + std::string(100000, '[') + std::string(100000, ']') + "\n";
  auto m = Parse(deep);
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code(), Code::kInvalidArgument);
}

TEST_F(ManifestTest, AcceptsEveryRuntimeKind) {
  dir_.Write("root.tar.zst", "not read at parse time");
  std::string digest = "sha256:" + std::string(64, 'a');
  struct Case {
    std::string yaml;
    RuntimeKind kind;
  };
  for (const Case& c : {
           Case{"{folder: rootfs}", RuntimeKind::kFolder},
           Case{"{tarball: root.tar.zst}", RuntimeKind::kTarball},
           Case{"{digest: '" + digest + "'}", RuntimeKind::kDigest},
           Case{"{debian: {suite: bookworm}}", RuntimeKind::kDebian},
           Case{"{oci: 'oci://registry.example:5000/lab/py-base@" + digest +
                    "'}",
                RuntimeKind::kOci},
       }) {
    auto m = Parse("name: demo\nruntime: " + c.yaml + "\n" + kCells);
    ASSERT_TRUE(m.has_value()) << c.yaml << ": " << m.error().message();
    EXPECT_EQ(m->runtime.kind, c.kind) << c.yaml;
  }
}

// ---- rejection rules ------------------------------------------------------

TEST_F(ManifestTest, RejectsMalformedYamlWithPosition) {
  ExpectError("name: demo\ncells: [\n", Code::kInvalidArgument, 3, 1);
}

TEST_F(ManifestTest, RejectsTopLevelThatIsNotAMapping) {
  ExpectError("- a\n- b\n", Code::kInvalidArgument, 1, 1);
}

TEST_F(ManifestTest, RejectsUnknownTopLevelKeyWithSuggestion) {
  std::string msg = ExpectError(std::string(kHead) + kCells + "licence: MIT\n",
                                Code::kInvalidArgument, 6, 1);
  EXPECT_NE(msg.find("'license'"), std::string::npos) << msg;
}

TEST_F(ManifestTest, RejectsUnknownCellKeyWithSuggestion) {
  std::string msg = ExpectError(std::string(kHead) +
                                    "cells:\n"
                                    "  - language: python\n"
                                    "    code: print(1)\n"
                                    "    permisions: {network: false}\n",
                                Code::kInvalidArgument, 6, 5);
  EXPECT_NE(msg.find("unknown key 'permisions' in cell 1 (did you mean "
                     "'permissions'?)"),
            std::string::npos)
      << msg;
}

TEST_F(ManifestTest, RejectsDuplicateYamlKey) {
  ExpectError(std::string(kHead) + kCells + "name: again\n",
              Code::kInvalidArgument, 6, 1);
}

TEST_F(ManifestTest, RejectsMissingName) {
  ExpectError(std::string("runtime: {folder: rootfs}\n") + kCells,
              Code::kInvalidArgument, 1, 1);
}

TEST_F(ManifestTest, RejectsNameOfWrongType) {
  ExpectError("name: [a, b]\nruntime: {folder: rootfs}\n" + std::string(kCells),
              Code::kInvalidArgument, 1, 7);
}

TEST_F(ManifestTest, RejectsNameWithPathCharacters) {
  ExpectError(
      "name: ../evil\nruntime: {folder: rootfs}\n" + std::string(kCells),
      Code::kInvalidArgument, 1, 7);
}

TEST_F(ManifestTest, RejectsControlCharacterInAuthor) {
  ExpectError(std::string(kHead) + kCells + "author: \"a\\e[31mb\"\n",
              Code::kInvalidArgument, 6, 9);
}

TEST_F(ManifestTest, RejectsQuotedBoolean) {
  ExpectError(std::string(kHead) + kCells + "permissions: {network: 'true'}\n",
              Code::kInvalidArgument, 6, 24);
}

TEST_F(ManifestTest, RejectsYesAsBoolean) {
  ExpectError(std::string(kHead) + kCells + "permissions: {network: yes}\n",
              Code::kInvalidArgument, 6, 24);
}

TEST_F(ManifestTest, RejectsQuotedProcessCount) {
  ExpectError(std::string(kHead) + kCells + "limits: {processes: '12'}\n",
              Code::kInvalidArgument, 6, 21);
}

TEST_F(ManifestTest, RejectsMissingCells) {
  ExpectError(kHead, Code::kInvalidArgument, 1, 1);
}

TEST_F(ManifestTest, RejectsEmptyCellsList) {
  ExpectError(std::string(kHead) + "cells: []\n", Code::kInvalidArgument, 3, 8);
}

TEST_F(ManifestTest, RejectsNotebookWithoutCodeCell) {
  ExpectError(std::string(kHead) + "cells:\n  - markdown: hi\n",
              Code::kInvalidArgument, 4, 3);
}

TEST_F(ManifestTest, RejectsCellWithCodeAndSource) {
  ExpectError(std::string(kHead) +
                  "cells:\n"
                  "  - language: python\n"
                  "    code: print(1)\n"
                  "    source: steps/summary.py\n",
              Code::kInvalidArgument, 6, 13);
}

TEST_F(ManifestTest, RejectsCodeCellWithoutLanguage) {
  ExpectError(std::string(kHead) + "cells:\n  - code: print(1)\n",
              Code::kInvalidArgument, 4, 5);
}

TEST_F(ManifestTest, RejectsBadLanguageName) {
  ExpectError(
      std::string(kHead) + "cells:\n  - {language: 'py thon', code: x}\n",
      Code::kInvalidArgument, 4, 16);
}

TEST_F(ManifestTest, RejectsLanguageOnMarkdownCell) {
  ExpectError(
      std::string(kHead) + kCells + "  - {markdown: hi, language: python}\n",
      Code::kInvalidArgument, 6, 30);
}

TEST_F(ManifestTest, RejectsDuplicateCellIds) {
  ExpectError(std::string(kHead) +
                  "cells:\n"
                  "  - {id: a, language: sh, code: x}\n"
                  "  - {id: a, language: sh, code: y}\n",
              Code::kInvalidArgument, 5, 10);
}

TEST_F(ManifestTest, RejectsBadCellId) {
  ExpectError(
      std::string(kHead) + "cells:\n  - {id: 'a b', language: sh, code: x}\n",
      Code::kInvalidArgument, 4, 10);
}

TEST_F(ManifestTest, RejectsMissingSourceFile) {
  ExpectError(
      std::string(kHead) + "cells:\n  - {language: sh, source: nothere.sh}\n",
      Code::kNotFound, 4, 28);
}

TEST_F(ManifestTest, RejectsSourceThatIsNotUtf8) {
  dir_.Write("latin1.py", "print('\xe9')\n");
  ExpectError(std::string(kHead) +
                  "cells:\n  - {language: python, source: latin1.py}\n",
              Code::kInvalidArgument, 4, 32);
}

TEST_F(ManifestTest, RejectsAbsoluteDataPath) {
  ExpectError(std::string(kHead) + kCells + "data:\n  - from: /etc/passwd\n",
              Code::kInvalidArgument, 7, 11);
}

TEST_F(ManifestTest, RejectsDotDotInDataPath) {
  ExpectError(
      std::string(kHead) + kCells + "data:\n  - from: more/../../secret\n",
      Code::kInvalidArgument, 7, 11);
}

TEST_F(ManifestTest, RejectsDotDotInDataTarget) {
  ExpectError(
      std::string(kHead) + kCells + "data:\n  - {from: more, to: ../etc}\n",
      Code::kInvalidArgument, 7, 22);
}

TEST_F(ManifestTest, RejectsMissingDataFile) {
  ExpectError(std::string(kHead) + kCells + "data:\n  - from: gone.csv\n",
              Code::kNotFound, 7, 11);
}

TEST_F(ManifestTest, RejectsSymlinkAsDataFile) {
  dir_.Symlink("/etc/hostname", "host.txt");
  ExpectError(std::string(kHead) + kCells + "data:\n  - from: host.txt\n",
              Code::kInvalidArgument, 7, 11);
}

TEST_F(ManifestTest, RejectsSymlinkedFolderOnTheWay) {
  dir_.Symlink("/etc", "etc");
  ExpectError(std::string(kHead) + kCells + "data:\n  - from: etc/hostname\n",
              Code::kInvalidArgument, 7, 11);
}

TEST_F(ManifestTest, RejectsSymlinkInsideDataFolder) {
  dir_.Symlink("/etc/hostname", "more/b/leak");
  std::string msg =
      ExpectError(std::string(kHead) + kCells + "data:\n  - from: more\n",
                  Code::kInvalidArgument, 7, 11);
  EXPECT_NE(msg.find("more/b/leak"), std::string::npos) << msg;
}

TEST_F(ManifestTest, RejectsSymlinkAsCellSource) {
  dir_.Symlink("/etc/hostname", "steps/evil.sh");
  ExpectError(std::string(kHead) +
                  "cells:\n  - {language: sh, source: steps/evil.sh}\n",
              Code::kInvalidArgument, 4, 28);
}

TEST_F(ManifestTest, RejectsSymlinkAsRuntimeFolder) {
  dir_.Symlink("/", "hostroot");
  ExpectError("name: demo\nruntime: {folder: hostroot}\n" + std::string(kCells),
              Code::kInvalidArgument, 2, 19);
}

TEST_F(ManifestTest, RejectsTargetsEqualAfterNormalisation) {
  dir_.Write("x.csv", "1");
  ExpectError(std::string(kHead) + kCells +
                  "data:\n"
                  "  - {from: measurements.csv, to: a//b.csv}\n"
                  "  - {from: x.csv, to: ./a/b.csv}\n",
              Code::kInvalidArgument, 8, 23);
}

TEST_F(ManifestTest, RejectsTargetsEqualAfterCaseFolding) {
  dir_.Write("x.csv", "1");
  ExpectError(std::string(kHead) + kCells +
                  "data:\n"
                  "  - {from: measurements.csv, to: Data.CSV}\n"
                  "  - {from: x.csv, to: data.csv}\n",
              Code::kInvalidArgument, 8, 23);
}

TEST_F(ManifestTest, RejectsTargetsEqualAfterNfc) {
  dir_.Write("x.csv", "1");
  // U+00E9 and e + U+0301 are the same name after NFC.
  ExpectError(std::string(kHead) + kCells +
                  "data:\n"
                  "  - {from: measurements.csv, to: \"caf\\u00e9\"}\n"
                  "  - {from: x.csv, to: \"cafe\\u0301\"}\n",
              Code::kInvalidArgument, 8, 23);
}

TEST_F(ManifestTest, RejectsTargetInsideAnotherEntry) {
  ExpectError(std::string(kHead) + kCells +
                  "data:\n"
                  "  - {from: more, to: m}\n"
                  "  - {from: measurements.csv, to: M/x.csv}\n",
              Code::kInvalidArgument, 8, 34);
}

TEST_F(ManifestTest, RejectsCaseFoldedNamesInsideDataFolder) {
  dir_.Write("more/A.txt", "A");
  ExpectError(std::string(kHead) + kCells + "data:\n  - from: more\n",
              Code::kInvalidArgument, 7, 11);
}

TEST_F(ManifestTest, RejectsControlCharacterInTarget) {
  ExpectError(std::string(kHead) + kCells +
                  "data:\n  - {from: more, to: \"a\\x07b\"}\n",
              Code::kInvalidArgument, 7, 22);
}

TEST_F(ManifestTest, RejectsControlCharacterInDataFileName) {
  dir_.Write("more/bad\x1b[2Jname", "x");
  ExpectError(std::string(kHead) + kCells + "data:\n  - from: more\n",
              Code::kInvalidArgument, 7, 11);
}

TEST_F(ManifestTest, RejectsLimitAboveMaximum) {
  ExpectError(std::string(kHead) + kCells + "limits: {memory: 2000GiB}\n",
              Code::kInvalidArgument, 6, 18);
}

TEST_F(ManifestTest, RejectsZeroLimit) {
  ExpectError(std::string(kHead) + kCells + "limits: {wall_time: 0s}\n",
              Code::kInvalidArgument, 6, 21);
}

TEST_F(ManifestTest, RejectsDurationWithoutUnit) {
  ExpectError(std::string(kHead) + kCells + "limits: {wall_time: 30}\n",
              Code::kInvalidArgument, 6, 21);
}

TEST_F(ManifestTest, RejectsUnknownSizeUnit) {
  ExpectError(std::string(kHead) + kCells + "limits: {memory: 5 gigs}\n",
              Code::kInvalidArgument, 6, 18);
}

TEST_F(ManifestTest, RejectsScratchInCellLimits) {
  // Scratch is one tmpfs for the whole egg: a cell value would be ignored.
  std::string msg = ExpectError(
      std::string(kHead) +
          "cells:\n"
          "  - {language: sh, code: x, limits: {scratch: 1MiB}}\n",
      Code::kInvalidArgument, 4, 47);
  EXPECT_NE(msg.find("whole egg"), std::string::npos) << msg;
}

TEST_F(ManifestTest, AcceptsScratchForTheWholeEgg) {
  auto m = Parse(std::string(kHead) + kCells + "limits: {scratch: 2GiB}\n");
  ASSERT_TRUE(m.has_value()) << m.error().message();
  EXPECT_EQ(m->limits.scratch_bytes, 2ull << 30);
}

TEST_F(ManifestTest, RejectsQuotedBareNumberAsSize) {
  std::string msg = ExpectError(
      std::string(kHead) + kCells + "limits: {memory: \"17000000\"}\n",
      Code::kInvalidArgument, 6, 18);
  EXPECT_NE(msg.find("quotes"), std::string::npos) << msg;
}

TEST_F(ManifestTest, AcceptsQuotedDurationWithUnit) {
  auto m = Parse(std::string(kHead) + kCells +
                 "limits: {wall_time: \"5s\", memory: '64 MiB'}\n");
  ASSERT_TRUE(m.has_value()) << m.error().message();
  EXPECT_EQ(m->limits.wall_ms, 5000u);
  EXPECT_EQ(m->limits.memory_bytes, 64ull << 20);
}

TEST_F(ManifestTest, RejectsMemoryBelowMinimum) {
  std::string msg = ExpectError(
      std::string(kHead) + kCells + "limits: {memory: 12}\n",
      Code::kInvalidArgument, 6, 18);
  EXPECT_NE(msg.find("minimum 16MiB"), std::string::npos) << msg;
}

TEST_F(ManifestTest, RejectsWallTimeBelowMinimum) {
  ExpectError(std::string(kHead) + kCells + "limits: {wall_time: 99ms}\n",
              Code::kInvalidArgument, 6, 21);
}

TEST_F(ManifestTest, RejectsProcessesBelowMinimum) {
  ExpectError(std::string(kHead) + kCells + "limits: {processes: 3}\n",
              Code::kInvalidArgument, 6, 21);
}

TEST_F(ManifestTest, RejectsProcessesWithLeadingZeros) {
  std::string msg = ExpectError(
      std::string(kHead) + kCells + "limits: {processes: 007}\n",
      Code::kInvalidArgument, 6, 21);
  EXPECT_NE(msg.find("leading zeros"), std::string::npos) << msg;
}

TEST_F(ManifestTest, RejectsFractionalSizeWithClearMessage) {
  std::string msg = ExpectError(
      std::string(kHead) + kCells + "limits: {memory: 1.5GiB}\n",
      Code::kInvalidArgument, 6, 18);
  EXPECT_NE(msg.find("fractions are not supported"), std::string::npos)
      << msg;
}

TEST_F(ManifestTest, RejectsCellLimitAboveEggLimit) {
  ExpectError(std::string(kHead) +
                  "limits: {wall_time: 1m}\n"
                  "cells:\n"
                  "  - language: sh\n"
                  "    code: sleep 1\n"
                  "    limits: {wall_time: 2m}\n",
              Code::kInvalidArgument, 7, 25);
}

TEST_F(ManifestTest, RejectsCellLimitAboveDefaultEggLimit) {
  // No egg-level memory: the default (2 GiB) bounds the cell.
  ExpectError(std::string(kHead) +
                  "cells:\n"
                  "  - {language: sh, code: x, limits: {memory: 3GiB}}\n",
              Code::kInvalidArgument, 4, 46);
}

TEST_F(ManifestTest, RejectsCellNetworkTheEggDoesNotRequest) {
  ExpectError(std::string(kHead) +
                  "cells:\n"
                  "  - language: sh\n"
                  "    code: curl x\n"
                  "    permissions: {network: true}\n",
              Code::kInvalidArgument, 6, 18);
}

TEST_F(ManifestTest, RejectsCellWritableHostPathTheEggGivesReadOnly) {
  ExpectError(std::string(kHead) +
                  "permissions:\n"
                  "  host_paths: [{host: /srv/a, sandbox: /a}]\n"
                  "cells:\n"
                  "  - language: sh\n"
                  "    code: x\n"
                  "    permissions:\n"
                  "      host_paths: [{host: /srv/a, sandbox: /a, "
                  "writable: true}]\n",
              Code::kInvalidArgument, 9, 7);
}

TEST_F(ManifestTest, RejectsRelativeHostPath) {
  ExpectError(std::string(kHead) + kCells +
                  "permissions: {host_paths: [{host: srv, sandbox: /a}]}\n",
              Code::kInvalidArgument, 6, 35);
}

TEST_F(ManifestTest, RejectsHostPathOverReservedSandboxPath) {
  ExpectError(std::string(kHead) + kCells +
                  "permissions: {host_paths: [{host: /srv, sandbox: "
                  "/data/x}]}\n",
              Code::kInvalidArgument, 6, 50);
}

TEST_F(ManifestTest, RejectsDeviceOutsideDev) {
  ExpectError(
      std::string(kHead) + kCells + "permissions: {devices: [/etc/shadow]}\n",
      Code::kInvalidArgument, 6, 25);
}

TEST_F(ManifestTest, RejectsBadLicenseExpression) {
  ExpectError(std::string(kHead) + kCells + "license: MIT AND OR GPL-2.0\n",
              Code::kInvalidArgument, 6, 10);
}

TEST_F(ManifestTest, RejectsCreatedOutsideUtc) {
  ExpectError(
      std::string(kHead) + kCells + "created: 2024-05-01T12:00:00+02:00\n",
      Code::kInvalidArgument, 6, 10);
}

TEST_F(ManifestTest, RejectsImpossibleDate) {
  ExpectError(std::string(kHead) + kCells + "created: 2023-02-29T00:00:00Z\n",
              Code::kInvalidArgument, 6, 10);
}

TEST_F(ManifestTest, RejectsMissingRuntime) {
  ExpectError(std::string("name: demo\n") + kCells, Code::kInvalidArgument, 1,
              1);
}

TEST_F(ManifestTest, RejectsTwoRuntimeKinds) {
  ExpectError("name: demo\nruntime: {folder: rootfs, debian: {suite: x}}\n" +
                  std::string(kCells),
              Code::kInvalidArgument, 2, 10);
}

TEST_F(ManifestTest, RejectsRuntimeDigestInUpperCase) {
  ExpectError("name: demo\nruntime: {digest: 'sha256:" + std::string(64, 'A') +
                  "'}\n" + kCells,
              Code::kInvalidArgument, 2, 19);
}

TEST_F(ManifestTest, RejectsOciReferenceByTag) {
  ExpectError("name: demo\nruntime: {oci: 'oci://r.example/lab/py:latest'}\n" +
                  std::string(kCells),
              Code::kInvalidArgument, 2, 16);
}

TEST_F(ManifestTest, RejectsBadDebianPackageName) {
  ExpectError(
      "name: demo\nruntime: {debian: {suite: bookworm, packages: "
      "['-oAPT::x']}}\n" +
          std::string(kCells),
      Code::kInvalidArgument, 2, 48);
}

TEST_F(ManifestTest, RejectsRuntimeFolderThatIsAFile) {
  ExpectError(
      "name: demo\nruntime: {folder: measurements.csv}\n" + std::string(kCells),
      Code::kInvalidArgument, 2, 19);
}

TEST(ManifestExample, BundledExampleIsValid) {
  auto m =
      LoadManifest(std::string(EGG_SOURCE_DIR) + "/examples/hello/egg.yaml");
  ASSERT_TRUE(m.has_value()) << m.error().message();
  EXPECT_EQ(m->name, "plant-growth");
  EXPECT_EQ(m->runtime.kind, RuntimeKind::kDebian);
  EXPECT_EQ(m->created_from, Manifest::CreatedFrom::kManifest);
  EXPECT_EQ(m->data.size(), 1u);
  EXPECT_GE(m->cells.size(), 4u);
}

// ---- units, times, licenses, names ----------------------------------------

TEST(ManifestUnits, ParsesDurationsAndSizes) {
  EXPECT_EQ(ParseDurationMs("500ms").value(), 500u);
  EXPECT_EQ(ParseDurationMs("30s").value(), 30000u);
  EXPECT_EQ(ParseDurationMs("5m").value(), 300000u);
  EXPECT_EQ(ParseDurationMs("2h").value(), 7200000u);
  EXPECT_EQ(ParseDurationMs("1d").value(), 86400000u);
  EXPECT_EQ(ParseSizeBytes("4096").value(), 4096u);
  EXPECT_EQ(ParseSizeBytes("512MiB").value(), 512ull << 20);
  EXPECT_EQ(ParseSizeBytes("2 GiB").value(), 2ull << 30);
  EXPECT_EQ(ParseSizeBytes("3kB").value(), 3000u);
}

TEST(ManifestUnits, RejectsOverflowAndJunk) {
  EXPECT_FALSE(ParseSizeBytes("18446744073709551616").has_value());
  EXPECT_FALSE(ParseSizeBytes("17179869184GiB").has_value());
  EXPECT_FALSE(ParseDurationMs("999999999999999999d").has_value());
  EXPECT_FALSE(ParseDurationMs("-5s").has_value());
  EXPECT_FALSE(ParseDurationMs("1.5h").has_value());
  EXPECT_FALSE(ParseSizeBytes("").has_value());
  EXPECT_FALSE(ParseSizeBytes("12mib").has_value());
  EXPECT_FALSE(ParseSizeBytes("0012MiB").has_value());
  EXPECT_FALSE(ParseDurationMs("05s").has_value());
}

TEST(ManifestTime, RoundTripsRfc3339) {
  EXPECT_EQ(FormatRfc3339Utc(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatRfc3339Utc(951782400), "2000-02-29T00:00:00Z");
  auto t = ParseRfc3339Utc("2000-02-29T00:00:00Z");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(*t, 951782400);
  EXPECT_EQ(ParseRfc3339Utc("2024-05-01T12:00:00+00:00").value(),
            ParseRfc3339Utc("2024-05-01T12:00:00Z").value());
  EXPECT_FALSE(ParseRfc3339Utc("2024-05-01T12:00:00.5Z").has_value());
  EXPECT_FALSE(ParseRfc3339Utc("2024-05-01 12:00:00").has_value());
  EXPECT_FALSE(ParseRfc3339Utc("2024-13-01T12:00:00Z").has_value());
  EXPECT_FALSE(ParseRfc3339Utc("1969-12-31T23:59:59Z").has_value());
}

TEST(ManifestLicense, AcceptsSpdxForms) {
  for (const char* ok :
       {"MIT", "GPL-2.0+", "GPL-2.0-or-later WITH Classpath-exception-2.0",
        "(MIT OR Apache-2.0) AND BSD-3-Clause", "LicenseRef-Internal",
        "DocumentRef-spdx-tool-1.2:LicenseRef-MIT-Style-2", "mit or apache-2.0",
        "((MIT))"}) {
    EXPECT_TRUE(CheckSpdxExpression(ok).has_value()) << ok;
  }
}

TEST(ManifestLicense, RejectsMalformedSpdx) {
  for (const char* bad : {"", "MIT AND", "(MIT", "MIT)", "AND MIT", "MIT WITH",
                          "MIT MIT", "MIT WITH (X)", "LicenseRef-", "M!T",
                          "(MIT OR Apache-2.0) WITH X", "MIT And Apache-2.0"}) {
    EXPECT_FALSE(CheckSpdxExpression(bad).has_value()) << bad;
  }
  std::string deep(100, '(');
  deep += "MIT" + std::string(100, ')');
  EXPECT_FALSE(CheckSpdxExpression(deep).has_value());
}

TEST(Names, NormalisesRelativePaths) {
  EXPECT_EQ(NormalizeRelativePath("a//b").value(), "a/b");
  EXPECT_EQ(NormalizeRelativePath("./a/./b/").value(), "a/b");
  EXPECT_FALSE(NormalizeRelativePath("/a").has_value());
  EXPECT_FALSE(NormalizeRelativePath("a/../b").has_value());
  EXPECT_FALSE(NormalizeRelativePath("./.").has_value());
  EXPECT_FALSE(NormalizeRelativePath(std::string("a\0b", 3)).has_value());
  EXPECT_FALSE(NormalizeRelativePath("a\nb").has_value());
  EXPECT_FALSE(NormalizeRelativePath("a\xff").has_value());
  EXPECT_FALSE(NormalizeRelativePath(std::string(256, 'x')).has_value());
}

TEST(Names, FoldsCaseAndUnicodeForm) {
  EXPECT_EQ(FoldName("Data.CSV").value(), FoldName("data.csv").value());
  EXPECT_EQ(FoldName("caf\xc3\xa9").value(), FoldName("cafe\xcc\x81").value());
  EXPECT_EQ(FoldName("STRASSE").value(), FoldName("stra\xc3\x9f"
                                                  "e")
                                             .value());
  EXPECT_NE(FoldName("a").value(), FoldName("b").value());
  EXPECT_FALSE(FoldName("\xff").has_value());
}

// ---- canonical JSON -------------------------------------------------------

TEST_F(ManifestTest, ManifestJsonIsCanonical) {
  auto m = Parse(std::string(kHead) +
                 "author: Zoë\n"
                 "license: MIT\n"
                 "created: 2024-05-01T12:30:00Z\n"
                 "limits: {memory: 1GiB}\n"
                 "data: [measurements.csv]\n" +
                 kCells);
  ASSERT_TRUE(m.has_value()) << m.error().message();
  auto json = ManifestJson(*m);
  ASSERT_TRUE(json.has_value());
  EXPECT_EQ(*json,
            "{\"author\":\"Zo\xc3\xab\",\"cells\":{\"code\":1,\"languages\":"
            "[\"python\"],\"total\":1},\"created\":\"2024-05-01T12:30:00Z\","
            "\"data\":{\"bytes\":8,\"entries\":[{\"path\":\"measurements.csv\","
            "\"type\":\"file\"}],\"files\":1,\"folders\":0,\"mount\":\"/data\","
            "\"tree\":\"data\"},\"description\":\"\",\"egg_manifest\":1,"
            "\"languages\":{},\"license\":\"MIT\",\"limits\":{\"memory_bytes\":"
            "1073741824},"
            "\"name\":\"demo\",\"permissions\":{\"devices\":[],\"host_paths\":"
            "[],\"network\":false},\"runtime\":{\"kind\":\"folder\",\"tree\":"
            "\"runtime\"}}");
  auto nb = NotebookJson(*m);
  ASSERT_TRUE(nb.has_value());
  EXPECT_EQ(*nb,
            "{\"cells\":[{\"id\":\"cell-1\",\"language\":\"python\","
            "\"outputs\":[],\"source\":\"print(1)\",\"type\":\"code\"}],"
            "\"kernel\":{\"display_name\":\"Python 3\",\"name\":\"python3\"},"
            "\"language\":\"python\"}");
}

TEST_F(ManifestTest, JsonDoesNotDependOnLocaleOrTimeZone) {
  std::string yaml = std::string(kHead) +
                     "limits: {memory: 1234567890}\n"
                     "created: 2024-05-01T12:30:00Z\n" +
                     kCells;
  ::setenv("TZ", "UTC", 1);
  ::tzset();
  std::setlocale(LC_ALL, "C");
  auto a = Parse(yaml, {.source_date_epoch = "1"});
  ASSERT_TRUE(a.has_value());
  std::string ja = ManifestJson(*a).value();

  ::setenv("TZ", "Pacific/Kiritimati", 1);
  ::tzset();
  std::setlocale(LC_ALL, "C.UTF-8");
  std::setlocale(LC_NUMERIC, "de_DE.UTF-8");  // absent locales are ignored
  auto b = Parse(yaml, {.source_date_epoch = "99999"});
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(ManifestJson(*b).value(), ja);
  EXPECT_NE(ja.find("\"memory_bytes\":1234567890"), std::string::npos);
  std::setlocale(LC_ALL, "C");
  ::unsetenv("TZ");
  ::tzset();
}

}  // namespace
}  // namespace egg
