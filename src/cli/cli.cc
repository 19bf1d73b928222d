#include "cli/cli.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "common/fd.h"
#include "common/text.h"
#include "egg/store.h"

namespace egg::cli {
namespace {

uint64_t NowNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

int stdout_errno = 0;

ssize_t WriteStdout(void*, const char* data, size_t size) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = RetryEintr(
        [&] { return ::write(STDOUT_FILENO, data + done, size - done); });
    if (n < 0) {
      stdout_errno = errno;
      return done > 0 ? static_cast<ssize_t>(done) : -1;
    }
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(size);
}

}  // namespace

void CaptureStdoutErrors() {
  cookie_io_functions_t io = {};
  io.write = WriteStdout;
  FILE* out = ::fopencookie(nullptr, "w", io);
  if (out == nullptr) return;  // stdio's own stdout: errors less precise
  std::setvbuf(out, nullptr, ::isatty(STDOUT_FILENO) == 1 ? _IOLBF : _IOFBF,
               BUFSIZ);
  std::fflush(stdout);
  stdout = out;
}

void NoteStdoutError(int err) {
  if (stdout_errno == 0) stdout_errno = err;
}

Status FinishStdout() {
  errno = 0;
  bool failed = std::fflush(stdout) != 0 || std::ferror(stdout) != 0;
  if (!failed && stdout_errno == 0) return {};
  int err = stdout_errno != 0 ? stdout_errno : errno != 0 ? errno : EIO;
  return Fail(ErrnoError("writing to stdout", err));
}

namespace {

// `path` is the command's words so far ("store ls").
Status CheckNoEmptyValuesUnder(const CLI::App& app, const std::string& path) {
  for (const CLI::Option* opt : app.get_options()) {
    // Flags take no value; only options that carry one are checked.
    if (opt->get_type_size_max() == 0 || opt->count() == 0) continue;
    for (const std::string& value : opt->results()) {
      if (!value.empty()) continue;
      std::string name = opt->get_name();
      bool positional = name.empty() || name[0] != '-';
      if (name.empty()) name = opt->get_name(true);
      if (positional) {
        return Fail(Code::kInvalidArgument,
                    path + ": the " + name + " argument is empty");
      }
      return Fail(Code::kInvalidArgument,
                  path + " " + name +
                      ": empty value (leave the option out for its default)");
    }
  }
  for (const CLI::App* sub : app.get_subcommands({})) {
    if (!sub->parsed()) continue;
    std::string words =
        path.empty() ? sub->get_name() : path + " " + sub->get_name();
    if (auto s = CheckNoEmptyValuesUnder(*sub, words); !s) {
      return s;
    }
  }
  return {};
}

}  // namespace

Status CheckNoEmptyValues(const CLI::App& app) {
  return CheckNoEmptyValuesUnder(app, "");
}

Result<bool> StoreAbsent(const std::string& root) {
  std::string folder = root;
  if (folder.empty()) {
    auto fallback = Store::DefaultRoot();
    if (!fallback) return Fail(fallback.error());
    folder = *fallback;
  }
  struct stat st;
  if (::lstat((folder + "/VERSION").c_str(), &st) == 0 ||
      (errno != ENOENT && errno != ENOTDIR)) {
    return false;
  }
  std::fprintf(stderr, "egg: no store at %s: nothing is stored there\n",
               EscapeForTerminal("'" + folder + "'").c_str());
  return true;
}

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
