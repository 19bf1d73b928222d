// WriteEgg: scans or takes trees, chunks and compresses file content in a
// bounded worker pool, and writes frames in first-use order.
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "common/atomic_file.h"
#include "common/bytes.h"
#include "common/text.h"
#include "format/internal.h"

namespace egg {

Result<std::string> CanonicalJson(const nlohmann::json& value) {
  try {
    return value.dump();
  } catch (const nlohmann::json::exception& e) {
    return Fail(Code::kInvalidArgument,
                std::string("JSON cannot be serialised: ") + e.what());
  }
}

bool IsValidTreeName(std::string_view name) {
  if (name.empty() || name.size() > format_internal::kTreeNameBytes) {
    return false;
  }
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  };
  if (!alnum(name[0])) return false;
  return std::all_of(name.begin(), name.end(), [&](char c) {
    return alnum(c) || c == '.' || c == '_' || c == '-';
  });
}

namespace format_internal {

Digest BlockRegionDigest(const std::vector<const ChunkEntry*>& by_offset) {
  Sha256 h;
  h.Update(kBlocksDomain);
  for (const ChunkEntry* e : by_offset) h.Update(e->frame);
  return h.Finish();
}

std::vector<uint8_t> EncodeIndex(const std::vector<ChunkEntry>& sorted) {
  ByteWriter w;
  w.Bytes(std::string_view(kIndexMagic, 4));
  w.Le32(0);
  w.Le64(sorted.size());
  for (const ChunkEntry& e : sorted) {
    w.Bytes(e.raw);
    w.Bytes(e.frame);
    w.Le64(e.offset);
    w.Le32(e.frame_length);
    w.Le32(e.raw_length);
  }
  return std::move(w.buffer());
}

}  // namespace format_internal

namespace {

using format_internal::CompressChunk;

// Where a finished chunk's digest goes: tree, entry, in order.
struct Slot {
  size_t tree;
  size_t entry;
};

struct Job {
  Slot slot;
  std::vector<uint8_t> raw;
  std::optional<Digest> expected;  // chunks from a ChunkSource
  bool record = true;  // append the digest to the slot's chunk list
  Digest digest{};
  std::vector<uint8_t> frame;  // empty if another job claimed the digest
  Digest frame_digest{};
  Status status;
  bool done = false;
};

// A fixed pool of compression workers. Jobs are finished in submission
// order by the caller; workers may finish them in any order.
class Compressor {
 public:
  explicit Compressor(unsigned threads) {
    for (unsigned i = 0; i < threads; ++i) {
      workers_.emplace_back([this] { Run(); });
    }
  }
  ~Compressor() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  void Submit(std::shared_ptr<Job> job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(job);
    }
    work_cv_.notify_one();
  }

  void Wait(const Job& job) {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return job.done; });
  }

 private:
  void Run() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      Process(*job);
      {
        std::lock_guard<std::mutex> lock(mu_);
        job->done = true;
      }
      done_cv_.notify_all();
    }
  }

  void Process(Job& job) {
    job.digest = Sha256Of(job.raw);
    if (job.expected && job.digest != *job.expected) {
      job.status = Fail(Code::kVerificationFailed,
                        "chunk source returned wrong bytes for chunk " +
                            DigestHex(*job.expected).substr(0, 16));
      return;
    }
    {
      std::lock_guard<std::mutex> lock(claim_mu_);
      if (!claimed_.insert(job.digest).second) return;
    }
    auto frame = CompressChunk(job.raw);
    if (!frame) {
      job.status = Fail(frame.error());
      return;
    }
    job.frame = std::move(*frame);
    job.frame_digest = Sha256Of(job.frame);
  }

  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stop_ = false;
  std::mutex claim_mu_;
  std::unordered_set<Digest, DigestHash> claimed_;
  std::vector<std::thread> workers_;
};

// One tree being written.
struct PendingTree {
  std::string name;
  Tree tree;
  std::vector<std::string> host_paths;  // per entry; empty if prebuilt
  ChunkSource* source = nullptr;
};

class Writer {
 public:
  Writer(int fd, uint64_t blocks_offset, const WriteOptions& options,
         uint64_t total)
      : fd_(fd),
        pos_(blocks_offset),
        options_(options),
        total_(total),
        pool_(options.threads ? options.threads
                              : std::max(1u, std::thread::hardware_concurrency())) {}

  Status AddTree(size_t index, PendingTree& t) {
    for (size_t i = 0; i < t.tree.entries.size(); ++i) {
      TreeEntry& e = t.tree.entries[i];
      if (e.kind != EntryKind::kFile) continue;
      if (t.source == nullptr) {
        auto s = format_internal::ChunkFile(
            t.host_paths[i], e.size, [&](std::vector<uint8_t>&& raw) {
              return Submit(Slot{index, i}, std::move(raw), std::nullopt);
            });
        if (!s) return s;
        continue;
      }
      // A prebuilt tree keeps its digest list; each chunk not yet
      // submitted is read from the source and checked by a worker.
      for (const Digest& d : e.chunks) {
        if (!source_submitted_.insert(d).second) continue;
        auto raw = t.source->ReadChunk(d);
        if (!raw) return Fail(raw.error().Wrap("tree '" + t.name + "'"));
        if (auto s = Submit(Slot{index, i}, std::move(*raw), d); !s) {
          return s;
        }
      }
    }
    return {};
  }

  // Finishes every job; call once after the last AddTree.
  Status Flush(std::vector<PendingTree>& trees) {
    trees_ = &trees;
    while (!inflight_.empty()) {
      if (auto s = FinishFront(); !s) return s;
    }
    return {};
  }

  void set_trees(std::vector<PendingTree>* trees) { trees_ = trees; }
  uint64_t position() const { return pos_; }
  const std::unordered_map<Digest, ChunkEntry, DigestHash>& written() const {
    return written_;
  }
  const std::vector<const ChunkEntry*>& by_offset() const {
    return by_offset_;
  }
  uint64_t raw_bytes() const { return done_; }

 private:
  static constexpr uint64_t kMaxInflightBytes = 16ull << 20;

  Status Submit(Slot slot, std::vector<uint8_t>&& raw,
                std::optional<Digest> expected) {
    auto job = std::make_shared<Job>();
    job->slot = slot;
    job->raw = std::move(raw);
    job->expected = expected;
    job->record = !expected.has_value();
    inflight_bytes_ += job->raw.size();
    inflight_.push_back(job);
    pool_.Submit(job);
    while (inflight_bytes_ > kMaxInflightBytes) {
      if (auto s = FinishFront(); !s) return s;
    }
    return {};
  }

  Status FinishFront() {
    std::shared_ptr<Job> job = std::move(inflight_.front());
    inflight_.pop_front();
    pool_.Wait(*job);
    inflight_bytes_ -= job->raw.size();
    if (!job->status) return job->status;

    if (job->record) {
      (*trees_)[job->slot.tree].tree.entries[job->slot.entry]
          .chunks.push_back(job->digest);
    }
    done_ += job->raw.size();
    if (options_.progress) options_.progress(done_, total_);
    if (written_.count(job->digest) != 0) return {};

    // The digest was claimed by a job still in flight: compress here so
    // that the frame lands at its first use.
    if (job->frame.empty()) {
      auto frame = CompressChunk(job->raw);
      if (!frame) return Fail(frame.error());
      job->frame = std::move(*frame);
      job->frame_digest = Sha256Of(job->frame);
    }
    ChunkEntry entry;
    entry.raw = job->digest;
    entry.frame = job->frame_digest;
    entry.offset = pos_ - blocks_start_;
    entry.frame_length = static_cast<uint32_t>(job->frame.size());
    entry.raw_length = static_cast<uint32_t>(job->raw.size());
    if (auto s = WriteAll(fd_, job->frame); !s) return s;
    pos_ += job->frame.size();
    auto [it, inserted] = written_.emplace(entry.raw, entry);
    by_offset_.push_back(&it->second);
    return {};
  }

 public:
  void set_blocks_start(uint64_t start) { blocks_start_ = start; }

 private:
  int fd_;
  uint64_t pos_;
  uint64_t blocks_start_ = 0;
  const WriteOptions& options_;
  uint64_t total_;
  uint64_t done_ = 0;
  std::vector<PendingTree>* trees_ = nullptr;
  std::deque<std::shared_ptr<Job>> inflight_;
  uint64_t inflight_bytes_ = 0;
  std::unordered_set<Digest, DigestHash> source_submitted_;
  std::unordered_map<Digest, ChunkEntry, DigestHash> written_;
  std::vector<const ChunkEntry*> by_offset_;
  Compressor pool_;
};

void PutLayoutEntry(uint8_t* p, uint64_t offset, uint64_t length,
                    const Digest& digest) {
  StoreLe64(p, offset);
  StoreLe64(p + 8, length);
  std::copy(digest.begin(), digest.end(), p + 16);
}

Status CheckPrebuilt(const PendingTree& t) {
  if (t.source == nullptr) {
    return Fail(Code::kInvalidArgument,
                "tree '" + t.name + "' has neither a directory nor a source");
  }
  if (auto s = ValidateTree(t.tree); !s) {
    return Fail(Code::kInvalidArgument,
                "tree '" + t.name + "': " + s.error().message());
  }
  return {};
}

}  // namespace

Result<WriteSummary> WriteEgg(const EggInput& input,
                              const std::string& out_path,
                              const WriteOptions& options) {
  using namespace format_internal;

  // Check and canonicalise the JSON parts.
  if (!input.manifest.is_object() || !input.notebook.is_object()) {
    return Fail(Code::kInvalidArgument,
                "manifest and notebook must be JSON objects");
  }
  auto manifest_json = CanonicalJson(input.manifest);
  if (!manifest_json) return Fail(manifest_json.error().Wrap("manifest"));
  auto notebook_json = CanonicalJson(input.notebook);
  if (!notebook_json) return Fail(notebook_json.error().Wrap("notebook"));
  if (manifest_json->size() > kMaxManifestJsonBytes) {
    return Fail(Code::kInvalidArgument, "manifest JSON is too large");
  }
  if (notebook_json->size() > kMaxNotebookBytes) {
    return Fail(Code::kInvalidArgument, "notebook JSON is too large");
  }
  if (input.signatures.size() > kMaxSignatureBytes) {
    return Fail(Code::kInvalidArgument, "signature section is too large");
  }
  if (input.trees.size() > kMaxTrees) {
    return Fail(Code::kInvalidArgument, "too many trees");
  }

  // Gather trees, sorted by name.
  std::vector<PendingTree> trees;
  uint64_t total = 0;
  for (const TreeInput& in : input.trees) {
    if (!IsValidTreeName(in.name)) {
      return Fail(Code::kInvalidArgument,
                  "tree name '" + EscapeForTerminal(in.name) +
                      "' is not 1-32 of [a-z0-9._-]");
    }
    PendingTree t;
    t.name = in.name;
    if (!in.directory.empty()) {
      auto scanned = ScanMetadata(in.directory);
      if (!scanned) return Fail(scanned.error());
      for (auto& se : *scanned) {
        t.tree.entries.push_back(std::move(se.entry));
        t.host_paths.push_back(std::move(se.host_path));
      }
    } else {
      t.tree = in.tree;
      t.source = in.source;
      if (auto s = CheckPrebuilt(t); !s) return Fail(s.error());
    }
    for (const TreeEntry& e : t.tree.entries) total += e.size;
    trees.push_back(std::move(t));
  }
  std::sort(trees.begin(), trees.end(),
            [](const PendingTree& a, const PendingTree& b) {
              return a.name < b.name;
            });
  for (size_t i = 1; i < trees.size(); ++i) {
    if (trees[i].name == trees[i - 1].name) {
      return Fail(Code::kInvalidArgument,
                  "tree '" + trees[i].name + "' is given twice");
    }
  }

  // Header, manifest with placeholders, notebook.
  const uint64_t manifest_len =
      kManifestFixedSize + kTreeRefSize * trees.size() + manifest_json->size();
  const uint64_t notebook_off = kHeaderSize + manifest_len;
  const uint64_t blocks_off = notebook_off + notebook_json->size();

  ByteWriter head;
  head.Bytes(std::string_view(kHeaderMagic, 4));
  head.U8(kFormatMajor);
  head.U8(kFormatMinor);
  head.Le16(0);
  head.Le64(kHeaderSize);
  head.Le64(notebook_off);
  head.Le64(blocks_off);
  head.Zeros(32);
  head.Bytes(std::string_view(kManifestMagic, 4));
  head.Le32(static_cast<uint32_t>(trees.size()));
  head.Le64(manifest_json->size());
  head.Zeros(kLayoutEntrySize * 3 + kTreeRefSize * trees.size());
  head.Bytes(*manifest_json);
  std::vector<uint8_t>& bytes = head.buffer();

  auto file = AtomicFile::Create(out_path, 0644, options.force);
  if (!file) return Fail(file.error());
  if (auto s = WriteAll(file->fd(), bytes); !s) return Fail(s.error());
  if (auto s = WriteAll(file->fd(), *notebook_json); !s) {
    return Fail(s.error());
  }

  // Block region.
  Writer writer(file->fd(), blocks_off, options, total);
  writer.set_blocks_start(blocks_off);
  writer.set_trees(&trees);
  for (size_t i = 0; i < trees.size(); ++i) {
    if (auto s = writer.AddTree(i, trees[i]); !s) return Fail(s.error());
  }
  if (auto s = writer.Flush(trees); !s) return Fail(s.error());
  const uint64_t blocks_len = writer.position() - blocks_off;

  // Trees, checking each file's chunks add up to its size.
  WriteSummary summary;
  uint64_t pos = writer.position();
  uint8_t* layout = bytes.data() + kHeaderSize + 16;
  for (size_t i = 0; i < trees.size(); ++i) {
    for (const TreeEntry& e : trees[i].tree.entries) {
      if (e.kind != EntryKind::kFile) continue;
      uint64_t sum = 0;
      for (const Digest& d : e.chunks) {
        auto it = writer.written().find(d);
        if (it == writer.written().end()) {
          return Fail(Code::kInternal, "a chunk was not written");
        }
        sum += it->second.raw_length;
      }
      if (sum != e.size) {
        return Fail(Code::kInvalidArgument,
                    "tree '" + trees[i].name + "' entry '" +
                        EscapeForTerminal(e.path) +
                        "': chunks do not add up to its size");
      }
    }
    auto encoded = EncodeTree(trees[i].tree);
    if (!encoded) return Fail(encoded.error());
    Digest digest = TreeDigest(*encoded);
    uint8_t* ref = layout + kLayoutEntrySize * 3 + kTreeRefSize * i;
    std::copy(trees[i].name.begin(), trees[i].name.end(), ref);
    PutLayoutEntry(ref + kTreeNameBytes, pos, encoded->size(), digest);
    if (auto s = WriteAll(file->fd(), *encoded); !s) return Fail(s.error());
    pos += encoded->size();
    summary.tree_digests.emplace_back(trees[i].name, digest);
  }

  // Chunk index.
  std::vector<ChunkEntry> index;
  index.reserve(writer.written().size());
  for (const auto& [digest, entry] : writer.written()) index.push_back(entry);
  std::sort(index.begin(), index.end(),
            [](const ChunkEntry& a, const ChunkEntry& b) {
              return a.raw < b.raw;
            });
  std::vector<uint8_t> index_bytes = EncodeIndex(index);
  const uint64_t index_off = pos;
  if (auto s = WriteAll(file->fd(), index_bytes); !s) return Fail(s.error());
  pos += index_bytes.size();

  // Signature section and trailer.
  if (auto s = WriteAll(file->fd(), input.signatures); !s) {
    return Fail(s.error());
  }
  ByteWriter trailer;
  trailer.Bytes(std::string_view(kTrailerMagic, 4));
  trailer.U8(kFormatMajor);
  trailer.U8(kFormatMinor);
  trailer.Le16(0);
  trailer.Le64(pos);
  trailer.Le64(input.signatures.size());
  trailer.Le64(pos + input.signatures.size() + kTrailerSize);
  trailer.Zeros(32);
  if (auto s = WriteAll(file->fd(), trailer.buffer()); !s) {
    return Fail(s.error());
  }

  // Patch the layout table now that every section is known.
  PutLayoutEntry(layout, notebook_off, notebook_json->size(),
                 Sha256Of(*notebook_json));
  PutLayoutEntry(layout + kLayoutEntrySize, blocks_off, blocks_len,
                 BlockRegionDigest(writer.by_offset()));
  PutLayoutEntry(layout + 2 * kLayoutEntrySize, index_off, index_bytes.size(),
                 Sha256Of(index_bytes));
  std::span<const uint8_t> manifest(bytes.data() + kHeaderSize, manifest_len);
  ssize_t n = RetryEintr([&] {
    return ::pwrite(file->fd(), manifest.data(), manifest.size(),
                    static_cast<off_t>(kHeaderSize));
  });
  if (n != static_cast<ssize_t>(manifest.size())) {
    return Fail(ErrnoError("write '" + out_path + "'"));
  }
  if (auto s = file->Commit(); !s) return Fail(s.error());

  summary.content_root = ContentRootOf(manifest);
  summary.file_bytes = pos + input.signatures.size() + kTrailerSize;
  summary.raw_bytes = writer.raw_bytes();
  summary.chunk_count = index.size();
  return summary;
}

Digest ContentRootOf(std::span<const uint8_t> manifest_section) {
  Sha256 h;
  h.Update(kContentRootDomain);
  h.Update(manifest_section);
  return h.Finish();
}

}  // namespace egg
