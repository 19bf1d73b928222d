// How an egg travels through an OCI registry (docs/REGISTRY.md): one OCI
// image manifest whose config is a small JSON recipe, whose first layer is
// the egg without its block region (the "head"), and whose other layers are
// packs of zstd frames, cut per tree at content-defined boundaries so that
// the same runtime gives the same packs in every egg.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "common/atomic_file.h"
#include "common/bytes.h"
#include "common/fd.h"
#include "egg/egg.h"
#include "egg/registry.h"
#include "egg/store.h"
#include "registry/internal.h"

namespace egg {
namespace {

using nlohmann::json;
using registry_internal::DescriptorJson;
using registry_internal::ParseDescriptor;
using registry_internal::ParsePackLayers;

constexpr int kConfigVersion = 1;
constexpr std::string_view kTreeAnnotation = "vnd.egg.tree";
constexpr std::string_view kRootAnnotation = "vnd.egg.content-root";

using ChunkMap = std::unordered_map<Digest, size_t, DigestHash>;

struct Pack {
  std::string tree;
  std::vector<size_t> chunks;  // indices into the chunk index
  uint64_t size = 0;
  Digest digest{};
};

ChunkMap IndexByRaw(const std::vector<ChunkEntry>& index) {
  ChunkMap map;
  map.reserve(index.size());
  for (size_t i = 0; i < index.size(); ++i) map.emplace(index[i].raw, i);
  return map;
}

// Each tree's distinct chunks in first-use order, cut into packs.
Result<std::vector<Pack>> PlanPacks(const EggFile& egg,
                                    const ChunkMap& by_raw) {
  const auto& index = egg.chunk_index();
  std::vector<Pack> packs;
  for (const auto& [name, tree] : egg.trees()) {
    std::unordered_set<Digest, DigestHash> seen;
    Pack current{name, {}, 0, {}};
    for (const auto& entry : tree.entries) {
      for (const Digest& raw : entry.chunks) {
        if (!seen.insert(raw).second) continue;
        auto it = by_raw.find(raw);
        if (it == by_raw.end()) {
          return Fail(Code::kCorruption, "tree \"" + name + "\" names chunk " +
                                             DigestHex(raw) +
                                             " missing from the chunk index");
        }
        uint64_t len = index[it->second].frame_length;
        if (!current.chunks.empty() && current.size + len > kPackMaxBytes) {
          packs.push_back(std::move(current));
          current = Pack{name, {}, 0, {}};
        }
        current.chunks.push_back(it->second);
        current.size += len;
        if (current.size >= kPackMinBytes && raw[0] == 0) {
          packs.push_back(std::move(current));
          current = Pack{name, {}, 0, {}};
        }
      }
    }
    if (!current.chunks.empty()) packs.push_back(std::move(current));
  }
  return packs;
}

std::vector<FileExtent> PackExtents(const Pack& pack,
                                    const std::vector<ChunkEntry>& index,
                                    uint64_t blocks_offset) {
  std::vector<FileExtent> out;
  for (size_t i : pack.chunks) {
    uint64_t at = blocks_offset + index[i].offset;
    uint64_t len = index[i].frame_length;
    if (!out.empty() && out.back().offset + out.back().length == at) {
      out.back().length += len;
    } else {
      out.push_back({at, len});
    }
  }
  return out;
}

Result<Digest> HashExtents(int fd, const std::vector<FileExtent>& extents) {
  Sha256 hash;
  std::vector<uint8_t> buffer(1 << 20);
  for (const auto& e : extents) {
    for (uint64_t done = 0; done < e.length;) {
      uint64_t n = std::min<uint64_t>(buffer.size(), e.length - done);
      auto st =
          PreadExact(fd, std::span<uint8_t>(buffer.data(), n), e.offset + done);
      if (!st) return Fail(st.error());
      hash.Update(std::span<const uint8_t>(buffer.data(), n));
      done += n;
    }
  }
  return hash.Finish();
}

Status PwriteAll(int fd, std::span<const uint8_t> data, uint64_t offset) {
  while (!data.empty()) {
    ssize_t n = RetryEintr([&] {
      return ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    });
    if (n < 0) return Fail(ErrnoError("write pulled egg"));
    data = data.subspan(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return {};
}

// Threads for per-chunk work: the machine's cores, at most 4.
unsigned WorkerCount() {
  unsigned n = std::thread::hardware_concurrency();
  return std::clamp(n, 1u, 4u);
}

// Keeps the first error of several threads.
class FirstError {
 public:
  void Set(const Error& e) {
    std::lock_guard lock(mu_);
    if (!error_) error_ = e;
    failed_.store(true, std::memory_order_relaxed);
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  Status Get() {
    std::lock_guard lock(mu_);
    if (error_) return Fail(*error_);
    return {};
  }

 private:
  std::mutex mu_;
  std::optional<Error> error_;
  std::atomic<bool> failed_{false};
};

// Runs fn(i) for every i in [0, n) on WorkerCount() threads; stops at the
// first error and returns it.
Status ParallelFor(size_t n, const std::function<Status(size_t)>& fn) {
  std::atomic<size_t> next{0};
  FirstError error;
  auto work = [&] {
    for (size_t i; !error.failed() && (i = next.fetch_add(1)) < n;) {
      if (auto st = fn(i); !st) error.Set(st.error());
    }
  };
  std::vector<std::thread> threads;
  for (unsigned t = 1; t < WorkerCount(); ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  return error.Get();
}

// Frames handed over by the download thread and checked, stored and
// written by workers, so that hashing and decompression run beside the
// transfer. At most kMaxQueued bytes wait at a time.
class FramePipeline {
 public:
  struct Job {
    size_t index;
    std::vector<uint8_t> frame;
  };
  using Handler = std::function<Status(const Job&)>;

  explicit FramePipeline(Handler handler) : handler_(std::move(handler)) {
    for (unsigned t = 0; t < WorkerCount(); ++t) {
      threads_.emplace_back([this] { Work(); });
    }
  }
  ~FramePipeline() { static_cast<void>(Finish()); }

  // Queues a frame; waits while the queue is full. Fails once any worker
  // failed, with that worker's error.
  Status Submit(Job job) {
    std::unique_lock lock(mu_);
    room_.wait(lock, [&] {
      return queued_ < kMaxQueued || jobs_.empty() || error_.failed();
    });
    if (error_.failed()) {
      lock.unlock();
      return error_.Get();
    }
    queued_ += job.frame.size();
    jobs_.push_back(std::move(job));
    ready_.notify_one();
    return {};
  }

  // Waits for every queued frame; returns the first error.
  Status Finish() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
    }
    ready_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
    return error_.Get();
  }

 private:
  static constexpr uint64_t kMaxQueued = 64ull << 20;

  void Work() {
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mu_);
        ready_.wait(lock, [&] { return closed_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      if (!error_.failed()) {
        if (auto st = handler_(job); !st) error_.Set(st.error());
      }
      {
        std::lock_guard lock(mu_);
        queued_ -= job.frame.size();
      }
      room_.notify_all();
    }
  }

  Handler handler_;
  std::mutex mu_;
  std::condition_variable ready_, room_;
  std::deque<Job> jobs_;
  uint64_t queued_ = 0;
  bool closed_ = false;
  FirstError error_;
  std::vector<std::thread> threads_;
};

// The pull side's view of an egg manifest and its config.
struct Recipe {
  Descriptor config;
  Descriptor head;
  std::vector<Descriptor> pack_layers;
  Digest content_root{};
  uint64_t file_size = 0;
  uint64_t block_offset = 0;
  uint64_t block_length = 0;
  std::vector<std::vector<Digest>> pack_chunks;  // raw digests per pack
};

Status ParseManifest(const std::string& bytes, Recipe& recipe) {
  json m = json::parse(bytes, nullptr, false);
  if (m.is_discarded() || !m.is_object()) {
    return Fail(Code::kCorruption, "manifest is not a JSON object");
  }
  if (m.contains("mediaType") &&
      (!m["mediaType"].is_string() ||
       m["mediaType"].get<std::string>() != kOciManifestType)) {
    return Fail(Code::kInvalidArgument,
                "not an OCI image manifest (an index or another format)");
  }
  if (!m.contains("config")) {
    return Fail(Code::kCorruption, "manifest lacks a config");
  }
  auto config = ParseDescriptor(m["config"], kEggConfigType, "config");
  if (!config) return Fail(config.error());
  recipe.config = *config;
  if (!m.contains("layers") || !m["layers"].is_array() || m["layers"].empty()) {
    return Fail(Code::kCorruption, "manifest lacks layers");
  }
  const json& layers = m["layers"];
  if (layers.size() > kMaxPacks + 1) {
    return Fail(Code::kCorruption, "manifest has too many layers");
  }
  auto head = ParseDescriptor(layers[0], kEggHeadType, "layer 0");
  if (!head) return Fail(head.error());
  recipe.head = *head;
  auto packs = ParsePackLayers(layers, "manifest");
  if (!packs) return Fail(packs.error());
  recipe.pack_layers = std::move(*packs);
  return {};
}

Status ParseConfig(const std::string& bytes, Recipe& recipe) {
  json c = json::parse(bytes, nullptr, false);
  auto bad = [](const std::string& why) {
    return Fail(Code::kCorruption, "egg config: " + why);
  };
  if (c.is_discarded() || !c.is_object()) return bad("not a JSON object");
  if (!c.contains("version") || c["version"] != kConfigVersion) {
    return Fail(Code::kNotSupported,
                "egg config: unknown version (this egg reads 1)");
  }
  for (const char* key : {"file_size", "block_offset", "block_length"}) {
    if (!c.contains(key) || !c[key].is_number_unsigned()) {
      return bad(std::string("\"") + key + "\" missing");
    }
  }
  recipe.file_size = c["file_size"].get<uint64_t>();
  recipe.block_offset = c["block_offset"].get<uint64_t>();
  recipe.block_length = c["block_length"].get<uint64_t>();
  uint64_t end = 0;
  if (AddOverflows(recipe.block_offset, recipe.block_length, &end) ||
      end > recipe.file_size ||
      recipe.file_size - recipe.block_length != recipe.head.size) {
    return bad("sizes do not add up with the head layer");
  }
  if (recipe.head.size > kMaxEggHeadBytes) return bad("head too large");
  if (!c.contains("content_root") || !c["content_root"].is_string()) {
    return bad("\"content_root\" missing");
  }
  auto root = ParseDigest(c["content_root"].get<std::string>());
  if (!root) return bad("\"content_root\" malformed");
  recipe.content_root = *root;
  if (!c.contains("packs") || !c["packs"].is_array() ||
      c["packs"].size() != recipe.pack_layers.size()) {
    return bad("\"packs\" does not match the manifest's layers");
  }
  for (const auto& p : c["packs"]) {
    if (!p.is_object() || !p.contains("chunks") || !p["chunks"].is_array() ||
        p["chunks"].empty()) {
      return bad("a pack lists no chunks");
    }
    std::vector<Digest> chunks;
    for (const auto& h : p["chunks"]) {
      if (!h.is_string()) return bad("chunk digest not a string");
      auto d = ParseDigest(h.get<std::string>());
      if (!d) return bad("chunk digest malformed");
      chunks.push_back(*d);
    }
    recipe.pack_chunks.push_back(std::move(chunks));
  }
  return {};
}

}  // namespace

Result<EggPushResult> PushEgg(const std::string& egg_path, const Reference& ref,
                              const EggTransferOptions& options) {
  // Open and check the egg's structure; frames are checked by digest as
  // the registry receives them, not here.
  auto egg = EggFile::Open(egg_path, EggFile::Depth::kFull);
  if (!egg) return Fail(egg.error().Wrap(egg_path));
  auto fd = OpenFile(egg_path, O_RDONLY);
  if (!fd) return Fail(fd.error());
  const EggLayout& layout = egg->layout();
  const auto& index = egg->chunk_index();
  ChunkMap by_raw = IndexByRaw(index);
  auto packs = PlanPacks(*egg, by_raw);
  if (!packs) return Fail(packs.error());
  if (packs->size() > kMaxPacks) {
    return Fail(Code::kNotSupported, "egg needs more packs than allowed");
  }

  // Digests of the head and of every pack.
  std::vector<FileExtent> head_extents = {
      {0, layout.blocks.offset},
      {layout.blocks.offset + layout.blocks.length,
       layout.file_size - layout.blocks.offset - layout.blocks.length}};
  auto head_digest = HashExtents(fd->get(), head_extents);
  if (!head_digest) return Fail(head_digest.error());
  uint64_t head_size = head_extents[0].length + head_extents[1].length;
  uint64_t total = 0;
  for (auto& pack : *packs) {
    auto d =
        HashExtents(fd->get(), PackExtents(pack, index, layout.blocks.offset));
    if (!d) return Fail(d.error());
    pack.digest = *d;
    total += pack.size;
  }

  // The config: the recipe a puller needs to lay the frames back.
  json config_packs = json::array();
  for (const auto& pack : *packs) {
    json chunks = json::array();
    for (size_t i : pack.chunks) chunks.push_back(DigestHex(index[i].raw));
    config_packs.push_back({{"tree", pack.tree}, {"chunks", chunks}});
  }
  json config = {{"version", kConfigVersion},
                 {"content_root", DigestRef(egg->content_root())},
                 {"file_size", layout.file_size},
                 {"block_offset", layout.blocks.offset},
                 {"block_length", layout.blocks.length},
                 {"packs", config_packs}};
  std::string config_bytes = config.dump();
  Digest config_digest = Sha256Of(config_bytes);

  auto client = RegistryClient::Create(ref, options.client);
  if (!client) return Fail(client.error());
  EggPushResult result;
  result.content_root = egg->content_root();
  result.packs = packs->size();

  // Packs first, then head and config, the manifest last: a manifest is
  // never visible before every blob it names.
  uint64_t done = 0;
  for (const auto& pack : *packs) {
    BlobProgressFn progress = [&](uint64_t n) {
      if (options.progress) options.progress(done + n, total);
    };
    auto sent = (*client)->PushBlobFromFile(
        ref.repository, pack.digest, fd->get(),
        PackExtents(pack, index, layout.blocks.offset), progress);
    if (!sent) return Fail(sent.error());
    if (*sent) {
      ++result.packs_sent;
      result.bytes_sent += pack.size;
    }
    done += pack.size;
    if (options.progress) options.progress(done, total);
  }
  auto head_sent = (*client)->PushBlobFromFile(ref.repository, *head_digest,
                                               fd->get(), head_extents);
  if (!head_sent) return Fail(head_sent.error());
  if (*head_sent) result.bytes_sent += head_size;
  auto config_sent =
      (*client)->PushBlob(ref.repository, config_digest, config_bytes);
  if (!config_sent) return Fail(config_sent.error());

  json layers = json::array();
  layers.push_back(DescriptorJson(kEggHeadType, *head_digest, head_size));
  for (const auto& pack : *packs) {
    json d = DescriptorJson(kEggPackType, pack.digest, pack.size);
    d["annotations"] = {{std::string(kTreeAnnotation), pack.tree}};
    layers.push_back(d);
  }
  json manifest = {
      {"schemaVersion", 2},
      {"mediaType", kOciManifestType},
      {"artifactType", kEggArtifactType},
      {"config",
       DescriptorJson(kEggConfigType, config_digest, config_bytes.size())},
      {"layers", layers},
      {"annotations",
       {{std::string(kRootAnnotation), DigestRef(egg->content_root())}}}};
  std::string manifest_bytes = manifest.dump();
  Digest manifest_digest = Sha256Of(manifest_bytes);
  if (ref.digest && *ref.digest != manifest_digest) {
    return Fail(Code::kVerificationFailed,
                "this egg's manifest is " + DigestRef(manifest_digest) +
                    ", not the digest in the reference");
  }
  auto pushed = (*client)->PushManifest(ref.repository, ref.Target(),
                                        kOciManifestType, manifest_bytes);
  if (!pushed) return Fail(pushed.error());
  result.manifest = *pushed;
  return result;
}

namespace {

// What a pull added to the store, removed again unless the pull
// succeeded: a refused egg leaves nothing behind (objects the store held
// before are never touched). Workers add chunks concurrently.
class PullCleanup {
 public:
  explicit PullCleanup(Store& store) : store_(store) {}
  ~PullCleanup() {
    if (committed_) return;
    for (const auto& [kind, d] : added_) {
      static_cast<void>(store_.Remove(kind, d));
    }
  }
  void Added(ObjectKind kind, const Digest& d) {
    std::lock_guard<std::mutex> lock(mu_);
    added_.emplace_back(kind, d);
  }
  void Commit() { committed_ = true; }

 private:
  Store& store_;
  std::mutex mu_;
  std::vector<std::pair<ObjectKind, Digest>> added_;
  bool committed_ = false;
};

}  // namespace

Result<EggPullResult> PullEgg(const Reference& ref, const std::string& out_path,
                              bool overwrite, Store& store,
                              const EggTransferOptions& options) {
  auto client = RegistryClient::Create(ref, options.client);
  if (!client) return Fail(client.error());
  RegistryClient& c = **client;
  const std::string& repo = ref.repository;

  // Manifest and config: small, capped, digest-checked.
  auto manifest = c.FetchManifest(repo, ref.Target());
  if (!manifest) return Fail(manifest.error());
  Recipe recipe;
  if (auto st = ParseManifest(manifest->bytes, recipe); !st) {
    return Fail(st.error().Wrap(ref.ToString()));
  }
  if (recipe.config.size > kMaxEggConfigBytes) {
    return Fail(Code::kCorruption, "egg config larger than the cap");
  }
  auto config = c.FetchBlobToString(repo, recipe.config);
  if (!config) return Fail(config.error());
  if (auto st = ParseConfig(*config, recipe); !st) return Fail(st.error());

  // The head, laid out around a hole where the block region goes.
  auto file = AtomicFile::Create(out_path, 0644, overwrite);
  if (!file) return Fail(file.error());
  if (!overwrite && ::access(out_path.c_str(), F_OK) == 0) {
    return Fail(Code::kInvalidArgument,
                out_path + " exists (use --force to replace it)");
  }
  int fd = file->fd();
  if (::ftruncate(fd, static_cast<off_t>(recipe.file_size)) != 0) {
    return Fail(ErrnoError("size " + file->temp_path()));
  }
  uint64_t head_pos = 0;
  auto head_sink = [&](std::span<const uint8_t> b) -> Status {
    while (!b.empty()) {
      uint64_t at = head_pos < recipe.block_offset
                        ? head_pos
                        : head_pos + recipe.block_length;
      uint64_t n = b.size();
      if (head_pos < recipe.block_offset) {
        n = std::min<uint64_t>(n, recipe.block_offset - head_pos);
      }
      if (auto st = PwriteAll(fd, b.first(n), at); !st) return st;
      head_pos += n;
      b = b.subspan(n);
    }
    return {};
  };
  if (auto st = c.FetchBlob(repo, recipe.head, head_sink); !st) {
    return Fail(st.error());
  }

  // Parse the head as an egg: structure, digests and the content root.
  auto egg = EggFile::Open(file->temp_path(), EggFile::Depth::kFull);
  if (!egg) return Fail(egg.error().Wrap("pulled egg head"));
  const EggLayout& layout = egg->layout();
  if (egg->content_root() != recipe.content_root ||
      layout.blocks.offset != recipe.block_offset ||
      layout.blocks.length != recipe.block_length ||
      layout.file_size != recipe.file_size) {
    return Fail(Code::kVerificationFailed,
                "pulled egg head does not match its config (content root " +
                    DigestRef(egg->content_root()) + ")");
  }
  const auto& index = egg->chunk_index();
  ChunkMap by_raw = IndexByRaw(index);

  // Every chunk must be in some pack, and a pack's size must match.
  std::vector<std::vector<size_t>> pack_entries(recipe.pack_chunks.size());
  std::vector<bool> covered(index.size(), false);
  for (size_t p = 0; p < recipe.pack_chunks.size(); ++p) {
    uint64_t size = 0;
    for (const Digest& raw : recipe.pack_chunks[p]) {
      auto it = by_raw.find(raw);
      if (it == by_raw.end()) {
        return Fail(Code::kCorruption,
                    "egg config: pack lists a chunk the egg does not have");
      }
      pack_entries[p].push_back(it->second);
      covered[it->second] = true;
      size += index[it->second].frame_length;
    }
    if (size != recipe.pack_layers[p].size) {
      return Fail(Code::kCorruption,
                  "egg config: pack size differs from its frames");
    }
  }
  if (std::find(covered.begin(), covered.end(), false) != covered.end()) {
    return Fail(Code::kCorruption, "egg config: a chunk is in no pack");
  }

  PullCleanup cleanup(store);
  EggPullResult result;
  result.content_root = egg->content_root();
  result.manifest = manifest->digest;
  result.chunks = index.size();
  result.packs = recipe.pack_layers.size();

  // Frames the store already has with the egg's frame digest are written
  // from the store. The egg's index names the frame digest, so one hash
  // of the stored frame decides; the store's own raw check is not needed
  // to produce the egg's bytes.
  const uint64_t blocks = layout.blocks.offset;
  auto done = std::make_unique<std::atomic<bool>[]>(index.size());
  std::atomic<uint64_t> from_store{0};
  auto copy_from_store = [&](size_t i) -> Status {
    const ChunkEntry& e = index[i];
    auto frame =
        store.ReadFrameUnchecked(ObjectKind::kChunk, e.raw, e.frame_length);
    if (!frame || frame->size() != e.frame_length ||
        Sha256Of(*frame) != e.frame) {
      return {};  // absent or different: fetched below instead
    }
    if (auto st = PwriteAll(fd, *frame, blocks + e.offset); !st) return st;
    done[i].store(true);
    from_store.fetch_add(1);
    return {};
  };
  if (auto st = ParallelFor(index.size(), copy_from_store); !st) {
    return Fail(st.error());
  }
  result.chunks_from_store = from_store.load();

  // Packs holding anything still missing, frame by frame as they arrive;
  // workers check each frame against the index, add it to the store (which
  // checks its raw digest) and write it into place.
  uint64_t total = 0;
  std::vector<size_t> wanted;
  for (size_t p = 0; p < pack_entries.size(); ++p) {
    for (size_t i : pack_entries[p]) {
      if (!done[i].load()) {
        wanted.push_back(p);
        total += recipe.pack_layers[p].size;
        break;
      }
    }
  }
  FramePipeline pipeline([&](const FramePipeline::Job& job) -> Status {
    const ChunkEntry& e = index[job.index];
    if (Sha256Of(job.frame) != e.frame) {
      return Fail(Code::kVerificationFailed,
                  "chunk " + DigestHex(e.raw) +
                      ": frame does not match the egg's index");
    }
    if (!store.Has(ObjectKind::kChunk, e.raw)) {
      auto st = store.PutFrame(ObjectKind::kChunk, e.raw, job.frame);
      if (!st) return st;
      cleanup.Added(ObjectKind::kChunk, e.raw);
    }
    if (auto st = PwriteAll(fd, job.frame, blocks + e.offset); !st) {
      return st;
    }
    done[job.index].store(true);
    return {};
  });
  uint64_t moved = 0;
  for (size_t p : wanted) {
    std::vector<uint8_t> buffer;
    size_t k = 0;
    auto sink = [&](std::span<const uint8_t> b) -> Status {
      buffer.insert(buffer.end(), b.begin(), b.end());
      size_t used = 0;
      while (k < pack_entries[p].size()) {
        size_t i = pack_entries[p][k];
        uint64_t len = index[i].frame_length;
        if (buffer.size() - used < len) break;
        std::span<const uint8_t> frame(buffer.data() + used, len);
        used += len;
        ++k;
        if (done[i].load()) continue;
        auto st = pipeline.Submit({i, {frame.begin(), frame.end()}});
        if (!st) return st;
      }
      buffer.erase(buffer.begin(), buffer.begin() + used);
      return {};
    };
    BlobProgressFn progress = [&](uint64_t n) {
      if (options.progress) options.progress(moved + n, total);
    };
    if (auto st = c.FetchBlob(repo, recipe.pack_layers[p], sink, progress);
        !st) {
      static_cast<void>(pipeline.Finish());
      return Fail(st.error());
    }
    moved += recipe.pack_layers[p].size;
    ++result.packs_fetched;
  }
  if (auto st = pipeline.Finish(); !st) return Fail(st.error());
  for (size_t i = 0; i < index.size(); ++i) {
    if (!done[i]) {
      return Fail(Code::kCorruption,
                  "chunk " + DigestHex(index[i].raw) + " was never received");
    }
  }

  // The egg's trees go to the store too, so its runtime is usable.
  for (const auto& t : layout.trees) {
    if (store.Has(ObjectKind::kTree, t.section.digest)) continue;
    std::vector<uint8_t> bytes(t.section.length);
    if (auto st = PreadExact(fd, bytes, t.section.offset); !st) {
      return Fail(st.error());
    }
    if (auto st =
            store.PutExpecting(ObjectKind::kTree, t.section.digest, bytes);
        !st) {
      return Fail(st.error());
    }
    cleanup.Added(ObjectKind::kTree, t.section.digest);
  }

  if (auto st = file->Commit(); !st) return Fail(st.error());
  cleanup.Commit();
  result.bytes_fetched = c.stats().bytes_fetched;
  return result;
}

namespace registry_internal {

nlohmann::json DescriptorJson(std::string_view type, const Digest& digest,
                              uint64_t size) {
  return nlohmann::json{
      {"mediaType", type}, {"digest", DigestRef(digest)}, {"size", size}};
}

// Reads a descriptor of the expected media type from a hostile manifest.
Result<Descriptor> ParseDescriptor(const nlohmann::json& j,
                                   std::string_view type,
                                   const std::string& what) {
  if (!j.is_object() || !j.contains("mediaType") ||
      !j["mediaType"].is_string() || !j.contains("digest") ||
      !j["digest"].is_string() || !j.contains("size") ||
      !j["size"].is_number_unsigned()) {
    return Fail(Code::kCorruption, "manifest: malformed " + what);
  }
  if (j["mediaType"].get<std::string>() != type) {
    return Fail(Code::kInvalidArgument,
                "manifest: " + what + " has media type \"" +
                    j["mediaType"].get<std::string>().substr(0, 100) +
                    "\", expected \"" + std::string(type) + "\" (not an egg?)");
  }
  std::string digest = j["digest"].get<std::string>();
  auto parsed = digest.starts_with("sha256:")
                    ? ParseDigest(digest)
                    : Result<Digest>(Fail(Code::kCorruption, ""));
  if (!parsed) {
    return Fail(Code::kCorruption, "manifest: " + what + " digest malformed");
  }
  return Descriptor{std::string(type), *parsed, j["size"].get<uint64_t>()};
}

Result<std::vector<Descriptor>> ParsePackLayers(const nlohmann::json& layers,
                                                const std::string& what) {
  std::vector<Descriptor> packs;
  for (size_t i = 1; i < layers.size(); ++i) {
    auto pack =
        ParseDescriptor(layers[i], kEggPackType, "layer " + std::to_string(i));
    if (!pack) return Fail(pack.error());
    if (pack->size > kPackMaxBytes) {
      return Fail(Code::kCorruption, what + ": pack " + std::to_string(i) +
                                         " larger than the pack cap");
    }
    packs.push_back(*pack);
  }
  return packs;
}

}  // namespace registry_internal
}  // namespace egg
