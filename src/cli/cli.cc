#include "cli/cli.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "common/text.h"

namespace egg::cli {
namespace {

uint64_t NowNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

}  // namespace

int Report(const Error& error) {
  std::string line = "egg: " + EscapeForTerminal(error.message()) + "\n";
  std::fputs(line.c_str(), stderr);
  return ExitCodeFor(error.code());
}

void Warn(const std::string& message) {
  std::string line = UseColor() ? "\x1b[1;33megg: warning:\x1b[0m "
                                : "egg: warning: ";
  line += EscapeForTerminal(message) + "\n";
  std::fputs(line.c_str(), stderr);
}

bool StderrIsTerminal() { return ::isatty(STDERR_FILENO) == 1; }

bool UseColor() {
  const char* no_color = std::getenv("NO_COLOR");
  return StderrIsTerminal() && (no_color == nullptr || *no_color == '\0');
}

Progress::Progress(std::string label, uint64_t total)
    : label_(std::move(label)),
      total_(total),
      start_ns_(NowNs()),
      enabled_(StderrIsTerminal()) {}

Progress::~Progress() { Done(); }

void Progress::Update(uint64_t done) {
  if (!enabled_) return;
  uint64_t now = NowNs();
  if (now - start_ns_ < 1000000000ull || now - last_ns_ < 100000000ull) {
    return;
  }
  last_ns_ = now;
  shown_ = true;
  double pct = total_ ? 100.0 * static_cast<double>(done) /
                            static_cast<double>(total_)
                      : 0.0;
  std::fprintf(stderr, "\r\x1b[K%s %5.1f%% (%llu / %llu MiB)", label_.c_str(),
               pct, static_cast<unsigned long long>(done >> 20),
               static_cast<unsigned long long>(total_ >> 20));
  std::fflush(stderr);
}

void Progress::Done() {
  if (shown_) {
    std::fputs("\r\x1b[K", stderr);
    std::fflush(stderr);
    shown_ = false;
  }
}

}  // namespace egg::cli
