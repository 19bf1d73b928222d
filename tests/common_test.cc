#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <utility>

#include "common/atomic_file.h"
#include "common/base64.h"
#include "common/bytes.h"
#include "common/text.h"
#include "egg/hash.h"

namespace egg {
namespace {

TEST(Base64, MatchesRfc4648Vectors) {
  const std::pair<std::string, std::string> vectors[] = {
      {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
      {"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(Base64Encode(plain), encoded);
    for (Base64Mode mode : {Base64Mode::kStrict, Base64Mode::kLenient}) {
      auto back = Base64Decode(encoded, mode);
      ASSERT_TRUE(back) << encoded;
      EXPECT_EQ(*back, plain);
    }
  }
  EXPECT_EQ(Base64EncodeUnpadded("f"), "Zg");
}

TEST(Base64, RoundTripsEveryByteValue) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t n = 0; n <= all.size(); n += 37) {
    auto back = Base64Decode(Base64Encode(all.substr(0, n)));
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, all.substr(0, n));
  }
}

TEST(Base64, StrictRefusesEveryNonCanonicalText) {
  for (const char* bad : {"a", "ab", "abc", "ab=c", "====", "YQ==YQ==",
                          "Y Q==", "YQ=", "Zh==", "Zm9=", "Zg==\n", "Zm$v",
                          "=Zm9", "Zm9vY==="}) {
    EXPECT_FALSE(Base64Decode(bad, Base64Mode::kStrict)) << bad;
  }
}

TEST(Base64, LenientSkipsSpaceAndMissingPaddingButNotGarbage) {
  auto wrapped = Base64Decode("Zm9v\nYmFy\n", Base64Mode::kLenient);
  ASSERT_TRUE(wrapped);
  EXPECT_EQ(*wrapped, "foobar");
  auto unpadded = Base64Decode("Zm9vYg", Base64Mode::kLenient);
  ASSERT_TRUE(unpadded);
  EXPECT_EQ(*unpadded, "foob");
  for (const char* bad : {"a", "Zm9vY", "ab$c", "Zg==Zg", "Zg=", "===="}) {
    EXPECT_FALSE(Base64Decode(bad, Base64Mode::kLenient)) << bad;
  }
}

TEST(JsonNesting, CountsBracketsOutsideStringsOnly) {
  EXPECT_TRUE(JsonNestingWithin("[[1]]", 2));
  EXPECT_FALSE(JsonNestingWithin("[[[1]]]", 2));
  EXPECT_TRUE(JsonNestingWithin(R"({"a": "[[[[[[", "b": [1]})", 2));
  EXPECT_TRUE(JsonNestingWithin(R"(["\"[[[[["])", 1));
  EXPECT_FALSE(JsonNestingWithin(std::string(100000, '['), 64));
  EXPECT_TRUE(JsonNestingWithin("", 0));
}

TEST(Hash, MatchesKnownVector) {
  EXPECT_EQ(DigestHex(Sha256Of(std::string_view("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Hash, ParseDigestRejectsUpperCaseAndWrongLength) {
  EXPECT_FALSE(ParseDigest("ABC").has_value());
  std::string upper(64, 'A');
  EXPECT_FALSE(ParseDigest(upper).has_value());
  auto d = ParseDigest("sha256:" + std::string(64, 'f'));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ((*d)[0], 0xff);
}

TEST(ByteReader, FailsPastTheEndInsteadOfReading) {
  uint8_t data[3] = {1, 2, 3};
  ByteReader r(data);
  EXPECT_EQ(r.Le16(), 0x0201);
  EXPECT_EQ(r.Le32(), 0u);
  EXPECT_FALSE(r.ok());
}

TEST(Text, EscapesTerminalControlAndInvalidUtf8) {
  EXPECT_EQ(EscapeForTerminal("a\x1b[2Jb"), "a\\x1b[2Jb");
  EXPECT_EQ(EscapeForTerminal("\xff"), "\\xff");
  EXPECT_EQ(EscapeForTerminal("caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_EQ(EscapeForTerminal("\xc2\x9b"), "\\x9b");  // C1 CSI
  EXPECT_FALSE(IsPrintableUtf8("x\x07"));
  EXPECT_TRUE(IsPrintableUtf8("plain text"));
}

TEST(AtomicFile, LeavesNothingWhenNotCommitted) {
  char dir[] = "/tmp/egg-atomic-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string target = std::string(dir) + "/out";
  {
    auto f = AtomicFile::Create(target, 0600, false);
    ASSERT_TRUE(f.has_value());
    ASSERT_TRUE(WriteAll(f->fd(), std::string_view("half")).has_value());
  }
  EXPECT_NE(access(target.c_str(), F_OK), 0);
  ASSERT_EQ(rmdir(dir), 0);  // fails if a temporary file was left
}

TEST(AtomicFile, RefusesToOverwriteWithoutForce) {
  char dir[] = "/tmp/egg-atomic-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string target = std::string(dir) + "/out";
  ASSERT_TRUE(WriteFileAtomic(target, "one", 0600, false).has_value());
  auto again = WriteFileAtomic(target, "two", 0600, false);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code(), Code::kInvalidArgument);
  struct stat st;
  ASSERT_EQ(stat(target.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, 3);
  unlink(target.c_str());
  rmdir(dir);
}

// A link is replaced by the new file, never followed; one that leads to
// a device, a folder or a FIFO is refused before anything is written
// (`-o /dev/stdout` as root would have replaced the system's link).
TEST(AtomicFile, RefusesALinkToAnythingButARegularFile) {
  char dir[] = "/tmp/egg-atomic-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string d = dir;
  ASSERT_EQ(symlink("/dev/null", (d + "/dev").c_str()), 0);
  ASSERT_EQ(symlink("/tmp", (d + "/folder").c_str()), 0);
  ASSERT_TRUE(WriteFileAtomic(d + "/regular", "one", 0600, false));
  ASSERT_EQ(symlink((d + "/regular").c_str(), (d + "/file").c_str()), 0);
  ASSERT_EQ(symlink((d + "/nothing").c_str(), (d + "/dangling").c_str()), 0);

  for (const char* bad : {"/dev", "/folder"}) {
    auto s = CheckWritableTarget(d + bad);
    ASSERT_FALSE(s.has_value()) << bad;
    EXPECT_NE(s.error().message().find("a link to"), std::string::npos)
        << s.error().message();
    EXPECT_FALSE(WriteFileAtomic(d + bad, "x", 0600, true).has_value());
    struct stat st;
    ASSERT_EQ(lstat((d + bad).c_str(), &st), 0);
    EXPECT_TRUE(S_ISLNK(st.st_mode)) << bad;
  }
  for (const char* good : {"/file", "/dangling"}) {
    EXPECT_TRUE(CheckWritableTarget(d + good).has_value()) << good;
    EXPECT_TRUE(WriteFileAtomic(d + good, "two", 0600, true).has_value());
    struct stat st;
    ASSERT_EQ(lstat((d + good).c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode)) << good;
  }
  for (const char* name : {"/dev", "/folder", "/regular", "/file",
                           "/dangling"}) {
    unlink((d + name).c_str());
  }
  EXPECT_EQ(rmdir(dir), 0);
}

}  // namespace
}  // namespace egg
