// The egg command: wires the registered commands into CLI11 and turns
// every outcome into one documented exit code.
#include <algorithm>
#include <cerrno>
#include <clocale>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <vector>

#include "cli/cli.h"
#include "common/text.h"

namespace egg::cli {
namespace {

struct Entry {
  int order;
  const char* name;
  Registrar registrar;
};

std::vector<Entry>& Registry() {
  static std::vector<Entry> entries;
  return entries;
}

}  // namespace

Registration::Registration(int order, const char* name, Registrar registrar) {
  Registry().push_back({order, name, std::move(registrar)});
}

}  // namespace egg::cli

int main(int argc, char** argv) {
  using namespace egg::cli;
  using egg::EscapeForTerminal;
  // File names are UTF-8 bytes everywhere in egg; libarchive converts a
  // tarball's pax names to the locale's character set, which in the
  // default "C" locale cannot hold them. Only the character type is set:
  // messages, numbers and sorting stay those of "C".
  if (std::setlocale(LC_CTYPE, "C.UTF-8") == nullptr) {
    (void)std::setlocale(LC_CTYPE, "C.utf8");
  }
  CLI::App app{"egg: build, verify and safely run executable notebooks", "egg"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "egg 0.1.0");

  auto& registry = Registry();
  std::stable_sort(
      registry.begin(), registry.end(),
      [](const Entry& a, const Entry& b) { return a.order < b.order; });
  // A command named first is the only one built: CLI11's options for
  // every command took about 0.45 ms of each start. Anything else
  // (--help, --version, no command) builds them all, for the listing.
  const Entry* named = nullptr;
  // CLI11 would answer an unknown option before any command with "a
  // subcommand is required"; name it instead.
  if (argc > 1 && argv[1][0] == '-' && std::strcmp(argv[1], "-h") != 0 &&
      std::strcmp(argv[1], "--help") != 0 &&
      std::strcmp(argv[1], "--version") != 0) {
    std::fprintf(stderr, "egg: unknown option '%s' (see 'egg --help')\n",
                 EscapeForTerminal(argv[1]).c_str());
    return egg::kExitUsage;
  }
  if (argc > 1 && argv[1][0] != '-') {
    for (const auto& entry : registry) {
      if (std::strcmp(entry.name, argv[1]) == 0) named = &entry;
    }
    // CLI11 would answer an unknown command with "a subcommand is
    // required"; name it instead.
    if (named == nullptr) {
      std::fprintf(stderr, "egg: unknown command '%s' (see 'egg --help')\n",
                   EscapeForTerminal(argv[1]).c_str());
      return egg::kExitUsage;
    }
  }
  std::vector<std::pair<CLI::App*, Runner>> commands;
  for (const auto& entry : registry) {
    if (named == nullptr || &entry == named) {
      commands.push_back(entry.registrar(app));
    }
  }

  // Help and version text go to std::cout: a lost write fails them too,
  // as it does every command (docs/CLI.md).
  auto help = [&app](const CLI::Error& e) {
    errno = 0;
    int code = app.exit(e);
    std::cout.flush();
    if (!std::cout) {
      std::fprintf(stderr, "egg: writing to stdout: %s\n",
                   errno != 0 ? std::strerror(errno) : "write failed");
      return static_cast<int>(egg::kExitUsage);
    }
    return code;
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return help(e);
  } catch (const CLI::CallForAllHelp& e) {
    return help(e);
  } catch (const CLI::CallForVersion& e) {
    return help(e);
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    std::fprintf(stderr, "egg: %s (see 'egg --help')\n", what.c_str());
    return egg::kExitUsage;
  }

  if (auto s = CheckNoEmptyValues(app); !s) {
    std::fprintf(stderr, "egg: %s (see 'egg --help')\n",
                 EscapeForTerminal(s.error().message()).c_str());
    return egg::kExitUsage;
  }

  CaptureStdoutErrors();
  try {
    for (auto& [sub, run] : commands) {
      if (!sub->parsed()) continue;
      int code = run();
      // A payload that did not reach stdout is a failed command, whatever
      // the command itself concluded.
      if (auto s = FinishStdout(); !s) return Report(s.error());
      return code;
    }
  } catch (const std::exception& e) {
    // Libraries that throw are caught at their call; reaching here is a bug.
    return Report(egg::Error(egg::Code::kInternal,
                             std::string("unexpected error: ") + e.what()));
  }
  return egg::kExitUsage;
}
