#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "common/atomic_file.h"
#include "common/fd.h"
#include "egg/store.h"
#include "store/fs_util.h"

namespace egg {
namespace {

std::vector<uint8_t> Bytes(const std::string& s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/egg-store-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override { ASSERT_TRUE(RemoveTree(dir_).has_value()); }

  Store OpenStore() {
    auto store = Store::Open({.root = dir_ + "/store"});
    EXPECT_TRUE(store.has_value()) << store.error().message();
    return std::move(*store);
  }

  std::string dir_;
};

TEST_F(StoreTest, ReturnsWhatWasPutUnderItsSha256) {
  Store store = OpenStore();
  auto data = Bytes("hello chunk");
  auto digest = store.Put(ObjectKind::kChunk, data);
  ASSERT_TRUE(digest.has_value());
  EXPECT_EQ(*digest, Sha256Of(data));
  auto back = store.Get(ObjectKind::kChunk, *digest);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, data);
  EXPECT_FALSE(store.Has(ObjectKind::kTree, *digest));
}

TEST_F(StoreTest, MissingObjectIsNotFound) {
  Store store = OpenStore();
  auto got = store.Get(ObjectKind::kChunk, Sha256Of(std::string_view("x")));
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), Code::kNotFound);
}

TEST_F(StoreTest, ReadFrameUncheckedReturnsTheStoredFrameAndNothingElse) {
  Store store = OpenStore();
  auto data = Bytes("frame bytes as stored");
  auto digest = store.Put(ObjectKind::kChunk, data);
  ASSERT_TRUE(digest.has_value());
  auto checked = store.GetFrame(ObjectKind::kChunk, *digest);
  ASSERT_TRUE(checked.has_value());
  auto raw = store.ReadFrameUnchecked(ObjectKind::kChunk, *digest);
  ASSERT_TRUE(raw.has_value());
  EXPECT_EQ(*raw, *checked);

  auto small = store.ReadFrameUnchecked(ObjectKind::kChunk, *digest, 4);
  ASSERT_FALSE(small.has_value());
  EXPECT_EQ(small.error().code(), Code::kInvalidArgument);
  auto missing = store.ReadFrameUnchecked(ObjectKind::kTree, *digest);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), Code::kNotFound);
}

TEST_F(StoreTest, PutTwiceIsANoOp) {
  Store store = OpenStore();
  auto data = Bytes("same");
  ASSERT_TRUE(store.Put(ObjectKind::kTree, data).has_value());
  ASSERT_TRUE(store.Put(ObjectKind::kTree, data).has_value());
  auto list = store.List();
  ASSERT_TRUE(list.has_value());
  EXPECT_EQ(list->size(), 1u);
}

TEST_F(StoreTest, CorruptedObjectIsReportedRemovedAndNeverReturned) {
  Store store = OpenStore();
  std::string big(100000, 'a');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  auto digest = store.Put(ObjectKind::kChunk, Bytes(big));
  ASSERT_TRUE(digest.has_value());
  std::string path = store.ObjectPath(ObjectKind::kChunk, *digest);
  auto frame = ReadFileToString(path);
  ASSERT_TRUE(frame.has_value());
  (*frame)[frame->size() / 2] ^= 0x01;
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  ASSERT_TRUE(WriteFileAtomic(path, *frame, 0444, true).has_value());

  auto got = store.Get(ObjectKind::kChunk, *digest);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), Code::kCorruption);
  EXPECT_FALSE(store.Has(ObjectKind::kChunk, *digest));

  // Putting it again repairs the store.
  ASSERT_TRUE(store.Put(ObjectKind::kChunk, Bytes(big)).has_value());
  EXPECT_TRUE(store.Get(ObjectKind::kChunk, *digest).has_value());
}

TEST_F(StoreTest, ObjectWithDifferentValidContentIsCorruption) {
  Store store = OpenStore();
  auto a = store.Put(ObjectKind::kChunk, Bytes("content a"));
  auto b = store.Put(ObjectKind::kChunk, Bytes("content b"));
  ASSERT_TRUE(a && b);
  std::string pa = store.ObjectPath(ObjectKind::kChunk, *a);
  std::string pb = store.ObjectPath(ObjectKind::kChunk, *b);
  ASSERT_EQ(rename(pb.c_str(), pa.c_str()), 0);
  auto got = store.Get(ObjectKind::kChunk, *a);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), Code::kCorruption);
}

TEST_F(StoreTest, TrailingBytesAfterFrameAreCorruption) {
  Store store = OpenStore();
  auto d = store.Put(ObjectKind::kChunk, Bytes("payload"));
  ASSERT_TRUE(d.has_value());
  std::string path = store.ObjectPath(ObjectKind::kChunk, *d);
  auto frame = ReadFileToString(path);
  ASSERT_TRUE(frame.has_value());
  ASSERT_TRUE(WriteFileAtomic(path, *frame + "x", 0444, true).has_value());
  auto got = store.Get(ObjectKind::kChunk, *d);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), Code::kCorruption);
}

TEST_F(StoreTest, SymlinkInPlaceOfObjectIsNotFollowed) {
  Store store = OpenStore();
  auto d = store.Put(ObjectKind::kChunk, Bytes("real"));
  ASSERT_TRUE(d.has_value());
  std::string path = store.ObjectPath(ObjectKind::kChunk, *d);
  ASSERT_EQ(unlink(path.c_str()), 0);
  ASSERT_EQ(symlink("/etc/passwd", path.c_str()), 0);
  auto got = store.Get(ObjectKind::kChunk, *d);
  ASSERT_FALSE(got.has_value());
  EXPECT_NE(got.error().code(), Code::kNotFound);
}

TEST_F(StoreTest, PutExpectingRefusesContentOfAnotherDigest) {
  Store store = OpenStore();
  Digest wrong = Sha256Of(std::string_view("other"));
  auto s = store.PutExpecting(ObjectKind::kChunk, wrong, Bytes("mine"));
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), Code::kVerificationFailed);
  EXPECT_FALSE(store.Has(ObjectKind::kChunk, wrong));
}

TEST_F(StoreTest, PutFrameRefusesGarbageAndMismatchedFrames) {
  Store store = OpenStore();
  Digest d = Sha256Of(std::string_view("x"));
  auto garbage = Bytes("not zstd at all");
  auto s = store.PutFrame(ObjectKind::kChunk, d, garbage);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), Code::kCorruption);

  auto y = store.Put(ObjectKind::kChunk, Bytes("y"));
  ASSERT_TRUE(y.has_value());
  auto frame_y = store.GetFrame(ObjectKind::kChunk, *y);
  ASSERT_TRUE(frame_y.has_value());
  s = store.PutFrame(ObjectKind::kChunk, d, *frame_y);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), Code::kVerificationFailed);
  EXPECT_FALSE(store.Has(ObjectKind::kChunk, d));
}

TEST_F(StoreTest, TwoProcessesWritingTheSameObjectsLeaveAnIntactStore) {
  // Both children write the same 300 objects, in opposite orders.
  std::string root = dir_ + "/store";
  std::vector<pid_t> children;
  for (int child = 0; child < 2; ++child) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto store = Store::Open({.root = root});
      if (!store) _exit(2);
      for (int i = 0; i < 300; ++i) {
        int n = child == 0 ? i : 299 - i;
        std::string data = "object " + std::to_string(n) +
                           std::string(static_cast<size_t>(n) * 50, 'z');
        if (!store->Put(ObjectKind::kChunk, Bytes(data))) _exit(3);
      }
      _exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }

  Store store = OpenStore();
  auto stats = store.Verify();
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->objects, 300u);
  EXPECT_TRUE(stats->problems.empty());
  // No temporary file was left behind in any shard.
  auto shards = ListDir(root + "/chunks");
  ASSERT_TRUE(shards.has_value());
  for (const auto& shard : *shards) {
    auto names = ListDir(root + "/chunks/" + shard);
    ASSERT_TRUE(names.has_value());
    for (const auto& name : *names) EXPECT_NE(name[0], '.') << name;
  }
}

TEST_F(StoreTest, VerifyFindsAndRemovesDamagedObjects) {
  Store store = OpenStore();
  auto good = store.Put(ObjectKind::kChunk, Bytes("good"));
  auto bad = store.Put(ObjectKind::kTree, Bytes("bad"));
  ASSERT_TRUE(good && bad);
  std::string path = store.ObjectPath(ObjectKind::kTree, *bad);
  ASSERT_TRUE(WriteFileAtomic(path, "junk", 0444, true).has_value());
  auto stats = store.Verify();
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->objects, 2u);
  EXPECT_EQ(stats->problems.size(), 1u);
  EXPECT_EQ(stats->removed, 1u);
  EXPECT_TRUE(store.Has(ObjectKind::kChunk, *good));
  EXPECT_FALSE(store.Has(ObjectKind::kTree, *bad));
}

// A test tree encoding: the concatenated digests of its chunks.
Result<Store::References> TestReferences(std::span<const uint8_t> tree) {
  if (tree.size() % 32 != 0) return Fail(Code::kCorruption, "bad tree");
  Store::References refs;
  for (size_t i = 0; i < tree.size(); i += 32) {
    Digest d;
    std::copy(tree.begin() + i, tree.begin() + i + 32, d.begin());
    refs.chunks.push_back(d);
  }
  return refs;
}

TEST_F(StoreTest, GcKeepsWhatKeptAndPinnedTreesReachAndRemovesTheRest) {
  Store store = OpenStore();
  auto c1 = store.Put(ObjectKind::kChunk, Bytes("chunk one"));
  auto c2 = store.Put(ObjectKind::kChunk, Bytes("chunk two"));
  auto c3 = store.Put(ObjectKind::kChunk, Bytes("chunk three"));
  ASSERT_TRUE(c1 && c2 && c3);
  std::vector<uint8_t> t1(c1->begin(), c1->end());
  std::vector<uint8_t> t2(c2->begin(), c2->end());
  std::vector<uint8_t> t3(c3->begin(), c3->end());
  auto kept = store.Put(ObjectKind::kTree, t1);
  auto pinned = store.Put(ObjectKind::kTree, t2);
  auto loose = store.Put(ObjectKind::kTree, t3);
  ASSERT_TRUE(kept && pinned && loose);
  ASSERT_TRUE(store.MarkKept(*kept, true).has_value());
  ASSERT_TRUE(store.Pin("some-egg", {*pinned}).has_value());
  ASSERT_TRUE(MakeDir(store.MaterialisedPath(*loose), 0755).has_value());

  auto stats = store.Gc(&TestReferences);
  ASSERT_TRUE(stats.has_value()) << stats.error().message();
  EXPECT_TRUE(store.Has(ObjectKind::kTree, *kept));
  EXPECT_TRUE(store.Has(ObjectKind::kTree, *pinned));
  EXPECT_TRUE(store.Has(ObjectKind::kChunk, *c1));
  EXPECT_TRUE(store.Has(ObjectKind::kChunk, *c2));
  EXPECT_FALSE(store.Has(ObjectKind::kTree, *loose));
  EXPECT_FALSE(store.Has(ObjectKind::kChunk, *c3));
  EXPECT_NE(access(store.MaterialisedPath(*loose).c_str(), F_OK), 0);

  // Unpinning makes the pinned tree collectable.
  ASSERT_TRUE(store.Unpin("some-egg").has_value());
  ASSERT_TRUE(store.Gc(&TestReferences).has_value());
  EXPECT_FALSE(store.Has(ObjectKind::kTree, *pinned));
  EXPECT_FALSE(store.Has(ObjectKind::kChunk, *c2));
  EXPECT_TRUE(store.Has(ObjectKind::kChunk, *c1));
}

TEST_F(StoreTest, GcRefusesWhileAnotherUserHasTheStoreOpen) {
  Store store = OpenStore();
  auto other = Store::Open({.root = dir_ + "/store"});
  ASSERT_TRUE(other.has_value());
  auto stats = store.Gc(&TestReferences);
  ASSERT_FALSE(stats.has_value());
  EXPECT_EQ(stats.error().code(), Code::kIo);
}

TEST_F(StoreTest, GcKeepsEverythingWhenAPinListIsDamaged) {
  Store store = OpenStore();
  auto c = store.Put(ObjectKind::kChunk, Bytes("c"));
  ASSERT_TRUE(c.has_value());
  ASSERT_TRUE(WriteFileAtomic(store.root() + "/pins/broken", "nonsense\n",
                              0644, false)
                  .has_value());
  ASSERT_FALSE(store.Gc(&TestReferences).has_value());
  EXPECT_TRUE(store.Has(ObjectKind::kChunk, *c));
}

TEST_F(StoreTest, PinNamesCannotLeaveThePinFolder) {
  Store store = OpenStore();
  auto s = store.Pin("../kept/x", {});
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
}

TEST_F(StoreTest, RefusesAStoreOfAnotherVersion) {
  { Store store = OpenStore(); }
  std::string version = dir_ + "/store/VERSION";
  ASSERT_TRUE(WriteFileAtomic(version, "egg-store 9\n", 0644, true));
  auto store = Store::Open({.root = dir_ + "/store"});
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code(), Code::kNotSupported);
}

TEST_F(StoreTest, ChunkSinkRefusesBytesThatDoNotMatchTheDigest) {
  Store store = OpenStore();
  StoreChunkSink sink(store);
  auto data = Bytes("chunk");
  Digest wrong = Sha256Of(std::string_view("nope"));
  auto s = sink.PutChunk(wrong, data, {});
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), Code::kVerificationFailed);
  ASSERT_TRUE(sink.PutChunk(Sha256Of(data), data, {}).has_value());
  StoreChunkSource source(store);
  auto back = source.ReadChunk(Sha256Of(data));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, data);
}

}  // namespace
}  // namespace egg
