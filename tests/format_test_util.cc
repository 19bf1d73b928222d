#include "format_test_util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

#include "common/bytes.h"

namespace egg::testing {

void WriteText(const std::string& path, std::string_view data, int mode) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  out.close();
  ::chmod(path.c_str(), static_cast<mode_t>(mode));
}

int Shell(const std::string& cmd, std::string* out) {
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  int status = pclose(p);
  if (out) *out = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::string s = ReadText(path);
  return std::vector<uint8_t>(s.begin(), s.end());
}

void WriteBytes(const std::string& path, const std::vector<uint8_t>& data) {
  WriteText(path, std::string(data.begin(), data.end()));
}

MemFile::MemFile() : fd_(::memfd_create("egg-test", MFD_CLOEXEC)) {
  if (fd_ < 0) throw std::runtime_error("memfd_create");
}

MemFile::~MemFile() { ::close(fd_); }

void MemFile::Set(const std::vector<uint8_t>& data) {
  if (::ftruncate(fd_, 0) != 0 ||
      ::pwrite(fd_, data.data(), data.size(), 0) !=
          static_cast<ssize_t>(data.size())) {
    throw std::runtime_error("memfd write");
  }
}

std::string MemFile::path() const {
  return "/proc/self/fd/" + std::to_string(fd_);
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    for (size_t k = 0; k < 8 && i + k < n; ++k) {
      out[i + k] = static_cast<char>(v >> (8 * k));
    }
  }
  return out;
}

std::vector<uint8_t> EncodeRawTree(const std::vector<RawEntry>& entries) {
  ByteWriter w;
  w.Bytes(std::string_view("EGGR"));
  w.Le32(0);
  w.Le64(entries.size());
  for (const RawEntry& e : entries) {
    w.Le16(static_cast<uint16_t>(e.path.size()));
    w.Bytes(e.path);
    w.U8(e.kind);
    w.U8(0);
    w.Le16(e.mode);
    w.Le64(e.size);
    if (e.kind == 3) w.Bytes(e.target);
    if (e.kind == 1) {
      w.Le32(static_cast<uint32_t>(e.chunks.size()));
      for (const Digest& d : e.chunks) w.Bytes(d);
    }
  }
  return std::move(w.buffer());
}

Digest AddChunk(RawEgg& egg, const std::string& raw) {
  std::vector<uint8_t> frame(ZSTD_compressBound(raw.size()));
  frame.resize(ZSTD_compress(frame.data(), frame.size(), raw.data(),
                             raw.size(), 3));
  uint64_t offset = 0;
  for (const auto& f : egg.frames) offset += f.size();
  ChunkEntry e;
  e.raw = Sha256Of(raw);
  e.frame = Sha256Of(frame);
  e.offset = offset;
  e.frame_length = static_cast<uint32_t>(frame.size());
  e.raw_length = static_cast<uint32_t>(raw.size());
  egg.frames.push_back(std::move(frame));
  egg.index.push_back(e);
  return e.raw;
}

void SortIndex(RawEgg& egg) {
  std::sort(egg.index.begin(), egg.index.end(),
            [](const ChunkEntry& a, const ChunkEntry& b) {
              return a.raw < b.raw;
            });
}

namespace {

void Entry(ByteWriter& w, uint64_t offset, uint64_t length,
           const Digest& digest) {
  w.Le64(offset);
  w.Le64(length);
  w.Bytes(digest);
}

}  // namespace

std::vector<uint8_t> Assemble(const RawEgg& egg) {
  // Section bytes.
  std::vector<uint8_t> blocks;
  for (const auto& f : egg.frames) blocks.insert(blocks.end(), f.begin(),
                                                 f.end());
  ByteWriter index;
  index.Bytes(std::string_view("EGGI"));
  index.Le32(0);
  index.Le64(egg.index.size());
  for (const ChunkEntry& e : egg.index) {
    index.Bytes(e.raw);
    index.Bytes(e.frame);
    index.Le64(e.offset);
    index.Le32(e.frame_length);
    index.Le32(e.raw_length);
  }
  std::vector<const ChunkEntry*> by_offset;
  for (const ChunkEntry& e : egg.index) by_offset.push_back(&e);
  std::stable_sort(by_offset.begin(), by_offset.end(),
                   [](const ChunkEntry* a, const ChunkEntry* b) {
                     return a->offset < b->offset;
                   });
  Sha256 blocks_hash;
  blocks_hash.Update(std::string_view("egg-blocks-v1"));
  for (const ChunkEntry* e : by_offset) blocks_hash.Update(e->frame);
  Digest blocks_digest = blocks_hash.Finish();

  // Offsets.
  uint64_t manifest_len =
      160 + 80 * egg.trees.size() + egg.manifest_json.size();
  uint64_t nb_off = 64 + manifest_len;
  uint64_t blocks_off = nb_off + egg.notebook_json.size();
  uint64_t pos = blocks_off + blocks.size();
  std::vector<uint64_t> tree_offs;
  for (const auto& t : egg.trees) {
    tree_offs.push_back(pos);
    pos += t.second.size();
  }
  uint64_t index_off = pos;
  pos += index.size();
  uint64_t sig_off = pos;
  uint64_t total = sig_off + egg.signatures.size() + 64;

  ByteWriter w;
  w.Bytes(std::string_view("EGGF"));
  w.U8(1);
  w.U8(0);
  w.Le16(0);
  w.Le64(64);
  w.Le64(nb_off);
  w.Le64(blocks_off);
  w.Zeros(32);
  w.Bytes(std::string_view("EGGM"));
  w.Le32(static_cast<uint32_t>(egg.trees.size()));
  w.Le64(egg.manifest_json.size());
  Entry(w, nb_off, egg.notebook_json.size(), Sha256Of(egg.notebook_json));
  Entry(w, blocks_off, blocks.size(), blocks_digest);
  Entry(w, index_off, index.size(), Sha256Of(index.buffer()));
  for (size_t i = 0; i < egg.trees.size(); ++i) {
    std::string name = egg.trees[i].first;
    name.resize(32, '\0');
    w.Bytes(name);
    Entry(w, tree_offs[i], egg.trees[i].second.size(),
          Sha256Of(egg.trees[i].second));
  }
  w.Bytes(egg.manifest_json);
  w.Bytes(egg.notebook_json);
  w.Bytes(blocks);
  for (const auto& t : egg.trees) w.Bytes(t.second);
  w.Bytes(index.buffer());
  w.Bytes(egg.signatures);
  w.Bytes(std::string_view("EGGT"));
  w.U8(1);
  w.U8(0);
  w.Le16(0);
  w.Le64(sig_off);
  w.Le64(egg.signatures.size());
  w.Le64(total);
  w.Zeros(32);
  return std::move(w.buffer());
}

}  // namespace egg::testing
