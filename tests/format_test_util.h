// Helpers for the format tests: temporary folders, files, and an
// independent assembler that lays out egg bytes from hand-made sections so
// that hostile eggs can be built without going through WriteEgg.
#ifndef EGG_TESTS_FORMAT_TEST_UTIL_H_
#define EGG_TESTS_FORMAT_TEST_UTIL_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "egg/egg.h"
#include "temp_dir.h"

namespace egg::testing {

using egg_test::TempDir;

void WriteText(const std::string& path, std::string_view data,
               int mode = 0644);
std::string ReadText(const std::string& path);
// Runs `cmd` with /bin/sh; returns its exit status (-1 when it did not
// exit) and, if asked, what it printed on stdout.
int Shell(const std::string& cmd, std::string* out = nullptr);
std::vector<uint8_t> ReadBytes(const std::string& path);
void WriteBytes(const std::string& path, const std::vector<uint8_t>& data);

// Bytes in an anonymous in-memory file, reachable by path() while the
// object lives. For the many small eggs of the corruption tests.
class MemFile {
 public:
  MemFile();
  ~MemFile();
  void Set(const std::vector<uint8_t>& data);
  std::string path() const;

 private:
  int fd_;
};

// Deterministic pseudo-random bytes.
std::string RandomBytes(size_t n, uint64_t seed);

// One raw tree entry, encoded without validation.
struct RawEntry {
  std::string path;
  uint8_t kind = 1;
  uint16_t mode = 0644;
  uint64_t size = 0;
  std::string target;
  std::vector<Digest> chunks;
};
std::vector<uint8_t> EncodeRawTree(const std::vector<RawEntry>& entries);

// An egg assembled from parts. Frames are laid out in `frames` order;
// `index` is written as given (sorted by the caller, or not).
struct RawEgg {
  std::string manifest_json = "{}";
  std::string notebook_json = "{}";
  std::vector<std::pair<std::string, std::vector<uint8_t>>> trees;
  std::vector<std::vector<uint8_t>> frames;
  std::vector<ChunkEntry> index;
  std::vector<uint8_t> signatures;
};

// Adds chunk `raw` as a new frame with a correct index entry and returns
// its digest. Call SortIndex afterwards.
Digest AddChunk(RawEgg& egg, const std::string& raw);
void SortIndex(RawEgg& egg);
std::vector<uint8_t> Assemble(const RawEgg& egg);

}  // namespace egg::testing

#endif  // EGG_TESTS_FORMAT_TEST_UTIL_H_
