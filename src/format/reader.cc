// EggFile: one parse of an egg from one descriptor, shared by verification
// and every read.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "common/atomic_file.h"
#include "common/bytes.h"
#include "common/fd.h"
#include "common/text.h"
#include "format/internal.h"

namespace egg {

using namespace format_internal;

namespace {

Error Bad(const std::string& what) { return Error(Code::kCorruption, what); }

std::string Quote(std::string_view s) {
  return "'" + EscapeForTerminal(s) + "'";
}

bool AllZero(std::span<const uint8_t> b) {
  return std::all_of(b.begin(), b.end(), [](uint8_t x) { return x == 0; });
}

SectionRef ReadLayoutEntry(ByteReader& r) {
  SectionRef s;
  s.offset = r.Le64();
  s.length = r.Le64();
  auto d = r.Bytes(32);
  if (d.size() == 32) std::copy(d.begin(), d.end(), s.digest.begin());
  return s;
}

uint64_t End(const SectionRef& s) { return s.offset + s.length; }

// Parses canonical JSON; anything that does not re-serialise to the same
// bytes, or is not an object, is kCorruption.
Result<nlohmann::json> ParseCanonical(const std::string& text,
                                      const char* what) {
  nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
  if (value.is_discarded() || !value.is_object()) {
    return Fail(Bad(std::string(what) + " is not a JSON object"));
  }
  auto again = CanonicalJson(value);
  if (!again || *again != text) {
    return Fail(Bad(std::string(what) + " is not canonical JSON"));
  }
  return value;
}

struct Head {
  uint8_t major = 0;
  uint8_t minor = 0;
  uint64_t notebook_offset = 0;
  uint64_t blocks_offset = 0;
  uint32_t tree_count = 0;
  uint64_t json_length = 0;
  uint64_t manifest_length = 0;
};

// Header plus the manifest's fixed part (80 bytes from offset 0).
Result<Head> ParseHead(std::span<const uint8_t> b, uint64_t file_size) {
  ByteReader r(b);
  Head h;
  auto magic = r.String(4);
  h.major = r.U8();
  h.minor = r.U8();
  uint16_t reserved16 = r.Le16();
  uint64_t manifest_offset = r.Le64();
  h.notebook_offset = r.Le64();
  h.blocks_offset = r.Le64();
  auto reserved = r.Bytes(32);
  auto mmagic = r.String(4);
  h.tree_count = r.Le32();
  h.json_length = r.Le64();
  if (!r.ok()) return Fail(Bad("file is too short for an egg header"));
  if (magic != std::string_view(kHeaderMagic, 4)) {
    return Fail(Bad("not an egg (bad magic)"));
  }
  if (h.major != kFormatMajor || h.minor > kFormatMinor) {
    return Fail(Error(Code::kNotSupported,
                      "egg format version " + std::to_string(h.major) + "." +
                          std::to_string(h.minor) + " is not supported"));
  }
  if (reserved16 != 0 || !AllZero(reserved)) {
    return Fail(Bad("header: reserved bytes are not zero"));
  }
  if (manifest_offset != kHeaderSize) {
    return Fail(Bad("header: manifest offset is not 64"));
  }
  if (mmagic != std::string_view(kManifestMagic, 4)) {
    return Fail(Bad("manifest: bad magic"));
  }
  if (h.tree_count > kMaxTrees) return Fail(Bad("manifest: too many trees"));
  if (h.json_length < 2 || h.json_length > kMaxManifestJsonBytes) {
    return Fail(Bad("manifest: JSON length out of range"));
  }
  h.manifest_length =
      kManifestFixedSize + kTreeRefSize * h.tree_count + h.json_length;
  if (kHeaderSize + h.manifest_length + kTrailerSize > file_size) {
    return Fail(Bad("manifest runs past the end of the file"));
  }
  return h;
}

struct OpenedHead {
  UniqueFd fd;
  uint64_t size = 0;
  Head head;
  std::vector<uint8_t> manifest;  // the manifest section
};

Result<OpenedHead> OpenHead(const std::string& path) {
  OpenedHead o;
  // O_NONBLOCK: a FIFO must not block the open; it is refused below.
  auto fd = OpenFile(path, O_RDONLY | O_NONBLOCK);
  if (!fd) return Fail(fd.error());
  o.fd = std::move(*fd);
  struct stat st;
  if (::fstat(o.fd.get(), &st) != 0) {
    return Fail(ErrnoError(Quote(path)));
  }
  if (!S_ISREG(st.st_mode)) {
    return Fail(Code::kInvalidArgument, Quote(path) + " is not a file");
  }
  o.size = static_cast<uint64_t>(st.st_size);
  if (o.size < kHeaderSize + kManifestFixedSize + kTrailerSize) {
    return Fail(Bad(Quote(path) + " is too short to be an egg"));
  }
  uint8_t first[kHeaderSize + 16];
  if (auto s = PreadExact(o.fd.get(), first, 0); !s) return Fail(s.error());
  auto head = ParseHead(first, o.size);
  if (!head) return Fail(head.error().Wrap(Quote(path)));
  o.head = *head;
  o.manifest.resize(o.head.manifest_length);
  if (auto s = PreadExact(o.fd.get(), o.manifest, kHeaderSize); !s) {
    return Fail(s.error());
  }
  return o;
}

}  // namespace

struct EggFile::Impl {
  std::string path;
  UniqueFd fd;
  EggLayout layout;
  std::vector<uint8_t> manifest_section;
  Digest content_root{};
  nlohmann::json manifest;
  std::string manifest_json;
  nlohmann::json notebook;
  std::string notebook_json;
  std::vector<uint8_t> signatures;
  bool full = false;
  std::vector<std::pair<std::string, Tree>> trees;
  std::vector<ChunkEntry> index;  // sorted by raw digest

  Status ParseManifest(const Head& head, uint64_t file_size);
  Status ParseTrailer(uint64_t file_size);
  Status LoadIndex();
  Status LoadTrees();
  Result<std::vector<uint8_t>> ReadSection(const SectionRef& s,
                                           const char* what) const;
  const ChunkEntry* Find(const Digest& raw) const;
  Status ReadChecked(const ChunkEntry& e, std::vector<uint8_t>* frame,
                     std::vector<uint8_t>* raw) const;
};

Status EggFile::Impl::ParseManifest(const Head& head, uint64_t file_size) {
  ByteReader r(manifest_section);
  r.Bytes(16);
  layout.notebook = ReadLayoutEntry(r);
  layout.blocks = ReadLayoutEntry(r);
  layout.index = ReadLayoutEntry(r);
  std::vector<std::pair<std::string, SectionRef>> refs;
  for (uint32_t i = 0; i < head.tree_count; ++i) {
    auto name_bytes = r.Bytes(kTreeNameBytes);
    SectionRef s = ReadLayoutEntry(r);
    if (!r.ok()) break;
    std::string_view name(reinterpret_cast<const char*>(name_bytes.data()),
                          kTreeNameBytes);
    name = name.substr(0, name.find('\0'));
    if (!IsValidTreeName(name) ||
        !AllZero(name_bytes.subspan(name.size()))) {
      return Fail(Bad("manifest: bad tree name " + Quote(name)));
    }
    if (!layout.trees.empty() && !(layout.trees.back().name < name)) {
      return Fail(Bad("manifest: trees are not sorted or repeat"));
    }
    layout.trees.push_back(TreeRef{std::string(name), s});
  }
  manifest_json = std::string(r.String(head.json_length));
  if (!r.AtEnd()) return Fail(Bad("manifest: length mismatch"));

  // Sections must follow each other exactly, in the documented order.
  layout.manifest = {kHeaderSize, head.manifest_length, {}};
  uint64_t expect = kHeaderSize + head.manifest_length;
  auto next = [&](const SectionRef& s, const char* what) -> Status {
    uint64_t end;
    if (s.offset != expect || AddOverflows(s.offset, s.length, &end) ||
        end > file_size - kTrailerSize) {
      return Fail(Bad(std::string(what) + ": offset or length is wrong"));
    }
    expect = end;
    return {};
  };
  if (auto s = next(layout.notebook, "notebook"); !s) return s;
  if (head.notebook_offset != layout.notebook.offset) {
    return Fail(Bad("header: notebook offset disagrees with the manifest"));
  }
  if (layout.notebook.length < 2 ||
      layout.notebook.length > kMaxNotebookBytes) {
    return Fail(Bad("notebook: length out of range"));
  }
  if (auto s = next(layout.blocks, "block region"); !s) return s;
  if (head.blocks_offset != layout.blocks.offset) {
    return Fail(Bad("header: block offset disagrees with the manifest"));
  }
  for (const TreeRef& t : layout.trees) {
    if (auto s = next(t.section, "tree section"); !s) return s;
    if (t.section.length > kMaxTreeSectionBytes) {
      return Fail(Bad("tree section: too large"));
    }
  }
  if (auto s = next(layout.index, "chunk index"); !s) return s;
  if (layout.index.length < kIndexHeaderSize ||
      (layout.index.length - kIndexHeaderSize) % kIndexEntrySize != 0 ||
      (layout.index.length - kIndexHeaderSize) / kIndexEntrySize >
          kMaxChunks) {
    return Fail(Bad("chunk index: length is not a whole number of entries"));
  }

  auto json = ParseCanonical(manifest_json, "manifest");
  if (!json) return Fail(json.error());
  manifest = std::move(*json);
  return {};
}

Status EggFile::Impl::ParseTrailer(uint64_t file_size) {
  uint8_t b[kTrailerSize];
  if (auto s = PreadExact(fd.get(), b, file_size - kTrailerSize); !s) {
    return s;
  }
  ByteReader r(b);
  auto magic = r.String(4);
  uint8_t major = r.U8();
  uint8_t minor = r.U8();
  uint16_t reserved16 = r.Le16();
  uint64_t sig_offset = r.Le64();
  uint64_t sig_length = r.Le64();
  uint64_t total = r.Le64();
  auto reserved = r.Bytes(32);
  if (magic != std::string_view(kTrailerMagic, 4)) {
    return Fail(Bad("trailer: bad magic (truncated or appended to?)"));
  }
  if (major != layout.major || minor != layout.minor) {
    return Fail(Bad("trailer: version disagrees with the header"));
  }
  if (reserved16 != 0 || !AllZero(reserved)) {
    return Fail(Bad("trailer: reserved bytes are not zero"));
  }
  if (total != file_size) {
    return Fail(Bad("trailer: total length is not the file size"));
  }
  if (sig_length > kMaxSignatureBytes ||
      sig_offset != End(layout.index) ||
      sig_offset + sig_length != file_size - kTrailerSize) {
    return Fail(Bad("trailer: signature section does not fit"));
  }
  layout.signatures = {sig_offset, sig_length, {}};
  signatures.resize(sig_length);
  return PreadExact(fd.get(), signatures, sig_offset);
}

Result<std::vector<uint8_t>> EggFile::Impl::ReadSection(
    const SectionRef& s, const char* what) const {
  std::vector<uint8_t> bytes(s.length);
  if (auto st = PreadExact(fd.get(), bytes, s.offset); !st) {
    return Fail(st.error());
  }
  if (Sha256Of(bytes) != s.digest) {
    return Fail(Code::kVerificationFailed,
                std::string(what) + ": digest does not match the manifest");
  }
  return bytes;
}

Status EggFile::Impl::LoadIndex() {
  auto bytes = ReadSection(layout.index, "chunk index");
  if (!bytes) return Fail(bytes.error());
  ByteReader r(*bytes);
  auto magic = r.String(4);
  uint32_t reserved = r.Le32();
  uint64_t count = r.Le64();
  if (magic != std::string_view(kIndexMagic, 4) || reserved != 0) {
    return Fail(Bad("chunk index: bad magic or reserved bytes"));
  }
  if (count != (bytes->size() - kIndexHeaderSize) / kIndexEntrySize) {
    return Fail(Bad("chunk index: count disagrees with its length"));
  }
  index.resize(count);
  const uint64_t max_frame = MaxFrameLength();
  for (ChunkEntry& e : index) {
    auto raw = r.Bytes(32);
    std::copy(raw.begin(), raw.end(), e.raw.begin());
    auto frame = r.Bytes(32);
    std::copy(frame.begin(), frame.end(), e.frame.begin());
    e.offset = r.Le64();
    e.frame_length = r.Le32();
    e.raw_length = r.Le32();
    if (e.raw_length == 0 || e.raw_length > kChunkMax ||
        e.frame_length == 0 || e.frame_length > max_frame) {
      return Fail(Bad("chunk index: entry length out of range"));
    }
  }
  for (size_t i = 1; i < index.size(); ++i) {
    if (!(index[i - 1].raw < index[i].raw)) {
      return Fail(Bad("chunk index: entries are not sorted or repeat"));
    }
  }

  // Frames must tile the block region exactly.
  std::vector<const ChunkEntry*> by_offset;
  by_offset.reserve(index.size());
  for (const ChunkEntry& e : index) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const ChunkEntry* a, const ChunkEntry* b) {
              return a->offset < b->offset;
            });
  uint64_t at = 0;
  for (const ChunkEntry* e : by_offset) {
    if (e->offset != at) {
      return Fail(Bad("chunk index: frames overlap or leave a gap"));
    }
    at += e->frame_length;
    if (at > layout.blocks.length) {
      return Fail(Bad("chunk index: a frame runs past the block region"));
    }
  }
  if (at != layout.blocks.length) {
    return Fail(Bad("chunk index: frames do not fill the block region"));
  }
  if (BlockRegionDigest(by_offset) != layout.blocks.digest) {
    return Fail(Code::kVerificationFailed,
                "block region: digest does not match the manifest");
  }
  return {};
}

const ChunkEntry* EggFile::Impl::Find(const Digest& raw) const {
  auto it = std::lower_bound(
      index.begin(), index.end(), raw,
      [](const ChunkEntry& e, const Digest& d) { return e.raw < d; });
  return it != index.end() && it->raw == raw ? &*it : nullptr;
}

Status EggFile::Impl::LoadTrees() {
  std::vector<bool> used(index.size(), false);
  for (const TreeRef& ref : layout.trees) {
    auto bytes = ReadSection(ref.section, "tree section");
    if (!bytes) return Fail(bytes.error().Wrap("tree '" + ref.name + "'"));
    auto tree = DecodeTree(*bytes);
    if (!tree) return Fail(tree.error().Wrap("tree '" + ref.name + "'"));
    for (const TreeEntry& e : tree->entries) {
      if (e.kind != EntryKind::kFile) continue;
      uint64_t sum = 0;
      for (const Digest& d : e.chunks) {
        const ChunkEntry* c = Find(d);
        if (c == nullptr) {
          return Fail(Bad("tree '" + ref.name + "' entry " + Quote(e.path) +
                          ": chunk missing from the index"));
        }
        used[static_cast<size_t>(c - index.data())] = true;
        sum += c->raw_length;  // cannot overflow: < 2^24 * 2^32 * count
      }
      if (sum != e.size) {
        return Fail(Bad("tree '" + ref.name + "' entry " + Quote(e.path) +
                        ": chunk sizes do not add up to the file size"));
      }
    }
    trees.emplace_back(ref.name, std::move(*tree));
  }
  if (std::find(used.begin(), used.end(), false) != used.end()) {
    return Fail(Bad("chunk index: a chunk is not used by any tree"));
  }
  return {};
}

Status EggFile::Impl::ReadChecked(const ChunkEntry& e,
                                  std::vector<uint8_t>* frame,
                                  std::vector<uint8_t>* raw) const {
  frame->resize(e.frame_length);
  if (auto s = PreadExact(fd.get(), *frame, layout.blocks.offset + e.offset);
      !s) {
    return s;
  }
  return CheckFrame(*frame, e, raw);
}

Result<EggFile> EggFile::Open(const std::string& path, Depth depth) {
  auto head = OpenHead(path);
  if (!head) return Fail(head.error());

  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->fd = std::move(head->fd);
  impl->layout.major = head->head.major;
  impl->layout.minor = head->head.minor;
  impl->layout.file_size = head->size;
  impl->manifest_section = std::move(head->manifest);
  impl->content_root = ContentRootOf(impl->manifest_section);
  impl->layout.manifest.digest = Sha256Of(impl->manifest_section);
  auto where = [&](const Error& e) { return e.Wrap(Quote(path)); };

  if (auto s = impl->ParseManifest(head->head, head->size); !s) {
    return Fail(where(s.error()));
  }
  if (auto s = impl->ParseTrailer(head->size); !s) {
    return Fail(where(s.error()));
  }
  auto notebook = impl->ReadSection(impl->layout.notebook, "notebook");
  if (!notebook) return Fail(where(notebook.error()));
  impl->notebook_json.assign(notebook->begin(), notebook->end());
  auto nb = ParseCanonical(impl->notebook_json, "notebook");
  if (!nb) return Fail(where(nb.error()));
  impl->notebook = std::move(*nb);

  if (depth == Depth::kFull) {
    if (auto s = impl->LoadIndex(); !s) return Fail(where(s.error()));
    if (auto s = impl->LoadTrees(); !s) return Fail(where(s.error()));
    impl->full = true;
  }
  return EggFile(std::move(impl));
}

EggFile::EggFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EggFile::EggFile(EggFile&&) noexcept = default;
EggFile& EggFile::operator=(EggFile&&) noexcept = default;
EggFile::~EggFile() = default;

const std::string& EggFile::path() const { return impl_->path; }
const EggLayout& EggFile::layout() const { return impl_->layout; }
const Digest& EggFile::content_root() const { return impl_->content_root; }
std::span<const uint8_t> EggFile::manifest_section() const {
  return impl_->manifest_section;
}
const nlohmann::json& EggFile::manifest() const { return impl_->manifest; }
const std::string& EggFile::manifest_json() const {
  return impl_->manifest_json;
}
const nlohmann::json& EggFile::notebook() const { return impl_->notebook; }
const std::string& EggFile::notebook_json() const {
  return impl_->notebook_json;
}
std::span<const uint8_t> EggFile::signatures() const {
  return impl_->signatures;
}
bool EggFile::full() const { return impl_->full; }
const std::vector<std::pair<std::string, Tree>>& EggFile::trees() const {
  return impl_->trees;
}
const std::vector<ChunkEntry>& EggFile::chunk_index() const {
  return impl_->index;
}

Result<const Tree*> EggFile::FindTree(std::string_view name) const {
  if (!impl_->full) {
    return Fail(Code::kInternal, "egg was opened without its trees");
  }
  for (const auto& [n, tree] : impl_->trees) {
    if (n == name) return &tree;
  }
  return Fail(Code::kNotFound, "no tree " + Quote(name) + " in the egg");
}

Result<const TreeEntry*> EggFile::FindEntry(std::string_view tree,
                                            std::string_view path) const {
  auto t = FindTree(tree);
  if (!t) return Fail(t.error());
  const auto& entries = (*t)->entries;
  auto it = std::lower_bound(
      entries.begin(), entries.end(), path,
      [](const TreeEntry& e, std::string_view p) { return e.path < p; });
  if (it == entries.end() || it->path != path) {
    return Fail(Code::kNotFound, "no " + Quote(std::string(tree) + ":" +
                                               std::string(path)) +
                                     " in the egg");
  }
  return &*it;
}

Status EggFile::VerifyContent(const VerifyOptions& options) const {
  if (!impl_->full) {
    return Fail(Code::kInternal, "egg was opened without its index");
  }
  const auto& index = impl_->index;
  std::vector<const ChunkEntry*> order;
  order.reserve(index.size());
  for (const ChunkEntry& e : index) {
    if (!options.skip || !options.skip(e)) order.push_back(&e);
  }
  std::sort(order.begin(), order.end(),
            [](const ChunkEntry* a, const ChunkEntry* b) {
              return a->offset < b->offset;
            });
  ::posix_fadvise(impl_->fd.get(), static_cast<off_t>(impl_->layout.blocks.offset),
                  static_cast<off_t>(impl_->layout.blocks.length),
                  POSIX_FADV_SEQUENTIAL);

  unsigned threads = options.threads
                         ? options.threads
                         : std::max(1u, std::thread::hardware_concurrency());
  // A helper thread pays off only with megabytes to hash: for a small egg
  // its start (and, on a busy machine, its wait to be scheduled) costs
  // more than the hashing.
  constexpr uint64_t kBytesPerThread = 8ull << 20;
  if (options.threads == 0) {
    threads = static_cast<unsigned>(std::min<uint64_t>(
        threads,
        std::max<uint64_t>(1, impl_->layout.blocks.length / kBytesPerThread)));
  }
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> done{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first_error;
  auto work = [&](bool report) {
    std::vector<uint8_t> frame, raw;
    for (;;) {
      if (failed.load()) return;
      size_t i = next.fetch_add(1);
      if (i >= order.size()) return;
      if (auto s = impl_->ReadChecked(*order[i], &frame, &raw); !s) {
        std::lock_guard<std::mutex> lock(mu);
        if (!failed.exchange(true)) first_error = s;
        return;
      }
      uint64_t d = done.fetch_add(order[i]->frame_length) +
                   order[i]->frame_length;
      if (report && options.progress) {
        options.progress(d, impl_->layout.blocks.length);
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work, false);
  work(true);
  for (auto& t : pool) t.join();
  if (!first_error) return Fail(first_error.error().Wrap(Quote(impl_->path)));
  return {};
}

Result<std::vector<uint8_t>> EggFile::ReadChunk(const Digest& raw) const {
  const ChunkEntry* e = impl_->Find(raw);
  if (e == nullptr) {
    return Fail(Code::kNotFound,
                "chunk " + DigestHex(raw).substr(0, 16) + " is not in the egg");
  }
  std::vector<uint8_t> frame, out;
  if (auto s = impl_->ReadChecked(*e, &frame, &out); !s) return Fail(s.error());
  return out;
}

Status EggFile::StreamFile(
    std::string_view tree, std::string_view path,
    const std::function<Status(std::span<const uint8_t>)>& out) const {
  auto entry = FindEntry(tree, path);
  if (!entry) return Fail(entry.error());
  if ((*entry)->kind != EntryKind::kFile) {
    return Fail(Code::kInvalidArgument,
                Quote(std::string(tree) + ":" + std::string(path)) +
                    " is not a regular file");
  }
  std::vector<uint8_t> frame, raw;
  for (const Digest& d : (*entry)->chunks) {
    const ChunkEntry* e = impl_->Find(d);
    if (e == nullptr) return Fail(Code::kInternal, "chunk vanished");
    if (auto s = impl_->ReadChecked(*e, &frame, &raw); !s) return s;
    if (auto s = out(raw); !s) return s;
  }
  return {};
}

Result<std::string> EggFile::ReadFile(std::string_view tree,
                                      std::string_view path,
                                      uint64_t max_bytes) const {
  auto entry = FindEntry(tree, path);
  if (!entry) return Fail(entry.error());
  if ((*entry)->size > max_bytes) {
    return Fail(Code::kInvalidArgument,
                Quote(std::string(path)) + " is larger than " +
                    std::to_string(max_bytes) + " bytes");
  }
  std::string out;
  auto s = StreamFile(tree, path, [&](std::span<const uint8_t> b) -> Status {
    out.append(reinterpret_cast<const char*>(b.data()), b.size());
    return {};
  });
  if (!s) return Fail(s.error());
  return out;
}

Status EggFile::ExportTree(std::string_view tree, ChunkSink& sink) const {
  auto t = FindTree(tree);
  if (!t) return Fail(t.error());
  std::vector<uint8_t> frame, raw;
  std::vector<bool> sent(impl_->index.size(), false);
  for (const TreeEntry& entry : (*t)->entries) {
    for (const Digest& d : entry.chunks) {
      const ChunkEntry* e = impl_->Find(d);
      if (e == nullptr) return Fail(Code::kInternal, "chunk vanished");
      size_t i = static_cast<size_t>(e - impl_->index.data());
      if (sent[i]) continue;
      sent[i] = true;
      if (auto s = impl_->ReadChecked(*e, &frame, &raw); !s) return s;
      if (auto s = sink.PutChunk(d, raw, frame); !s) return s;
    }
  }
  return {};
}

Status EggFile::WriteWithSignatures(std::span<const uint8_t> signatures,
                                    const std::string& out_path,
                                    bool overwrite) const {
  if (signatures.size() > kMaxSignatureBytes) {
    return Fail(Code::kInvalidArgument, "signature section is too large");
  }
  auto file = AtomicFile::Create(out_path, 0644, overwrite);
  if (!file) return Fail(file.error());

  // Copy the content bytes; the manifest part must still be the bytes
  // this EggFile parsed, or the file changed under us.
  const uint64_t content_end = impl_->layout.signatures.offset;
  std::vector<uint8_t> buf(1 << 20);
  for (uint64_t at = 0; at < content_end;) {
    size_t n = static_cast<size_t>(
        std::min<uint64_t>(buf.size(), content_end - at));
    std::span<uint8_t> part(buf.data(), n);
    if (auto s = PreadExact(impl_->fd.get(), part, at); !s) return s;
    if (at == 0 && n >= kHeaderSize + impl_->manifest_section.size() &&
        !std::equal(impl_->manifest_section.begin(),
                    impl_->manifest_section.end(),
                    part.begin() + kHeaderSize)) {
      return Fail(Code::kVerificationFailed,
                  Quote(impl_->path) + " changed while it was open");
    }
    if (auto s = WriteAll(file->fd(), part); !s) return s;
    at += n;
  }
  if (auto s = WriteAll(file->fd(), signatures); !s) return s;

  ByteWriter trailer;
  trailer.Bytes(std::string_view(kTrailerMagic, 4));
  trailer.U8(impl_->layout.major);
  trailer.U8(impl_->layout.minor);
  trailer.Le16(0);
  trailer.Le64(content_end);
  trailer.Le64(signatures.size());
  trailer.Le64(content_end + signatures.size() + kTrailerSize);
  trailer.Zeros(32);
  if (auto s = WriteAll(file->fd(), trailer.buffer()); !s) return s;
  return file->Commit();
}

Digest ContentRoot(const EggFile& egg) { return egg.content_root(); }

Result<std::vector<uint8_t>> ReadHeadBytes(const std::string& path) {
  auto head = OpenHead(path);
  if (!head) return Fail(head.error());
  std::vector<uint8_t> out(kHeaderSize);
  if (auto s = PreadExact(head->fd.get(), out, 0); !s) return Fail(s.error());
  out.insert(out.end(), head->manifest.begin(), head->manifest.end());
  return out;
}

}  // namespace egg
