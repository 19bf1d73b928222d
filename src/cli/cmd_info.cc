// egg info: what an egg is and asks for, read from its first and last few
// KiB (header, manifest, notebook, trailer, signature section) whatever
// its size. Signatures are checked against the content root the manifest
// declares, but the content itself is not hashed: `egg verify` does that.
#include <cstdio>
#include <ctime>
#include <memory>

#include "cli/cli.h"
#include "common/text.h"
#include "egg/crypto.h"
#include "egg/egg.h"
#include "egg/manifest.h"

namespace egg::cli {
namespace {

using nlohmann::json;

struct InfoArgs {
  std::string egg;
  std::string trusted;
  bool json = false;
};

// A string field from the egg, made safe for a terminal; "" if absent.
std::string Text(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return "";
  return EscapeForTerminal(j[key].get<std::string>());
}

std::string FirstLine(const std::string& source) {
  std::string line = source.substr(0, source.find('\n'));
  if (line.size() > 60) line = line.substr(0, 57) + "...";
  return EscapeForTerminal(line);
}

std::string Bool(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_boolean() &&
                 j[key].get<bool>()
             ? "yes"
             : "no";
}

// Who signed, and whether the person trusts them, as `egg verify` reports
// it (over the declared content root; the content is not re-hashed here).
crypto::ChainReport Signers(const EggFile& egg,
                            const std::optional<crypto::AllowedSigners>& t) {
  return crypto::VerifyChain(egg.content_root(), egg.signatures(),
                             t ? &*t : nullptr,
                             static_cast<int64_t>(std::time(nullptr)));
}

json InfoJson(const EggFile& egg, const crypto::ChainReport& signers) {
  const EggLayout& l = egg.layout();
  json trees = json::array();
  for (const TreeRef& t : l.trees) {
    trees.push_back({{"name", t.name},
                     {"digest", DigestRef(t.section.digest)},
                     {"bytes", t.section.length}});
  }
  return {{"egg", egg.path()},
          {"format", std::to_string(l.major) + "." + std::to_string(l.minor)},
          {"content_root", DigestRef(egg.content_root())},
          {"manifest", egg.manifest()},
          {"cells", egg.notebook().value("cells", json::array())},
          {"trees", trees},
          {"sizes",
           {{"file", l.file_size},
            {"manifest", l.manifest.length},
            {"notebook", l.notebook.length},
            {"blocks", l.blocks.length},
            {"index", l.index.length},
            {"signatures", l.signatures.length}}},
          {"signature_entries", signers.entries.size()},
          {"signatures", crypto::ChainReportJson(signers)},
          {"content_checked", false}};
}

void PrintHuman(const EggFile& egg, const crypto::ChainReport& signers) {
  const json& m = egg.manifest();
  const EggLayout& l = egg.layout();
  auto line = [](const char* label, const std::string& value) {
    if (!value.empty()) std::printf("%-13s %s\n", label, value.c_str());
  };
  line("name:", Text(m, "name"));
  line("description:", Text(m, "description"));
  line("author:", Text(m, "author"));
  line("license:", Text(m, "license"));
  line("created:", Text(m, "created"));
  line("content root:", DigestRef(egg.content_root()));

  // Cells: language and first line of each.
  const json& cells = egg.notebook().value("cells", json::array());
  std::printf("cells:        %zu\n", cells.is_array() ? cells.size() : 0);
  if (cells.is_array()) {
    size_t i = 0;
    for (const json& c : cells) {
      ++i;
      std::string lang = Text(c, "language");
      if (lang.empty()) lang = Text(c, "type");
      std::string src = c.is_object() && c.contains("source") &&
                                c["source"].is_string()
                            ? c["source"].get<std::string>()
                            : "";
      std::printf("  [%zu] %-10s %s\n", i, lang.c_str(),
                  FirstLine(src).c_str());
    }
  }

  // Data and runtime, as the manifest describes them, with tree sizes.
  if (m.contains("data") && m["data"].is_object()) {
    const json& d = m["data"];
    std::printf("data:         %s files, %s folders, %s bytes at %s\n",
                EscapeForTerminal(d.value("files", json(0)).dump()).c_str(),
                EscapeForTerminal(d.value("folders", json(0)).dump()).c_str(),
                EscapeForTerminal(d.value("bytes", json(0)).dump()).c_str(),
                Text(d, "mount").c_str());
  }
  if (m.contains("runtime") && m["runtime"].is_object()) {
    const json& r = m["runtime"];
    std::string what = Text(r, "kind");
    for (const char* k : {"suite", "reference", "digest"}) {
      if (!Text(r, k).empty()) what += " " + Text(r, k);
    }
    line("runtime:", what);
  }
  for (const TreeRef& t : l.trees) {
    std::printf("tree:         %-10s %s (%llu bytes of metadata)\n",
                EscapeForTerminal(t.name).c_str(),
                DigestRef(t.section.digest).c_str(),
                static_cast<unsigned long long>(t.section.length));
  }

  // Requested permissions and limits.
  if (m.contains("permissions") && m["permissions"].is_object()) {
    const json& p = m["permissions"];
    std::printf("permissions:  network %s\n", Bool(p, "network").c_str());
    if (p.contains("host_paths") && p["host_paths"].is_array()) {
      for (const json& h : p["host_paths"]) {
        std::printf("              host path %s -> %s (%s)\n",
                    Text(h, "host").c_str(), Text(h, "sandbox").c_str(),
                    Bool(h, "writable") == "yes" ? "writable" : "read-only");
      }
    }
    if (p.contains("devices") && p["devices"].is_array()) {
      for (const json& dev : p["devices"]) {
        if (dev.is_string()) {
          std::printf("              device %s\n",
                      EscapeForTerminal(dev.get<std::string>()).c_str());
        }
      }
    }
  }
  if (m.contains("limits") && m["limits"].is_object() &&
      !m["limits"].empty()) {
    std::string limits;
    for (const auto& [k, v] : m["limits"].items()) {
      limits += EscapeForTerminal(k) + "=" + EscapeForTerminal(v.dump()) + " ";
    }
    line("limits:", limits);
  }

  std::printf("size:         %llu bytes (blocks %llu, notebook %llu)\n",
              static_cast<unsigned long long>(l.file_size),
              static_cast<unsigned long long>(l.blocks.length),
              static_cast<unsigned long long>(l.notebook.length));

  std::printf("signatures:   %s\n", crypto::ChainSummary(signers).c_str());
  for (const std::string& entry : crypto::ChainReportLines(signers)) {
    std::printf("  %s\n", entry.c_str());
  }
  std::printf("content:      not checked here; run 'egg verify'\n");
}

int Run(const InfoArgs& a) {
  auto trust = crypto::LoadTrust(a.trusted);
  if (!trust) return Report(trust.error());
  auto egg = EggFile::Open(a.egg, EggFile::Depth::kSummary);
  if (!egg) return Report(egg.error());
  crypto::ChainReport signers = Signers(*egg, *trust);
  // A manifest that breaks the rules is still shown (that is what info is
  // for) but never without saying so.
  std::vector<std::string> tree_names;
  for (const TreeRef& t : egg->layout().trees) tree_names.push_back(t.name);
  if (auto stored = ParseStoredManifest(egg->manifest(), egg->notebook(),
                                        tree_names);
      !stored) {
    Warn("this egg's manifest breaks the manifest rules (egg hatch refuses"
         " it): " + stored.error().message());
  }
  if (a.json) {
    std::printf("%s\n", InfoJson(*egg, signers).dump(2).c_str());
  } else {
    PrintHuman(*egg, signers);
  }
  return kExitOk;
}

Registration reg(40, "info", [](CLI::App& app) {
  auto a = std::make_shared<InfoArgs>();
  auto* cmd = app.add_subcommand(
      "info", "Show what an egg holds and asks for (reads only its ends)");
  cmd->add_option("egg", a->egg, "The egg file")->required();
  cmd->add_option("--trusted", a->trusted,
                  "OpenSSH allowed_signers file (default "
                  "$XDG_CONFIG_HOME/egg/allowed_signers if it exists)");
  cmd->add_flag("--json", a->json, "Machine-readable output");
  return std::make_pair(cmd, Runner([a] { return Run(*a); }));
});

}  // namespace
}  // namespace egg::cli
