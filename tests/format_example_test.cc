// Keeps the worked example in docs/FORMAT.md true: builds the tiny egg
// the document describes and compares its hex dump with the one there.
// Run with EGG_UPDATE_FORMAT_DOC=1 to rewrite the dump.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>

#include "egg/egg.h"
#include "format_test_util.h"

namespace egg {
namespace {

using testing::ReadBytes;
using testing::ReadText;
using testing::TempDir;
using testing::WriteText;

constexpr char kBegin[] = "<!-- example-dump-begin -->\n```\n";
constexpr char kEnd[] = "```\n<!-- example-dump-end -->";

std::string HexDump(const std::vector<uint8_t>& b) {
  std::string out;
  char line[128];
  for (size_t i = 0; i < b.size(); i += 16) {
    int n = std::snprintf(line, sizeof line, "%08zx: ", i);
    std::string hex(line, n), ascii;
    for (size_t k = 0; k < 16; ++k) {
      if (i + k < b.size()) {
        std::snprintf(line, sizeof line, "%02x", b[i + k]);
        hex += line;
        char c = static_cast<char>(b[i + k]);
        ascii += (c >= 0x20 && c < 0x7f) ? c : '.';
      } else {
        hex += "  ";
      }
      if (k % 2 == 1) hex += ' ';
    }
    out += hex + " " + ascii + "\n";
  }
  return out;
}

TEST(FormatDoc, WorkedExampleMatchesTheWriter) {
  TempDir tmp;
  ::mkdir(tmp.Sub("data").c_str(), 0755);
  WriteText(tmp.Sub("data/hello.txt"), "hello\n");
  EggInput in;
  in.manifest = {{"name", "tiny"}};
  in.notebook = {{"cells", {{{"language", "bash"},
                             {"source", "cat data/hello.txt"}}}}};
  in.trees.push_back({"data", tmp.Sub("data"), {}, nullptr});
  auto summary = WriteEgg(in, tmp.Sub("tiny.egg"));
  ASSERT_TRUE(summary);
  std::string dump = HexDump(ReadBytes(tmp.Sub("tiny.egg")));
  dump += "content root: " + DigestRef(summary->content_root) + "\n";

  std::string doc_path = std::string(EGG_SOURCE_DIR) + "/docs/FORMAT.md";
  std::string doc = ReadText(doc_path);
  size_t begin = doc.find(kBegin);
  size_t end = doc.find(kEnd);
  ASSERT_NE(begin, std::string::npos) << "no example markers in FORMAT.md";
  ASSERT_NE(end, std::string::npos);
  begin += std::string(kBegin).size();
  std::string current = doc.substr(begin, end - begin);
  if (const char* u = std::getenv("EGG_UPDATE_FORMAT_DOC"); u && *u == '1') {
    doc.replace(begin, end - begin, dump);
    WriteText(doc_path, doc);
    current = dump;
  }
  EXPECT_EQ(current, dump)
      << "docs/FORMAT.md example is stale; rerun with EGG_UPDATE_FORMAT_DOC=1";
}

}  // namespace
}  // namespace egg
