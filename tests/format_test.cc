// Writing and reading eggs: round trips, determinism, dedup, chunking and
// the tree rules.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <utime.h>

#include <map>

#include "common/fd.h"
#include "egg/chunker.h"
#include "egg/egg.h"
#include "egg/tree.h"
#include "format_test_util.h"

namespace egg {
namespace {

using testing::RandomBytes;
using testing::ReadBytes;
using testing::ReadText;
using testing::TempDir;
using testing::WriteText;

EggInput Input(const std::string& data_dir) {
  EggInput in;
  in.manifest = {{"name", "demo"}, {"author", "A. Person"}};
  in.notebook = {{"cells", {{{"language", "python"}, {"source", "1+1"}}}}};
  in.trees.push_back(TreeInput{"data", data_dir, {}, nullptr});
  return in;
}

// A folder with a few files, a subfolder, an executable and a symlink.
void FillData(const std::string& dir, bool reverse_order) {
  std::vector<std::function<void()>> steps = {
      [&] { WriteText(dir + "/a.txt", "alpha\n"); },
      [&] { WriteText(dir + "/big.bin", RandomBytes(700000, 7)); },
      [&] {
        ::mkdir((dir + "/sub").c_str(), 0700);
        WriteText(dir + "/sub/run.sh", "#!/bin/sh\necho hi\n", 0700);
        WriteText(dir + "/sub/empty", "");
        ::symlink("../a.txt", (dir + "/sub/link").c_str());
      },
  };
  if (reverse_order) std::reverse(steps.begin(), steps.end());
  for (auto& s : steps) s();
}

TEST(Chunker, CutsWithinBoundsAndReassembles) {
  std::string data = RandomBytes(3 << 20, 1);
  std::span<const uint8_t> rest(reinterpret_cast<const uint8_t*>(data.data()),
                                data.size());
  size_t total = 0, count = 0;
  while (!rest.empty()) {
    size_t n = FindChunkBoundary(rest);
    ASSERT_GT(n, 0u);
    ASSERT_LE(n, kChunkMax);
    if (n != rest.size()) {
      ASSERT_GE(n, kChunkMin);
    }
    total += n;
    ++count;
    rest = rest.subspan(n);
  }
  EXPECT_EQ(total, data.size());
  // About the average size on random data.
  EXPECT_GT(count, 20u);
  EXPECT_LT(count, 80u);
}

TEST(Chunker, BoundariesResynchroniseAfterAnInsertion) {
  std::string data = RandomBytes(2 << 20, 2);
  std::string shifted = "xyz" + data;
  auto cuts = [](const std::string& s) {
    std::vector<size_t> ends;
    size_t at = 0;
    while (at < s.size()) {
      at += FindChunkBoundary(std::span<const uint8_t>(
          reinterpret_cast<const uint8_t*>(s.data()) + at, s.size() - at));
      ends.push_back(at);
    }
    return ends;
  };
  auto a = cuts(data);
  auto b = cuts(shifted);
  size_t shared = 0;
  for (size_t e : a) {
    if (std::find(b.begin(), b.end(), e + 3) != b.end()) ++shared;
  }
  EXPECT_GE(shared, a.size() - 2);
}

TEST(Chunker, GearTableIsTheDocumentedDerivation) {
  std::string seed = "egg-gear-v1";
  seed.push_back('\x00');
  Digest d = Sha256Of(seed);
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | d[i];
  EXPECT_EQ(GearTable()[0], v);
}

TEST(Format, RoundTripsFilesModesAndLinks) {
  TempDir tmp;
  std::string data = tmp.Sub("data");
  ::mkdir(data.c_str(), 0755);
  FillData(data, false);
  auto summary = WriteEgg(Input(data), tmp.Sub("x.egg"));
  ASSERT_TRUE(summary) << summary.error().message();

  auto egg = EggFile::Open(tmp.Sub("x.egg"));
  ASSERT_TRUE(egg) << egg.error().message();
  EXPECT_EQ(egg->content_root(), summary->content_root);
  EXPECT_EQ(egg->manifest()["name"], "demo");
  EXPECT_EQ(egg->notebook()["cells"][0]["source"], "1+1");
  ASSERT_TRUE(egg->VerifyContent());

  auto big = egg->ReadFile("data", "big.bin");
  ASSERT_TRUE(big);
  EXPECT_EQ(*big, RandomBytes(700000, 7));
  EXPECT_EQ(*egg->ReadFile("data", "a.txt"), "alpha\n");
  EXPECT_EQ(*egg->ReadFile("data", "sub/empty"), "");

  auto run = egg->FindEntry("data", "sub/run.sh");
  ASSERT_TRUE(run);
  EXPECT_EQ((*run)->mode, 0755);
  auto link = egg->FindEntry("data", "sub/link");
  ASSERT_TRUE(link);
  EXPECT_EQ((*link)->kind, EntryKind::kSymlink);
  EXPECT_EQ((*link)->target, "../a.txt");
  auto sub = egg->FindEntry("data", "sub");
  ASSERT_TRUE(sub);
  EXPECT_EQ((*sub)->mode, 0755);

  std::string out = tmp.Sub("out");
  ASSERT_TRUE(egg->ExtractTree("data", out));
  EXPECT_EQ(ReadText(out + "/big.bin"), RandomBytes(700000, 7));
  struct stat st;
  ASSERT_EQ(::lstat((out + "/sub/link").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  ASSERT_EQ(::stat((out + "/sub/run.sh").c_str(), &st), 0);
  EXPECT_TRUE(st.st_mode & S_IXUSR);
}

TEST(Format, SummaryOpenReadsNoTrees) {
  TempDir tmp;
  std::string data = tmp.Sub("data");
  ::mkdir(data.c_str(), 0755);
  FillData(data, false);
  ASSERT_TRUE(WriteEgg(Input(data), tmp.Sub("x.egg")));
  auto egg = EggFile::Open(tmp.Sub("x.egg"), EggFile::Depth::kSummary);
  ASSERT_TRUE(egg);
  EXPECT_FALSE(egg->full());
  EXPECT_EQ(egg->layout().trees.size(), 1u);
  EXPECT_EQ(egg->layout().trees[0].name, "data");
  auto head = ReadHeadBytes(tmp.Sub("x.egg"));
  ASSERT_TRUE(head);
  EXPECT_EQ(ContentRootOf(std::span<const uint8_t>(*head).subspan(64)),
            egg->content_root());
}

TEST(Format, SameContentGivesIdenticalBytesWhateverOrderMtimeUmaskThreads) {
  TempDir tmp;
  std::string d1 = tmp.Sub("one"), d2 = tmp.Sub("two");
  mode_t old = ::umask(022);
  ::mkdir(d1.c_str(), 0755);
  FillData(d1, false);
  ::umask(077);
  ::mkdir(d2.c_str(), 0700);
  FillData(d2, true);
  ::umask(old);
  struct utimbuf times = {12345, 67890};
  ::utime((d2 + "/a.txt").c_str(), &times);

  WriteOptions one_thread;
  one_thread.threads = 1;
  WriteOptions many;
  many.threads = 7;
  ASSERT_TRUE(WriteEgg(Input(d1), tmp.Sub("a.egg"), one_thread));
  ASSERT_TRUE(WriteEgg(Input(d2), tmp.Sub("b.egg"), many));
  EXPECT_EQ(ReadBytes(tmp.Sub("a.egg")), ReadBytes(tmp.Sub("b.egg")));
}

TEST(Format, RepeatedContentIsStoredOnceAcrossTrees) {
  TempDir tmp;
  std::string blob = RandomBytes(600000, 3);
  ::mkdir(tmp.Sub("data").c_str(), 0755);
  ::mkdir(tmp.Sub("rt").c_str(), 0755);
  WriteText(tmp.Sub("data/x.bin"), blob);
  WriteText(tmp.Sub("data/y.bin"), blob);
  WriteText(tmp.Sub("rt/z.bin"), blob);
  EggInput in;
  in.trees.push_back({"data", tmp.Sub("data"), {}, nullptr});
  in.trees.push_back({"runtime", tmp.Sub("rt"), {}, nullptr});
  auto summary = WriteEgg(in, tmp.Sub("x.egg"));
  ASSERT_TRUE(summary);

  EggInput single;
  ::mkdir(tmp.Sub("one").c_str(), 0755);
  WriteText(tmp.Sub("one/x.bin"), blob);
  single.trees.push_back({"data", tmp.Sub("one"), {}, nullptr});
  auto one = WriteEgg(single, tmp.Sub("one.egg"));
  ASSERT_TRUE(one);
  EXPECT_EQ(summary->chunk_count, one->chunk_count);
  auto egg = EggFile::Open(tmp.Sub("x.egg"));
  ASSERT_TRUE(egg);
  EXPECT_EQ(egg->layout().blocks.length,
            EggFile::Open(tmp.Sub("one.egg"))->layout().blocks.length);
  EXPECT_EQ(*egg->ReadFile("runtime", "z.bin"), blob);
}

// A FIFO given as an egg must be refused, not waited on (a blocking open
// would hang until some writer came).
TEST(Format, OpeningAFifoFailsWithoutWaitingForAWriter) {
  TempDir tmp;
  std::string fifo = tmp.Sub("fifo.egg");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto egg = EggFile::Open(fifo);
  ASSERT_FALSE(egg);
  EXPECT_NE(egg.error().message().find("is not a file"), std::string::npos)
      << egg.error().message();
  auto text = ReadFileToString(fifo);
  EXPECT_FALSE(text);
}

TEST(Format, RefusesToOverwriteWithoutForce) {
  TempDir tmp;
  WriteText(tmp.Sub("x.egg"), "keep");
  auto r = WriteEgg(EggInput{}, tmp.Sub("x.egg"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(ReadText(tmp.Sub("x.egg")), "keep");
  WriteOptions force;
  force.force = true;
  EXPECT_TRUE(WriteEgg(EggInput{}, tmp.Sub("x.egg"), force));
  EXPECT_TRUE(EggFile::Open(tmp.Sub("x.egg")));
}

TEST(Format, ScanRejectsSpecialFilesNamingThePath) {
  TempDir tmp;
  ::mkdir(tmp.Sub("d").c_str(), 0755);
  ASSERT_EQ(::mkfifo(tmp.Sub("d/pipe").c_str(), 0644), 0);
  auto r = WriteEgg(Input(tmp.Sub("d")), tmp.Sub("x.egg"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  EXPECT_NE(r.error().message().find("pipe"), std::string::npos);
  EXPECT_NE(::access(tmp.Sub("x.egg").c_str(), F_OK), 0);
}

TEST(Format, ScanRejectsAbsoluteAndEscapingSymlinks) {
  for (const char* target : {"/etc/passwd", "../outside", "a/../../x"}) {
    TempDir tmp;
    ::mkdir(tmp.Sub("d").c_str(), 0755);
    ::mkdir(tmp.Sub("d/a").c_str(), 0755);
    ::symlink(target, tmp.Sub("d/link").c_str());
    auto r = WriteEgg(Input(tmp.Sub("d")), tmp.Sub("x.egg"));
    ASSERT_FALSE(r) << target;
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
    EXPECT_NE(r.error().message().find("link"), std::string::npos);
  }
}

TEST(Format, RejectsJsonThatIsNotAnObject) {
  TempDir tmp;
  EggInput in;
  in.manifest = nlohmann::json::array();
  auto r = WriteEgg(in, tmp.Sub("x.egg"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
}

// A chunk source backed by a map, as the local store would be.
class MapSource : public ChunkSource {
 public:
  std::map<Digest, std::vector<uint8_t>> chunks;
  int reads = 0;
  Result<std::vector<uint8_t>> ReadChunk(const Digest& raw) override {
    ++reads;
    auto it = chunks.find(raw);
    if (it == chunks.end()) return Fail(Code::kNotFound, "no chunk");
    return it->second;
  }
};

class MapSink : public ChunkSink {
 public:
  std::map<Digest, std::vector<uint8_t>> chunks;
  Status PutChunk(const Digest& raw, std::span<const uint8_t> bytes,
                  std::span<const uint8_t> frame) override {
    chunks[raw].assign(bytes.begin(), bytes.end());
    return {};
  }
};

TEST(Format, PrebuiltTreeFromAChunkSourceMatchesAScannedOne) {
  TempDir tmp;
  std::string data = tmp.Sub("data");
  ::mkdir(data.c_str(), 0755);
  FillData(data, false);
  MapSink sink;
  auto tree = ScanDirectory(data, &sink);
  ASSERT_TRUE(tree) << tree.error().message();
  MapSource source;
  source.chunks = sink.chunks;

  EggInput prebuilt = Input(data);
  prebuilt.trees[0] = TreeInput{"data", "", *tree, &source};
  ASSERT_TRUE(WriteEgg(prebuilt, tmp.Sub("a.egg")));
  ASSERT_TRUE(WriteEgg(Input(data), tmp.Sub("b.egg")));
  EXPECT_EQ(ReadBytes(tmp.Sub("a.egg")), ReadBytes(tmp.Sub("b.egg")));

  auto egg = EggFile::Open(tmp.Sub("a.egg"));
  ASSERT_TRUE(egg);
  auto encoded = EncodeTree(*tree);
  ASSERT_TRUE(encoded);
  EXPECT_EQ(egg->layout().trees[0].section.digest, TreeDigest(*encoded));
  MapSink exported;
  ASSERT_TRUE(egg->ExportTree("data", exported));
  EXPECT_EQ(exported.chunks, sink.chunks);
}

TEST(Format, ChunkSourceReturningWrongBytesIsRejected) {
  TempDir tmp;
  ::mkdir(tmp.Sub("d").c_str(), 0755);
  WriteText(tmp.Sub("d/f"), "hello");
  auto tree = ScanDirectory(tmp.Sub("d"), nullptr);
  ASSERT_TRUE(tree);
  MapSource source;
  source.chunks[tree->entries[0].chunks[0]] = {'h', 'e', 'l', 'l', 'x'};
  EggInput in;
  in.trees.push_back({"data", "", *tree, &source});
  auto r = WriteEgg(in, tmp.Sub("x.egg"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kVerificationFailed);
}

TEST(Format, ReplacingSignaturesKeepsTheContentRoot) {
  TempDir tmp;
  std::string data = tmp.Sub("data");
  ::mkdir(data.c_str(), 0755);
  FillData(data, false);
  ASSERT_TRUE(WriteEgg(Input(data), tmp.Sub("x.egg")));
  auto egg = EggFile::Open(tmp.Sub("x.egg"));
  ASSERT_TRUE(egg);
  std::vector<uint8_t> sig = {1, 2, 3, 4, 5};
  ASSERT_TRUE(egg->WriteWithSignatures(sig, tmp.Sub("s.egg"), false));
  auto signed_egg = EggFile::Open(tmp.Sub("s.egg"));
  ASSERT_TRUE(signed_egg) << signed_egg.error().message();
  EXPECT_EQ(signed_egg->content_root(), egg->content_root());
  EXPECT_EQ(std::vector<uint8_t>(signed_egg->signatures().begin(),
                                 signed_egg->signatures().end()),
            sig);
  ASSERT_TRUE(signed_egg->VerifyContent());

  // Replacing in place, then back to none, restores the original bytes.
  ASSERT_TRUE(signed_egg->WriteWithSignatures({}, tmp.Sub("s.egg"), true));
  EXPECT_EQ(ReadBytes(tmp.Sub("s.egg")), ReadBytes(tmp.Sub("x.egg")));
  EXPECT_FALSE(egg->WriteWithSignatures(sig, tmp.Sub("x.egg"), false));
}

TEST(Tree, EncodeDecodeRoundTripsAndListsReferences) {
  Tree t;
  Digest a = Sha256Of(std::string_view("a"));
  t.entries.push_back({"d", EntryKind::kDir, 0755, 0, "", {}});
  t.entries.push_back({"d/f", EntryKind::kFile, 0644, 2, "", {a, a}});
  t.entries.push_back({"d/l", EntryKind::kSymlink, 0777, 1, "f", {}});
  auto enc = EncodeTree(t);
  ASSERT_TRUE(enc);
  auto dec = DecodeTree(*enc);
  ASSERT_TRUE(dec);
  EXPECT_EQ(*dec, t);
  auto refs = TreeReferences(*enc);
  ASSERT_TRUE(refs);
  EXPECT_EQ(refs->chunks, std::vector<Digest>{a});
}

TEST(Tree, PathRulesRejectTraversalAndControlBytes) {
  EXPECT_TRUE(IsValidTreePath("a/b.c"));
  for (const char* bad : {"", "/a", "a/", "a//b", ".", "a/./b", "..",
                          "a/../b", "a\nb", "a\x7f"}) {
    EXPECT_FALSE(IsValidTreePath(bad)) << bad;
  }
  std::string deep;
  for (size_t i = 0; i < kTreeMaxDepth + 1; ++i) deep += "d/";
  deep += "f";
  EXPECT_FALSE(IsValidTreePath(deep));
}

TEST(Tree, LinkTargetsMayNotClimbAboveTheRoot) {
  EXPECT_TRUE(IsValidLinkTarget("a/l", "../b"));
  EXPECT_TRUE(IsValidLinkTarget("l", "a/b"));
  EXPECT_FALSE(IsValidLinkTarget("l", "../b"));
  EXPECT_FALSE(IsValidLinkTarget("a/l", "../../b"));
  EXPECT_FALSE(IsValidLinkTarget("a/l", "b/../.."));
  EXPECT_FALSE(IsValidLinkTarget("a/l", "/etc"));
  EXPECT_FALSE(IsValidLinkTarget("a/l", "./b"));
  EXPECT_FALSE(IsValidLinkTarget("a/l", ""));
}

TEST(Tree, RejectsAnEntryWhoseParentIsNotADirectory) {
  Tree t;
  t.entries.push_back({"l", EntryKind::kSymlink, 0777, 1, "x", {}});
  t.entries.push_back({"l/f", EntryKind::kFile, 0644, 0, "", {}});
  auto s = ValidateTree(t);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Code::kCorruption);
}

TEST(Tree, RejectsUnsortedDuplicateAndBadModes) {
  Tree unsorted;
  unsorted.entries.push_back({"b", EntryKind::kFile, 0644, 0, "", {}});
  unsorted.entries.push_back({"a", EntryKind::kFile, 0644, 0, "", {}});
  EXPECT_FALSE(ValidateTree(unsorted));
  Tree dup;
  dup.entries.push_back({"a", EntryKind::kFile, 0644, 0, "", {}});
  dup.entries.push_back({"a", EntryKind::kFile, 0644, 0, "", {}});
  EXPECT_FALSE(ValidateTree(dup));
  Tree setuid;
  setuid.entries.push_back({"a", EntryKind::kFile, 04755, 0, "", {}});
  EXPECT_FALSE(ValidateTree(setuid));
}

}  // namespace
}  // namespace egg
