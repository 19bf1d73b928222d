// egg ls: every entry of every tree, as "tree:path kind size".
#include <cstdio>
#include <memory>

#include "cli/cli.h"
#include "common/text.h"
#include "egg/egg.h"

namespace egg::cli {
namespace {

struct LsArgs {
  std::string egg;
  std::string tree;
  bool json = false;
};

int Run(const LsArgs& a) {
  auto egg = EggFile::Open(a.egg);
  if (!egg) return Report(egg.error());
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [name, tree] : egg->trees()) {
    if (!a.tree.empty() && name != a.tree) continue;
    for (const TreeEntry& e : tree.entries) {
      if (a.json) {
        nlohmann::json j = {{"tree", name},
                            {"path", e.path},
                            {"kind", EntryKindName(e.kind)},
                            {"mode", e.mode},
                            {"size", e.size}};
        if (e.kind == EntryKind::kSymlink) j["target"] = e.target;
        out.push_back(std::move(j));
        continue;
      }
      std::string line = EscapeForTerminal(name + ":" + e.path);
      if (e.kind == EntryKind::kSymlink) {
        line += " -> " + EscapeForTerminal(e.target);
      }
      std::printf("%-7s %04o %12llu  %s\n", EntryKindName(e.kind), e.mode,
                  static_cast<unsigned long long>(e.size), line.c_str());
    }
  }
  if (a.json) std::printf("%s\n", out.dump(2).c_str());
  return kExitOk;
}

Registration reg(41, "ls", [](CLI::App& app) {
  auto a = std::make_shared<LsArgs>();
  auto* cmd = app.add_subcommand("ls", "List the files in an egg's trees");
  cmd->add_option("egg", a->egg, "The egg file")->required();
  cmd->add_option("--tree", a->tree, "Only this tree (e.g. data)");
  cmd->add_flag("--json", a->json, "Machine-readable output");
  return std::make_pair(cmd, Runner([a] { return Run(*a); }));
});

}  // namespace
}  // namespace egg::cli
