// Runtime metadata files and the runtime-level entry points.
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include <algorithm>

#include "common/atomic_file.h"
#include "common/fd.h"
#include "runtime/internal.h"
#include "store/fs_util.h"

namespace egg {
namespace runtime_internal {

Status WriteRuntimeInfo(Store& store, const RuntimeInfo& info) {
  nlohmann::json j;
  j["digest"] = DigestRef(info.digest);
  j["source"] = info.source;
  j["origin"] = info.origin;
  j["files"] = info.files;
  j["bytes"] = info.bytes;
  if (info.source == "debian") {
    j["suite"] = info.suite;
    j["variant"] = info.variant;
    j["architecture"] = info.architecture;
    j["mirror"] = info.mirror;
    j["source_date_epoch"] = info.source_date_epoch;
    j["requested"] = info.requested;
    nlohmann::json packages = nlohmann::json::array();
    for (const auto& p : info.packages) {
      packages.push_back({{"name", p.name},
                          {"version", p.version},
                          {"architecture", p.architecture}});
    }
    j["packages"] = packages;
  }
  std::string text;
  try {
    text = j.dump(2) + "\n";
  } catch (const nlohmann::json::exception& e) {
    return Fail(Code::kInvalidArgument,
                std::string("runtime metadata: ") + e.what());
  }
  return WriteFileAtomic(store.MetadataPath(info.digest), text, 0644, true);
}

Result<RuntimeInfo> ReadRuntimeInfo(const Store& store,
                                    const Digest& digest) {
  std::string path = store.MetadataPath(digest);
  auto text = ReadFileToString(path, 16ull << 20);
  if (!text) {
    if (text.error().code() == Code::kNotFound) {
      return Fail(Code::kNotFound,
                  "no runtime " + DigestRef(digest) + " in the store");
    }
    return Fail(text.error());
  }
  RuntimeInfo info;
  info.digest = digest;
  try {
    auto j = nlohmann::json::parse(*text);
    if (!j.is_object() || j.value("digest", "") != DigestRef(digest)) {
      return Fail(Code::kCorruption,
                  Quote(path) + " does not describe " + DigestRef(digest));
    }
    info.source = j.value("source", "");
    info.origin = j.value("origin", "");
    info.files = j.value("files", uint64_t{0});
    info.bytes = j.value("bytes", uint64_t{0});
    info.suite = j.value("suite", "");
    info.variant = j.value("variant", "");
    info.architecture = j.value("architecture", "");
    info.mirror = j.value("mirror", "");
    info.source_date_epoch = j.value("source_date_epoch", int64_t{0});
    if (j.contains("requested")) {
      info.requested = j["requested"].get<std::vector<std::string>>();
    }
    if (j.contains("packages")) {
      for (const auto& p : j["packages"]) {
        info.packages.push_back({p.at("name").get<std::string>(),
                                 p.at("version").get<std::string>(),
                                 p.at("architecture").get<std::string>()});
      }
    }
  } catch (const nlohmann::json::exception& e) {
    return Fail(Code::kCorruption,
                Quote(path) + " is not valid runtime metadata: " + e.what());
  }
  info.kept = store.IsKept(digest);
  return info;
}

}  // namespace runtime_internal

using namespace runtime_internal;

namespace {

// Stores a scanned folder as a runtime and records its metadata.
Result<RuntimeInfo> Finish(Store& store, RuntimeInfo info, const Tree& tree,
                           const ScanTotals& totals,
                           const ImportOptions& options) {
  auto digest = StoreTree(store, tree);
  if (!digest) return Fail(digest.error());
  info.digest = *digest;
  info.files = totals.files;
  info.bytes = totals.bytes;
  if (options.keep) {
    if (auto s = store.MarkKept(info.digest, true); !s) {
      return Fail(s.error());
    }
  }
  info.kept = store.IsKept(info.digest);
  if (auto s = WriteRuntimeInfo(store, info); !s) return Fail(s.error());
  return info;
}

}  // namespace

Result<RuntimeInfo> ImportRuntimeFolder(Store& store, const std::string& dir,
                                        const ImportOptions& options) {
  ScanTotals totals;
  auto tree = ScanFolder(store, dir, options, &totals);
  if (!tree) return Fail(tree.error());
  RuntimeInfo info;
  info.source = "folder";
  info.origin = dir;
  return Finish(store, std::move(info), *tree, totals, options);
}

Result<RuntimeInfo> ImportRuntimeTar(Store& store, const std::string& tarball,
                                     const ImportOptions& options) {
  auto staging = MakeTempDir(store.TempDir(), "tar-");
  if (!staging) return Fail(staging.error());
  auto result = [&]() -> Result<RuntimeInfo> {
    std::string root = *staging + "/root";
    if (::mkdir(root.c_str(), 0700) != 0) {
      return Fail(ErrnoError("cannot create " + Quote(root)));
    }
    if (auto s = ExtractTarball(tarball, root, options); !s) {
      return Fail(s.error());
    }
    ScanTotals totals;
    // Setuid bits were refused or cleared while extracting.
    auto tree = ScanFolder(store, root, options, &totals);
    if (!tree) return Fail(tree.error());
    RuntimeInfo info;
    info.source = "tar";
    info.origin = tarball;
    return Finish(store, std::move(info), *tree, totals, options);
  }();
  if (auto s = RemoveTree(*staging); !s && result) return Fail(s.error());
  return result;
}

Result<std::vector<RuntimeInfo>> ListRuntimes(const Store& store) {
  auto names = ListDir(store.root() + "/runtimes");
  if (!names) return Fail(names.error());
  std::vector<RuntimeInfo> out;
  for (const auto& name : *names) {
    if (name.size() != 64 + 5 || name.substr(64) != ".json") continue;
    auto digest = ParseDigest(name.substr(0, 64));
    if (!digest) continue;
    auto info = ReadRuntimeInfo(store, *digest);
    if (!info) return Fail(info.error());
    out.push_back(std::move(*info));
  }
  return out;
}

Result<RuntimeInfo> ShowRuntime(const Store& store, const Digest& digest) {
  return ReadRuntimeInfo(store, digest);
}

Status RecordRuntime(Store& store, const RuntimeInfo& info) {
  if (!store.Has(ObjectKind::kTree, info.digest)) {
    return Fail(Code::kNotFound,
                "tree " + DigestRef(info.digest) + " is not in the store");
  }
  if (auto st = runtime_internal::WriteRuntimeInfo(store, info); !st) {
    return st;
  }
  return info.kept ? store.MarkKept(info.digest, true) : Status{};
}

Status KeepRuntime(Store& store, const Digest& digest, bool keep) {
  if (keep && !store.Has(ObjectKind::kTree, digest)) {
    return Fail(Code::kNotFound,
                "tree " + DigestRef(digest) + " is not in the store");
  }
  return store.MarkKept(digest, keep);
}

Result<Store::References> RuntimeTreeReferences(
    std::span<const uint8_t> encoded_tree) {
  auto refs = TreeReferences(encoded_tree);
  if (!refs) return Fail(refs.error());
  Store::References out;
  out.chunks = std::move(refs->chunks);
  return out;
}

}  // namespace egg
