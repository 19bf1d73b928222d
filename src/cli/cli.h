// Shared pieces of the egg command line. Each command lives in its own
// cmd_<name>.cc and registers itself with a static Registration, so that
// commands can be added without touching main.cc.
#ifndef EGG_CLI_CLI_H_
#define EGG_CLI_CLI_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <string>

#include "egg/status.h"

namespace egg::cli {

// Runs the chosen command and returns the process exit code.
using Runner = std::function<int()>;

// Adds one subcommand to `root` and returns it with the function that runs
// it. Options must be bound to variables that outlive the call (capture
// shared state in the Runner).
using Registrar = std::function<std::pair<CLI::App*, Runner>(CLI::App&)>;

struct Registration {
  // `order` sorts commands in --help; `name` is the subcommand the
  // registrar adds (main builds only that one when it is named first).
  Registration(int order, const char* name, Registrar registrar);
};

// Prints "egg: <message>" as one line on stderr (control characters
// escaped) and returns the exit code for the error.
int Report(const Error& error);

// A warning line on stderr: "egg: warning: <message>".
void Warn(const std::string& message);

// Sends stdout through a stream that remembers why a write to it failed
// (stdio forgets the errno by the time a command ends). main calls it
// once, before any output; buffering is as stdio's (lines on a
// terminal).
void CaptureStdoutErrors();

// Records that a write(2) straight to fd 1, bypassing stdio, failed.
void NoteStdoutError(int err);

// Flushes stdout. kIo "writing to stdout: <strerror>" when this or any
// earlier write to stdout failed.
[[nodiscard]] Status FinishStdout();

// kInvalidArgument naming the first option of the parsed (sub)commands
// under `app` given an empty value: an empty value never stands for the
// default.
[[nodiscard]] Status CheckNoEmptyValues(const CLI::App& app);

// For commands that only read the store: true when `root` ("" = the
// default store) holds no store (no folder, or no VERSION file in it),
// after a note on stderr naming it. Such a store counts as empty and is
// not created. Errors only when the default store cannot be placed.
[[nodiscard]] Result<bool> StoreAbsent(const std::string& root);

// True when stderr is a terminal (progress and colour only then).
bool StderrIsTerminal();
// True when colour may be used on stderr (terminal and no NO_COLOR).
bool UseColor();

// Validates a whole number 0..max given as plain decimal digits, before
// CLI11 converts it: a sign, a fraction or a number past `max` (which
// CLI11 would wrap round or saturate) is a usage error naming the flag.
inline CLI::Validator WholeNumber(uint64_t max) {
  return CLI::Validator(
      [max](std::string& text) -> std::string {
        bool digits = !text.empty() && text.size() <= 20;
        for (char c : text) digits = digits && c >= '0' && c <= '9';
        uint64_t value = 0;
        for (char c : digits ? text : std::string()) {
          uint64_t d = static_cast<uint64_t>(c - '0');
          if (d > max || value > (max - d) / 10) {
            return "must be at most " + std::to_string(max);
          }
          value = value * 10 + d;
        }
        if (!digits) {
          return "must be a whole number from 0 to " + std::to_string(max);
        }
        return {};
      },
      "UINT<=" + std::to_string(max));
}

// A one-line progress display on a terminal for work that takes over a
// second; silent otherwise. Update() is cheap and rate-limited.
class Progress {
 public:
  Progress(std::string label, uint64_t total);
  ~Progress();
  void Update(uint64_t done);
  void Done();

 private:
  std::string label_;
  uint64_t total_;
  uint64_t start_ns_;
  uint64_t last_ns_ = 0;
  bool shown_ = false;
  bool enabled_;
};

}  // namespace egg::cli

#endif  // EGG_CLI_CLI_H_
