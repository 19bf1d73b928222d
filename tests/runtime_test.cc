#include <gtest/gtest.h>

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <clocale>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "common/atomic_file.h"
#include "common/fd.h"
#include "egg/runtime.h"
#include "egg/store.h"
#include "store/fs_util.h"

namespace egg {
namespace {

void WriteText(const std::string& path, const std::string& text,
               int mode = 0644) {
  ASSERT_TRUE(WriteFileAtomic(path, text, mode, true).has_value()) << path;
}

std::string ReadText(const std::string& path) {
  auto text = ReadFileToString(path);
  return text ? *text : "<unreadable>";
}

// One tar entry for the hostile-tarball tests.
struct TarEntry {
  std::string name;
  mode_t type = AE_IFREG;
  int mode = 0644;
  std::string data;
  std::string symlink;   // AE_IFLNK target
  std::string hardlink;  // hard link target
};

void WriteTar(const std::string& path, const std::vector<TarEntry>& entries) {
  struct archive* a = archive_write_new();
  ASSERT_EQ(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
  ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK);
  for (const auto& t : entries) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, t.name.c_str());
    archive_entry_set_filetype(e, t.type);
    archive_entry_set_perm(e, static_cast<mode_t>(t.mode));
    if (t.type == AE_IFCHR) archive_entry_set_rdev(e, makedev(1, 3));
    if (!t.symlink.empty()) archive_entry_set_symlink(e, t.symlink.c_str());
    if (!t.hardlink.empty()) {
      archive_entry_set_hardlink(e, t.hardlink.c_str());
      archive_entry_set_size(e, 0);
    } else {
      archive_entry_set_size(e, static_cast<la_int64_t>(t.data.size()));
    }
    ASSERT_EQ(archive_write_header(a, e), ARCHIVE_OK) << t.name;
    if (!t.data.empty()) {
      archive_write_data(a, t.data.data(), t.data.size());
    }
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
}

class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/egg-runtime-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    auto store = Store::Open({.root = dir_ + "/store"});
    ASSERT_TRUE(store.has_value()) << store.error().message();
    store_ = std::make_unique<Store>(std::move(*store));
  }
  void TearDown() override {
    store_.reset();
    ASSERT_TRUE(RemoveTree(dir_).has_value());
  }

  // A small root: folders, files, an executable, relative and absolute
  // symlinks, a hard link.
  std::string MakeRoot(const std::string& name, bool reversed = false) {
    std::string r = dir_ + "/" + name;
    EXPECT_TRUE(MakeDirs(r + "/usr/bin", 0755).has_value());
    EXPECT_TRUE(MakeDirs(r + "/etc/alternatives", 0700).has_value());
    std::vector<std::function<void()>> steps = {
        [&] { WriteText(r + "/usr/bin/tool", "#!/bin/sh\necho hi\n", 0755); },
        [&] { WriteText(r + "/etc/config", "key = value\n", 0600); },
        [&] { WriteText(r + "/etc/big", std::string(300000, 'q')); },
        [&] {
          ASSERT_EQ(symlink("/usr/bin/tool",
                            (r + "/etc/alternatives/tool").c_str()),
                    0);
        },
        [&] { ASSERT_EQ(symlink("usr/bin", (r + "/bin").c_str()), 0); },
    };
    if (reversed) std::reverse(steps.begin(), steps.end());
    for (auto& s : steps) s();
    EXPECT_EQ(link((r + "/etc/config").c_str(), (r + "/etc/config2").c_str()),
              0);
    return r;
  }

  void ExpectNothingStored() {
    auto list = store_->List();
    ASSERT_TRUE(list.has_value());
    for (const auto& e : *list) EXPECT_NE(e.kind, ObjectKind::kTree);
    auto temps = ListDir(store_->TempDir());
    ASSERT_TRUE(temps.has_value());
    EXPECT_TRUE(temps->empty());
  }

  Status ImportTar(const std::vector<TarEntry>& entries,
                   ImportOptions options = {}) {
    std::string tar = dir_ + "/in.tar";
    ::unlink(tar.c_str());
    WriteTar(tar, entries);
    auto info = ImportRuntimeTar(*store_, tar, options);
    if (!info) return Fail(info.error());
    return {};
  }

  std::string dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(RuntimeTest, FolderImportIsDeterministic) {
  std::string a = MakeRoot("a");
  std::string b = MakeRoot("b", true);
  ASSERT_EQ(chmod((b + "/etc/config").c_str(), 0640), 0);
  auto ia = ImportRuntimeFolder(*store_, a);
  auto ib = ImportRuntimeFolder(*store_, b);
  ASSERT_TRUE(ia.has_value()) << ia.error().message();
  ASSERT_TRUE(ib.has_value()) << ib.error().message();
  EXPECT_EQ(ia->digest, ib->digest);
  EXPECT_EQ(ia->files, 4u);
  EXPECT_TRUE(ia->kept);

  // A changed byte changes the digest.
  WriteText(b + "/etc/config", "key = valuf\n");
  auto ic = ImportRuntimeFolder(*store_, b);
  ASSERT_TRUE(ic.has_value());
  EXPECT_NE(ic->digest, ia->digest);
}

TEST_F(RuntimeTest, AbsoluteSymlinkResolvesInsideTheRuntime) {
  std::string r = MakeRoot("r");
  auto info = ImportRuntimeFolder(*store_, r);
  ASSERT_TRUE(info.has_value());
  std::string out = dir_ + "/out";
  ASSERT_TRUE(ExportTree(*store_, info->digest, out).has_value());
  char target[256] = {};
  ASSERT_GT(readlink((out + "/etc/alternatives/tool").c_str(), target,
                     sizeof target - 1),
            0);
  EXPECT_STREQ(target, "../../usr/bin/tool");
  EXPECT_EQ(ReadText(out + "/etc/alternatives/tool"), "#!/bin/sh\necho hi\n");
}

TEST_F(RuntimeTest, FolderImportRefusesFifo) {
  std::string r = MakeRoot("r");
  ASSERT_EQ(mkfifo((r + "/etc/pipe").c_str(), 0644), 0);
  auto info = ImportRuntimeFolder(*store_, r);
  ASSERT_FALSE(info.has_value());
  EXPECT_EQ(info.error().code(), Code::kInvalidArgument);
  EXPECT_NE(info.error().message().find("pipe"), std::string::npos);
}

TEST_F(RuntimeTest, FolderImportRefusesSetuidUnlessStripped) {
  std::string r = MakeRoot("r");
  ASSERT_EQ(chmod((r + "/usr/bin/tool").c_str(), 04755), 0);
  auto info = ImportRuntimeFolder(*store_, r);
  ASSERT_FALSE(info.has_value());
  EXPECT_EQ(info.error().code(), Code::kInvalidArgument);
  EXPECT_NE(info.error().message().find("tool"), std::string::npos);
  auto stripped = ImportRuntimeFolder(*store_, r, {.strip_setuid = true});
  ASSERT_TRUE(stripped.has_value());
}

TEST_F(RuntimeTest, FolderImportRefusesLinkLeavingTheRoot) {
  std::string r = MakeRoot("r");
  ASSERT_EQ(symlink("../../../../../../etc/shadow",
                    (r + "/usr/bin/escape").c_str()),
            0);
  auto info = ImportRuntimeFolder(*store_, r);
  ASSERT_FALSE(info.has_value());
  EXPECT_EQ(info.error().code(), Code::kInvalidArgument);
}

TEST_F(RuntimeTest, TarballWithAbsoluteNameIsRefused) {
  auto s = ImportTar({{.name = "/etc/passwd", .data = "x"}});
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
  EXPECT_NE(s.error().message().find("/etc/passwd"), std::string::npos);
  ExpectNothingStored();
}

TEST_F(RuntimeTest, TarballWithDotDotIsRefused) {
  auto s = ImportTar({{.name = "a", .type = AE_IFDIR, .mode = 0755},
                      {.name = "a/../../escape", .data = "x"}});
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
  EXPECT_NE(s.error().message().find("escape"), std::string::npos);
  ExpectNothingStored();
}

TEST_F(RuntimeTest, TarballWithSymlinkOutOfTheRootIsRefused) {
  auto s = ImportTar(
      {{.name = "lib", .type = AE_IFLNK, .mode = 0777,
        .symlink = "../../../etc"}});
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
  EXPECT_NE(s.error().message().find("lib"), std::string::npos);
  ExpectNothingStored();
}

TEST_F(RuntimeTest, TarballEntryThroughASymlinkIsRefused) {
  auto s = ImportTar(
      {{.name = "etc", .type = AE_IFLNK, .mode = 0777, .symlink = "/tmp"},
       {.name = "etc/planted", .data = "x"}});
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
  EXPECT_NE(s.error().message().find("planted"), std::string::npos);
  ExpectNothingStored();
}

TEST_F(RuntimeTest, TarballWithHardLinkToOutsideIsRefused) {
  auto s = ImportTar({{.name = "shadow", .hardlink = "/etc/shadow"}});
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
  EXPECT_NE(s.error().message().find("shadow"), std::string::npos);
  ExpectNothingStored();
}

TEST_F(RuntimeTest, TarballWithHardLinkToALaterEntryIsRefused) {
  auto s = ImportTar({{.name = "early", .hardlink = "late"},
                      {.name = "late", .data = "x"}});
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
  ExpectNothingStored();
}

TEST_F(RuntimeTest, TarballWithDeviceNodeIsRefused) {
  auto s = ImportTar({{.name = "null", .type = AE_IFCHR, .mode = 0666}});
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
  EXPECT_NE(s.error().message().find("device"), std::string::npos);
  ExpectNothingStored();
}

TEST_F(RuntimeTest, TarballWithFifoIsRefused) {
  auto s = ImportTar({{.name = "pipe", .type = AE_IFIFO, .mode = 0644}});
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
  ExpectNothingStored();
}

TEST_F(RuntimeTest, TarballWithSetuidIsRefusedUnlessStripped) {
  std::vector<TarEntry> entries = {{.name = "su", .mode = 04755,
                                    .data = "#!"}};
  auto s = ImportTar(entries);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
  EXPECT_NE(s.error().message().find("setuid"), std::string::npos);
  ExpectNothingStored();
  auto setgid = ImportTar({{.name = "sg", .mode = 02755, .data = "#!"}});
  ASSERT_FALSE(setgid.has_value());
  EXPECT_TRUE(ImportTar(entries, {.strip_setuid = true}).has_value());
}

TEST_F(RuntimeTest, TarballWithDuplicateEntryIsRefused) {
  auto s = ImportTar({{.name = "a", .data = "one"},
                      {.name = "./a", .data = "two"}});
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
  ExpectNothingStored();
}

TEST_F(RuntimeTest, TarballAndFolderOfTheSameRootHaveTheSameDigest) {
  std::string r = MakeRoot("r");
  auto folder = ImportRuntimeFolder(*store_, r);
  ASSERT_TRUE(folder.has_value());
  auto s = ImportTar(
      {{.name = "./", .type = AE_IFDIR, .mode = 0755},
       {.name = "./bin", .type = AE_IFLNK, .mode = 0777,
        .symlink = "usr/bin"},
       {.name = "./etc/", .type = AE_IFDIR, .mode = 0755},
       {.name = "./etc/alternatives/", .type = AE_IFDIR, .mode = 0700},
       {.name = "./etc/alternatives/tool", .type = AE_IFLNK, .mode = 0777,
        .symlink = "/usr/bin/tool"},
       {.name = "./etc/big", .data = std::string(300000, 'q')},
       {.name = "./etc/config", .mode = 0600, .data = "key = value\n"},
       {.name = "./etc/config2", .hardlink = "./etc/config"},
       {.name = "./usr/bin/tool", .mode = 0755,
        .data = "#!/bin/sh\necho hi\n"}});
  ASSERT_TRUE(s.has_value()) << s.error().message();
  auto runtimes = ListRuntimes(*store_);
  ASSERT_TRUE(runtimes.has_value());
  ASSERT_EQ(runtimes->size(), 1u);
  EXPECT_EQ((*runtimes)[0].digest, folder->digest);
  EXPECT_EQ((*runtimes)[0].source, "tar");
}

TEST_F(RuntimeTest, MaterialisedRootHasTheTreeContentAndIsReused) {
  std::string r = MakeRoot("r");
  auto info = ImportRuntimeFolder(*store_, r);
  ASSERT_TRUE(info.has_value());
  auto path = MaterialiseRuntime(*store_, info->digest);
  ASSERT_TRUE(path.has_value()) << path.error().message();
  EXPECT_EQ(ReadText(*path + "/etc/config"), "key = value\n");
  EXPECT_EQ(ReadText(*path + "/bin/tool"), "#!/bin/sh\necho hi\n");
  struct stat st;
  ASSERT_EQ(stat((*path + "/usr/bin/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(stat((*path + "/etc/config").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  ASSERT_EQ(stat(path->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 022, 0u);
  ino_t inode = st.st_ino;

  // A second call finds it done and does not extract again.
  auto again = MaterialiseRuntime(*store_, info->digest);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, *path);
  ASSERT_EQ(stat(again->c_str(), &st), 0);
  EXPECT_EQ(st.st_ino, inode);
}

TEST_F(RuntimeTest, ConcurrentMaterialisationsExtractOnceAndAllSucceed) {
  std::string r = MakeRoot("r");
  auto info = ImportRuntimeFolder(*store_, r);
  ASSERT_TRUE(info.has_value());
  std::string root = store_->root();
  std::vector<pid_t> children;
  for (int i = 0; i < 4; ++i) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto store = Store::Open({.root = root});
      if (!store) _exit(2);
      auto path = MaterialiseRuntime(*store, info->digest);
      if (!path) _exit(3);
      auto text = ReadFileToString(*path + "/etc/big");
      _exit(text && *text == std::string(300000, 'q') ? 0 : 4);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
  auto temps = ListDir(store_->TempDir());
  ASSERT_TRUE(temps.has_value());
  EXPECT_TRUE(temps->empty());
}

TEST_F(RuntimeTest, MaterialisationRefusesADamagedChunkAndLeavesNothing) {
  std::string r = MakeRoot("r");
  auto info = ImportRuntimeFolder(*store_, r);
  ASSERT_TRUE(info.has_value());
  Digest config = Sha256Of(std::string_view("key = value\n"));
  std::string object = store_->ObjectPath(ObjectKind::kChunk, config);
  auto other = store_->GetFrame(ObjectKind::kChunk,
                                Sha256Of(std::string_view(
                                    "#!/bin/sh\necho hi\n")));
  ASSERT_TRUE(other.has_value());
  ASSERT_TRUE(WriteFileAtomic(object,
                              std::string(other->begin(), other->end()),
                              0444, true)
                  .has_value());
  auto path = MaterialiseRuntime(*store_, info->digest);
  ASSERT_FALSE(path.has_value());
  EXPECT_EQ(path.error().code(), Code::kCorruption);
  EXPECT_NE(access(store_->MaterialisedPath(info->digest).c_str(), F_OK), 0);
  auto temps = ListDir(store_->TempDir());
  ASSERT_TRUE(temps.has_value());
  EXPECT_TRUE(temps->empty());

  // Importing again repairs the chunk; materialisation then works.
  ASSERT_TRUE(ImportRuntimeFolder(*store_, r).has_value());
  EXPECT_TRUE(MaterialiseRuntime(*store_, info->digest).has_value());
}

TEST_F(RuntimeTest, UnfinishedMaterialisationIsRedone) {
  std::string r = MakeRoot("r");
  auto info = ImportRuntimeFolder(*store_, r);
  ASSERT_TRUE(info.has_value());
  std::string target = store_->MaterialisedPath(info->digest);
  ASSERT_TRUE(MakeDirs(target + "/etc", 0755).has_value());
  WriteText(target + "/etc/config", "planted\n");
  auto path = MaterialiseRuntime(*store_, info->digest);
  ASSERT_TRUE(path.has_value());
  EXPECT_EQ(ReadText(*path + "/etc/config"), "key = value\n");
}

TEST_F(RuntimeTest, ExportRefusesAnExistingFolder) {
  std::string r = MakeRoot("r");
  auto info = ImportRuntimeFolder(*store_, r);
  ASSERT_TRUE(info.has_value());
  auto s = ExportTree(*store_, info->digest, r);
  ASSERT_FALSE(s.has_value());
}

TEST_F(RuntimeTest, GcKeepsKeptRuntimesAndDropsUnkeptOnes) {
  std::string a = MakeRoot("a");
  auto kept = ImportRuntimeFolder(*store_, a);
  ASSERT_TRUE(kept.has_value());
  WriteText(dir_ + "/other", "x");
  std::string b = dir_ + "/b";
  ASSERT_TRUE(MakeDirs(b, 0755).has_value());
  WriteText(b + "/only-here", "unique content\n");
  auto loose = ImportRuntimeFolder(*store_, b, {.keep = false});
  ASSERT_TRUE(loose.has_value());
  ASSERT_TRUE(MaterialiseRuntime(*store_, loose->digest).has_value());

  auto stats = store_->Gc(&RuntimeTreeReferences);
  ASSERT_TRUE(stats.has_value()) << stats.error().message();
  EXPECT_TRUE(MaterialiseRuntime(*store_, kept->digest).has_value());
  EXPECT_FALSE(store_->Has(ObjectKind::kTree, loose->digest));
  EXPECT_FALSE(store_->Has(ObjectKind::kChunk,
                           Sha256Of(std::string_view("unique content\n"))));
  EXPECT_NE(access(store_->MaterialisedPath(loose->digest).c_str(), F_OK),
            0);
  auto shown = ShowRuntime(*store_, loose->digest);
  ASSERT_FALSE(shown.has_value());
  EXPECT_EQ(shown.error().code(), Code::kNotFound);
}

TEST_F(RuntimeTest, TreeFromAnotherSourceIsMaterialisedAndVerified) {
  std::string r = MakeRoot("r");
  auto other = Store::Open({.root = dir_ + "/other-store"});
  ASSERT_TRUE(other.has_value());
  auto info = ImportRuntimeFolder(*other, r);
  ASSERT_TRUE(info.has_value());
  auto encoded = other->Get(ObjectKind::kTree, info->digest);
  ASSERT_TRUE(encoded.has_value());
  auto tree = DecodeTree(*encoded);
  ASSERT_TRUE(tree.has_value());

  StoreChunkSource source(*other);
  auto path = MaterialiseTree(*store_, *tree, source);
  ASSERT_TRUE(path.has_value()) << path.error().message();
  EXPECT_EQ(*path, store_->MaterialisedPath(info->digest));
  EXPECT_EQ(ReadText(*path + "/etc/config"), "key = value\n");
  EXPECT_TRUE(store_->Has(ObjectKind::kTree, info->digest));
}

// Runs the egg binary; returns its exit code and stdout.
std::pair<int, std::string> RunEgg(const std::string& args) {
  const char* bin = std::getenv("EGG_BIN");
  if (bin == nullptr) return {-1, ""};
  std::string cmd = std::string(bin) + " " + args + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return {-1, ""};
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// Debian's packages hold file names outside ASCII; the tarball carries
// them as UTF-8 in pax headers, which the egg command must read whatever
// the caller's locale.
TEST_F(RuntimeTest, CliImportsATarballWithNonAsciiNamesInTheCLocale) {
  if (std::getenv("EGG_BIN") == nullptr) GTEST_SKIP() << "EGG_BIN not set";
  std::string tar = dir_ + "/utf8.tar";
  // Written in a UTF-8 locale (libarchive's pax writer needs one for such
  // names); read back by egg in the "C" locale below.
  ASSERT_NE(std::setlocale(LC_CTYPE, "C.UTF-8"), nullptr);
  struct archive* a = archive_write_new();
  ASSERT_EQ(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
  ASSERT_EQ(archive_write_open_filename(a, tar.c_str()), ARCHIVE_OK);
  for (const char* name : {"usr/caf\xc3\xa9.txt", "usr/\xe6\x97\xa5.txt"}) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, 3);
    ASSERT_EQ(archive_write_header(a, e), ARCHIVE_OK) << name;
    archive_write_data(a, "hi\n", 3);
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  std::setlocale(LC_CTYPE, "C");
  std::string store = " --store " + dir_ + "/utf8-store";
  ::setenv("LC_ALL", "C", 1);
  auto [code, out] = RunEgg("runtime import-tar " + tar + store);
  ::unsetenv("LC_ALL");
  ASSERT_EQ(code, 0) << out;
  std::string digest = out.substr(0, out.find('\n'));
  auto [mat_code, path] = RunEgg("runtime materialise " + digest + store);
  ASSERT_EQ(mat_code, 0);
  EXPECT_EQ(ReadText(path.substr(0, path.find('\n')) + "/usr/caf\xc3\xa9.txt"),
            "hi\n");
}

TEST_F(RuntimeTest, CliImportsListsMaterialisesAndVerifies) {
  if (std::getenv("EGG_BIN") == nullptr) GTEST_SKIP() << "EGG_BIN not set";
  std::string r = MakeRoot("r");
  std::string store = " --store " + dir_ + "/cli-store";
  auto [code, out] = RunEgg("runtime import-folder " + r + store);
  ASSERT_EQ(code, 0);
  ASSERT_EQ(out.rfind("sha256:", 0), 0u);
  std::string digest = out.substr(0, out.find('\n'));

  auto [ls_code, ls] = RunEgg("runtime ls" + store);
  EXPECT_EQ(ls_code, 0);
  EXPECT_NE(ls.find(digest), std::string::npos);
  auto [mat_code, path] = RunEgg("runtime materialise " + digest + store);
  EXPECT_EQ(mat_code, 0);
  EXPECT_EQ(ReadText(path.substr(0, path.find('\n')) + "/etc/config"),
            "key = value\n");
  EXPECT_EQ(RunEgg("store verify" + store).first, 0);

  // A damaged object makes verify exit 1 and is removed.
  Digest config = Sha256Of(std::string_view("key = value\n"));
  auto opened = Store::Open({.root = dir_ + "/cli-store"});
  ASSERT_TRUE(opened.has_value());
  std::string object = opened->ObjectPath(ObjectKind::kChunk, config);
  ASSERT_TRUE(WriteFileAtomic(object, "junk", 0444, true).has_value());
  EXPECT_EQ(RunEgg("store verify" + store).first, 1);
  EXPECT_FALSE(opened->Has(ObjectKind::kChunk, config));

  EXPECT_EQ(RunEgg("runtime show not-a-digest" + store).first, 2);
  EXPECT_EQ(RunEgg("runtime import-tar " + dir_ + "/missing.tar" + store)
                .first,
            2);
}

TEST(DebianOptions, RefusesNamesThatCouldBeOptionsOrShell) {
  for (const char* bad : {"-oAPT::x", "foo;rm", "Foo", "a", "py thon",
                          "x=", "x,y"}) {
    DebianOptions o;
    o.packages = {bad};
    auto s = ValidateDebianOptions(o);
    ASSERT_FALSE(s.has_value()) << bad;
    EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
  }
  DebianOptions good;
  good.packages = {"python3", "python3-numpy", "libc6:amd64", "g++",
                   "r-base-core=4.2.2-1"};
  EXPECT_TRUE(ValidateDebianOptions(good).has_value());
}

TEST(DebianOptions, RefusesMirrorsThatAreNotPlainUris) {
  DebianOptions o;
  o.mirror = "deb http://example.invalid/debian bookworm main";
  EXPECT_FALSE(ValidateDebianOptions(o).has_value());
  o.mirror = "ftp://example.invalid";
  EXPECT_FALSE(ValidateDebianOptions(o).has_value());
  o.mirror = "http://127.0.0.1:1/debian";
  EXPECT_TRUE(ValidateDebianOptions(o).has_value());
}

TEST(DebianOptions, EpochIsFixedPerSuiteOrMustBeGiven) {
  DebianOptions o;
  auto bookworm = DebianSourceDateEpoch(o);
  ASSERT_TRUE(bookworm.has_value());
  EXPECT_EQ(*bookworm, 1686355200);
  o.suite = "sid";
  EXPECT_FALSE(DebianSourceDateEpoch(o).has_value());
  o.source_date_epoch = 1700000000;
  EXPECT_EQ(*DebianSourceDateEpoch(o), 1700000000);
}

}  // namespace
}  // namespace egg
