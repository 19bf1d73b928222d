// egg cat: one file's bytes to stdout, each chunk checked before it is
// written.
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "cli/cli.h"
#include "common/fd.h"
#include "egg/egg.h"

namespace egg::cli {
namespace {

struct CatArgs {
  std::string egg;
  std::string path;
};

int Run(const CatArgs& a) {
  // "tree:path", or a bare path in the data tree.
  std::string tree = "data";
  std::string path = a.path;
  if (auto colon = path.find(':'); colon != std::string::npos) {
    tree = path.substr(0, colon);
    path = path.substr(colon + 1);
  }
  auto egg = EggFile::Open(a.egg);
  if (!egg) return Report(egg.error());
  // Straight to fd 1: stdio holds nothing at this point.
  bool stdout_failed = false;
  auto s = egg->StreamFile(tree, path, [&](std::span<const uint8_t> b) {
    Status w = WriteAll(STDOUT_FILENO, b);
    if (!w) {
      stdout_failed = true;
      NoteStdoutError(errno);
    }
    return w;
  });
  // main reports a failed write to stdout as such.
  if (!s && stdout_failed) return kExitUsage;
  if (!s) return Report(s.error());
  return kExitOk;
}

Registration reg(42, "cat", [](CLI::App& app) {
  auto a = std::make_shared<CatArgs>();
  auto* cmd = app.add_subcommand("cat", "Write one file of an egg to stdout");
  cmd->add_option("egg", a->egg, "The egg file")->required();
  cmd->add_option("path", a->path,
                  "TREE:PATH, or PATH in the data tree")->required();
  return std::make_pair(cmd, Runner([a] { return Run(*a); }));
});

}  // namespace
}  // namespace egg::cli
