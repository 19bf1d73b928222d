// ExtractTree never writes outside its directory, even for hand-crafted
// hostile eggs.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "egg/egg.h"
#include "format_test_util.h"

namespace egg {
namespace {

using testing::AddChunk;
using testing::Assemble;
using testing::EncodeRawTree;
using testing::RawEgg;
using testing::RawEntry;
using testing::SortIndex;
using testing::TempDir;
using testing::WriteBytes;

size_t CountEntries(const std::string& dir) {
  size_t n = 0;
  for (auto it = std::filesystem::recursive_directory_iterator(dir);
       it != std::filesystem::recursive_directory_iterator(); ++it) {
    ++n;
  }
  return n;
}

// Writes a crafted egg with tree "t" and tries to open and extract it
// into tmp/out; returns the status. tmp/outside is a sentinel folder.
Status TryExtract(const TempDir& tmp, std::vector<RawEntry> entries,
                  RawEgg egg = {}) {
  SortIndex(egg);
  egg.trees.push_back({"t", EncodeRawTree(entries)});
  WriteBytes(tmp.Sub("h.egg"), Assemble(egg));
  auto opened = EggFile::Open(tmp.Sub("h.egg"));
  if (!opened) return Fail(opened.error());
  return opened->ExtractTree("t", tmp.Sub("out/x"));
}

class Extract : public ::testing::Test {
 protected:
  void SetUp() override {
    ::mkdir(tmp_.Sub("outside").c_str(), 0755);
    ::mkdir(tmp_.Sub("out").c_str(), 0755);
  }
  void ExpectNothingOutside() {
    EXPECT_EQ(CountEntries(tmp_.Sub("outside")), 0u);
    std::error_code ec;
    EXPECT_FALSE(std::filesystem::exists(tmp_.Sub("out/escaped"), ec));
  }
  TempDir tmp_;
};

TEST_F(Extract, SymlinkClimbingOutThenFileBeneathItIsRefused) {
  RawEgg egg;
  Digest d = AddChunk(egg, "pwned");
  Status s = TryExtract(tmp_,
                        {{"link", 3, 0777, 10, "../outside", {}},
                         {"link/evil", 1, 0644, 5, "", {d}}},
                        egg);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Code::kCorruption);
  ExpectNothingOutside();
}

TEST_F(Extract, FileUnderAnInTreeSymlinkIsRefused) {
  // Even a link that stays inside may not be a parent: writing through
  // it would follow it.
  RawEgg egg;
  Digest d = AddChunk(egg, "data");
  Status s = TryExtract(tmp_,
                        {{"dir", 2, 0755, 0, "", {}},
                         {"link", 3, 0777, 3, "dir", {}},
                         {"link/f", 1, 0644, 4, "", {d}}},
                        egg);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Code::kCorruption);
}

TEST_F(Extract, AbsoluteSymlinkIsRefused) {
  Status s = TryExtract(tmp_, {{"abs", 3, 0777, 4, "/etc", {}}});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Code::kCorruption);
}

TEST_F(Extract, DotDotPathIsRefused) {
  RawEgg egg;
  Digest d = AddChunk(egg, "data");
  Status s = TryExtract(tmp_, {{"../escaped", 1, 0644, 4, "", {d}}}, egg);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Code::kCorruption);
  ExpectNothingOutside();
}

TEST_F(Extract, ChainedLinksCannotClimbOut) {
  // d/up -> ".." is the root; "t -> d/up/.." would be outside, but ".."
  // after a name is not allowed in a target.
  Status s = TryExtract(tmp_, {{"d", 2, 0755, 0, "", {}},
                               {"d/up", 3, 0777, 2, "..", {}},
                               {"t", 3, 0777, 7, "d/up/..", {}}});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Code::kCorruption);
}

TEST_F(Extract, RefusesAnExistingTargetDirectory) {
  ::mkdir(tmp_.Sub("out/x").c_str(), 0755);
  Status s = TryExtract(tmp_, {{"d", 2, 0755, 0, "", {}}});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
}

TEST_F(Extract, RefusesATargetThatIsASymlink) {
  ::symlink(tmp_.Sub("outside").c_str(), tmp_.Sub("out/x").c_str());
  Status s = TryExtract(tmp_, {{"d", 2, 0755, 0, "", {}}});
  ASSERT_FALSE(s);
  ExpectNothingOutside();
}

TEST_F(Extract, InTreeLinksAreCreatedAsLinksNotFollowed) {
  RawEgg egg;
  Digest d = AddChunk(egg, "data");
  Status s = TryExtract(tmp_,
                        {{"a", 2, 0755, 0, "", {}},
                         {"a/f", 1, 0644, 4, "", {d}},
                         {"a/up", 3, 0777, 2, "..", {}},
                         {"b", 3, 0777, 3, "a/f", {}}},
                        egg);
  ASSERT_TRUE(s) << s.error().message();
  struct stat st;
  ASSERT_EQ(::lstat(tmp_.Sub("out/x/b").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(testing::ReadText(tmp_.Sub("out/x/b")), "data");
  ExpectNothingOutside();
}

}  // namespace
}  // namespace egg
