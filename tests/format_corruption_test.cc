// Hostile eggs: every damaged byte, length and field is rejected with
// kCorruption or kVerificationFailed, never a crash.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/bytes.h"
#include "egg/egg.h"
#include "format_test_util.h"

namespace egg {
namespace {

using testing::AddChunk;
using testing::Assemble;
using testing::EncodeRawTree;
using testing::RandomBytes;
using testing::RawEgg;
using testing::RawEntry;
using testing::ReadBytes;
using testing::SortIndex;
using testing::TempDir;
using testing::WriteBytes;
using testing::WriteText;

// Opens fully and verifies; returns the first error, if any.
Status OpenAndVerify(const std::string& path, Digest* root = nullptr) {
  auto egg = EggFile::Open(path);
  if (!egg) return Fail(egg.error());
  if (root != nullptr) *root = egg->content_root();
  return egg->VerifyContent();
}

bool IsRejection(Code code) {
  return code == Code::kCorruption || code == Code::kVerificationFailed;
}

// A small egg (a few KiB): two trees, several chunks, a shared one.
std::vector<uint8_t> SmallEgg(const TempDir& tmp) {
  ::mkdir(tmp.Sub("data").c_str(), 0755);
  ::mkdir(tmp.Sub("data/d").c_str(), 0755);
  ::mkdir(tmp.Sub("rt").c_str(), 0755);
  WriteText(tmp.Sub("data/d/a"), std::string(40000, 'a') + "tail");
  WriteText(tmp.Sub("data/b"), RandomBytes(300, 9));
  WriteText(tmp.Sub("rt/b"), RandomBytes(300, 9));
  WriteText(tmp.Sub("rt/c"), "c");
  ::symlink("b", tmp.Sub("rt/l").c_str());
  EggInput in;
  in.manifest = {{"name", "small"}};
  in.notebook = {{"cells", nlohmann::json::array()}};
  in.trees.push_back({"data", tmp.Sub("data"), {}, nullptr});
  in.trees.push_back({"rt", tmp.Sub("rt"), {}, nullptr});
  auto r = WriteEgg(in, tmp.Sub("small.egg"));
  EXPECT_TRUE(r) << r.error().message();
  return ReadBytes(tmp.Sub("small.egg"));
}

TEST(Corruption, EveryFlippedByteIsRejected) {
  TempDir tmp;
  std::vector<uint8_t> good = SmallEgg(tmp);
  ASSERT_LT(good.size(), 16384u);
  Digest root{};
  ASSERT_TRUE(OpenAndVerify(tmp.Sub("small.egg"), &root));

  testing::MemFile file;
  const std::string path = file.path();
  size_t rejected = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    std::vector<uint8_t> bad = good;
    bad[i] ^= 0x01;
    file.Set(bad);
    Digest got{};
    Status s = OpenAndVerify(path, &got);
    if (!s) {
      // The version bytes say "not supported" rather than "damaged".
      bool version = i == 4 || i == 5;
      EXPECT_TRUE(IsRejection(s.error().code()) ||
                  (version && s.error().code() == Code::kNotSupported))
          << "byte " << i << ": " << s.error().message();
      ++rejected;
    } else {
      // Well-formed but different content (manifest JSON, tree names):
      // the content root, which signatures cover, must differ.
      EXPECT_NE(got, root) << "byte " << i << " changed nothing detectable";
      if (got != root) ++rejected;
    }
  }
  EXPECT_EQ(rejected, good.size());
}

TEST(Corruption, EveryTruncationIsRejected) {
  TempDir tmp;
  std::vector<uint8_t> good = SmallEgg(tmp);
  testing::MemFile file;
  const std::string path = file.path();
  for (size_t n = 0; n < good.size(); ++n) {
    file.Set(std::vector<uint8_t>(good.begin(), good.begin() + n));
    Status s = OpenAndVerify(path);
    ASSERT_FALSE(s) << "length " << n;
    EXPECT_TRUE(IsRejection(s.error().code())) << s.error().message();
  }
}

TEST(Corruption, AppendedBytesAreRejected) {
  TempDir tmp;
  std::vector<uint8_t> bad = SmallEgg(tmp);
  for (int extra : {1, 64, 4096}) {
    std::vector<uint8_t> longer = bad;
    longer.resize(longer.size() + extra, 0);
    WriteBytes(tmp.Sub("a.egg"), longer);
    Status s = OpenAndVerify(tmp.Sub("a.egg"));
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code(), Code::kCorruption);
  }
}

// Builds an egg with one tree "t" holding file "f" made of the given
// chunks, lets `damage` edit the parts, and returns Open+Verify's status.
Status Crafted(const std::vector<std::string>& chunks,
               const std::function<void(RawEgg&, std::vector<RawEntry>&)>&
                   damage) {
  RawEgg egg;
  RawEntry file{"f", 1, 0644, 0, "", {}};
  for (const std::string& c : chunks) {
    file.chunks.push_back(AddChunk(egg, c));
    file.size += c.size();
  }
  SortIndex(egg);
  std::vector<RawEntry> entries = {file};
  damage(egg, entries);
  egg.trees.push_back({"t", EncodeRawTree(entries)});
  TempDir tmp;
  WriteBytes(tmp.Sub("c.egg"), Assemble(egg));
  return OpenAndVerify(tmp.Sub("c.egg"));
}

void ExpectCorrupt(const Status& s) {
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Code::kCorruption) << s.error().message();
}

TEST(Corruption, AssemblerBuildsAnAcceptedEgg) {
  EXPECT_TRUE(Crafted({"one", "two"}, [](RawEgg&, auto&) {}));
}

TEST(Corruption, RejectsDuplicateIndexEntry) {
  ExpectCorrupt(Crafted({"one", "two"}, [](RawEgg& e, auto&) {
    e.index.push_back(e.index.back());
  }));
}

TEST(Corruption, RejectsUnsortedIndex) {
  ExpectCorrupt(Crafted({"one", "two"}, [](RawEgg& e, auto&) {
    std::swap(e.index[0], e.index[1]);
  }));
}

TEST(Corruption, RejectsNonZeroReservedHeaderByte) {
  RawEgg egg;
  auto bytes = Assemble(egg);
  bytes[40] = 1;
  TempDir tmp;
  WriteBytes(tmp.Sub("r.egg"), bytes);
  ExpectCorrupt(OpenAndVerify(tmp.Sub("r.egg")));
}

TEST(Corruption, RejectsNonZeroReservedTrailerByte) {
  RawEgg egg;
  auto bytes = Assemble(egg);
  bytes[bytes.size() - 1] = 1;
  TempDir tmp;
  WriteBytes(tmp.Sub("r.egg"), bytes);
  ExpectCorrupt(OpenAndVerify(tmp.Sub("r.egg")));
}

TEST(Corruption, RejectsSwappedChunks) {
  // Frames swapped in the region while the index keeps its offsets: the
  // frame digests no longer match.
  Status s = Crafted({"first chunk", "second chunk!"}, [](RawEgg& e, auto&) {
    std::swap(e.frames[0], e.frames[1]);
  });
  ASSERT_FALSE(s);
  EXPECT_TRUE(IsRejection(s.error().code()));
}

TEST(Corruption, RejectsIndexEntryPastTheEnd) {
  ExpectCorrupt(Crafted({"one", "two"}, [](RawEgg& e, auto&) {
    e.index[0].offset += 1000;
  }));
}

TEST(Corruption, RejectsOverlappingFrames) {
  ExpectCorrupt(Crafted({"one", "two"}, [](RawEgg& e, auto&) {
    e.index[0].offset = e.index[1].offset;
  }));
}

TEST(Corruption, RejectsUnreferencedChunk) {
  ExpectCorrupt(Crafted({"one"}, [](RawEgg& e, auto&) {
    AddChunk(e, "stray");
    SortIndex(e);
  }));
}

TEST(Corruption, RejectsMissingChunk) {
  ExpectCorrupt(Crafted({"one"}, [](RawEgg&, std::vector<RawEntry>& t) {
    t[0].chunks.push_back(Sha256Of(std::string_view("absent")));
    t[0].size += 6;
  }));
}

TEST(Corruption, RejectsFileWhoseChunksDoNotSumToItsSize) {
  ExpectCorrupt(Crafted({"one"}, [](RawEgg&, std::vector<RawEntry>& t) {
    t[0].size += 1;
  }));
}

TEST(Corruption, RejectsTwoToTheSixtyThreeByteFile) {
  ExpectCorrupt(Crafted({"one"}, [](RawEgg&, std::vector<RawEntry>& t) {
    t[0].size = 1ull << 63;
  }));
}

TEST(Corruption, RejectsAbsurdNesting) {
  ExpectCorrupt(Crafted({"x"}, [](RawEgg&, std::vector<RawEntry>& t) {
    std::vector<RawEntry> deep;
    std::string path;
    for (int i = 0; i < 100; ++i) {
      path += (i ? "/d" : "d");
      deep.push_back({path, 2, 0755, 0, "", {}});
    }
    RawEntry f = t[0];
    f.path = path + "/f";
    deep.push_back(f);
    // Sorted by path bytes already: each path extends the previous one.
    t = deep;
  }));
}

TEST(Corruption, RejectsFrameThatDecompressesToOtherBytes) {
  // Index claims the frame of "aaaa" holds "bbbb": raw digest mismatch.
  Status s = Crafted({"aaaa"}, [](RawEgg& e, std::vector<RawEntry>& t) {
    Digest other = Sha256Of(std::string_view("bbbb"));
    e.index[0].raw = other;
    t[0].chunks[0] = other;
  });
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Code::kVerificationFailed);
}

TEST(Corruption, RejectsTwoFramesInOneEntry) {
  // One index entry covering two concatenated zstd frames.
  Status s = Crafted({"ab", "cd"}, [](RawEgg& e, std::vector<RawEntry>& t) {
    std::vector<uint8_t> both = e.frames[0];
    both.insert(both.end(), e.frames[1].begin(), e.frames[1].end());
    e.frames = {both};
    ChunkEntry c;
    c.raw = Sha256Of(std::string_view("abcd"));
    c.frame = Sha256Of(both);
    c.offset = 0;
    c.frame_length = static_cast<uint32_t>(both.size());
    c.raw_length = 4;
    e.index = {c};
    t[0].chunks = {c.raw};
  });
  ExpectCorrupt(s);
}

TEST(Corruption, RejectsNonCanonicalManifestJson) {
  for (const char* json : {"{ }", "{\"b\":1,\"a\":2}", "[]", "{\"a\":1,\"a\":2}",
                           "{\"a\":1e2}"}) {
    RawEgg egg;
    egg.manifest_json = json;
    TempDir tmp;
    WriteBytes(tmp.Sub("j.egg"), Assemble(egg));
    auto r = EggFile::Open(tmp.Sub("j.egg"));
    ASSERT_FALSE(r) << json;
    EXPECT_EQ(r.error().code(), Code::kCorruption) << json;
  }
}

TEST(Corruption, RejectsEscapingSymlinkInTree) {
  ExpectCorrupt(Crafted({"x"}, [](RawEgg&, std::vector<RawEntry>& t) {
    t.insert(t.begin(), RawEntry{"a", 3, 0777, 5, "../up", {}});
  }));
}

TEST(Corruption, RejectsSetuidMode) {
  ExpectCorrupt(Crafted({"x"}, [](RawEgg&, std::vector<RawEntry>& t) {
    t[0].mode = 04755;
  }));
}

TEST(Corruption, RejectsUnknownEntryKind) {
  ExpectCorrupt(Crafted({"x"}, [](RawEgg&, std::vector<RawEntry>& t) {
    t.push_back(RawEntry{"z", 4, 0644, 0, "", {}});
  }));
}

}  // namespace
}  // namespace egg
