// egg extract: the notebook, each cell's source and the data tree into a
// new folder, for reading an egg without running it. Never writes
// outside the folder (see EggFile::ExtractTree).
#include <fcntl.h>
#include <sys/stat.h>

#include <cstdio>
#include <memory>

#include "cli/cli.h"
#include "common/atomic_file.h"
#include "common/text.h"
#include "egg/egg.h"

namespace egg::cli {
namespace {

struct ExtractArgs {
  std::string egg;
  std::string dir;
  std::vector<std::string> trees;
  bool all = false;
};

std::string Extension(const std::string& language) {
  if (language == "python") return ".py";
  if (language == "r") return ".R";
  if (language == "bash" || language == "sh") return ".sh";
  if (language == "markdown") return ".md";
  return ".txt";
}

// cells/NNN-<language><ext>: names are built here, never from the egg.
Status WriteCells(const EggFile& egg, const std::string& dir) {
  std::string cells_dir = dir + "/cells";
  if (::mkdir(cells_dir.c_str(), 0755) != 0) {
    return Fail(ErrnoError("mkdir '" + cells_dir + "'"));
  }
  const nlohmann::json& cells =
      egg.notebook().value("cells", nlohmann::json::array());
  if (!cells.is_array()) return {};
  size_t i = 0;
  for (const nlohmann::json& c : cells) {
    ++i;
    if (!c.is_object() || !c.contains("source") || !c["source"].is_string()) {
      continue;
    }
    std::string language = c.value("language", "");
    if (c.value("type", "") == "markdown") language = "markdown";
    bool known = language == "python" || language == "r" ||
                 language == "bash" || language == "sh" ||
                 language == "markdown";
    char name[32];
    std::snprintf(name, sizeof name, "%03zu", i);
    std::string file = cells_dir + "/" + name + "-" +
                       (known ? language : "cell") + Extension(language);
    if (auto s = WriteFileAtomic(file, c["source"].get<std::string>(), 0644,
                                 false);
        !s) {
      return s;
    }
  }
  return {};
}

int Run(const ExtractArgs& a) {
  auto egg = EggFile::Open(a.egg);
  if (!egg) return Report(egg.error());
  if (::mkdir(a.dir.c_str(), 0755) != 0) {
    if (errno == EEXIST) {
      return Report(Error(Code::kInvalidArgument,
                          "'" + a.dir + "' exists; give a new folder"));
    }
    return Report(ErrnoError("mkdir '" + a.dir + "'"));
  }
  if (auto s = WriteFileAtomic(a.dir + "/notebook.json",
                               egg->notebook().dump(1) + "\n", 0644, false);
      !s) {
    return Report(s.error());
  }
  if (auto s = WriteFileAtomic(a.dir + "/manifest.json",
                               egg->manifest().dump(1) + "\n", 0644, false);
      !s) {
    return Report(s.error());
  }
  if (auto s = WriteCells(*egg, a.dir); !s) return Report(s.error());

  // Trees: those asked for; by default every tree but the runtime.
  for (const auto& [name, tree] : egg->trees()) {
    bool wanted = a.all ||
                  (a.trees.empty() ? name != "runtime"
                                   : std::find(a.trees.begin(), a.trees.end(),
                                               name) != a.trees.end());
    if (!wanted) continue;
    if (auto s = egg->ExtractTree(name, a.dir + "/" + name); !s) {
      return Report(s.error());
    }
  }
  std::fprintf(stderr, "egg: extracted to '%s'\n",
               EscapeForTerminal(a.dir).c_str());
  return kExitOk;
}

Registration reg(43, "extract", [](CLI::App& app) {
  auto a = std::make_shared<ExtractArgs>();
  auto* cmd = app.add_subcommand(
      "extract", "Write an egg's notebook, cell sources and data to a new "
                 "folder");
  cmd->add_option("egg", a->egg, "The egg file")->required();
  cmd->add_option("dir", a->dir, "A folder that does not exist yet")
      ->required();
  cmd->add_option("--tree", a->trees, "Extract this tree (repeatable)");
  cmd->add_flag("--all", a->all, "Extract every tree, the runtime too");
  return std::make_pair(cmd, Runner([a] { return Run(*a); }));
});

}  // namespace
}  // namespace egg::cli
