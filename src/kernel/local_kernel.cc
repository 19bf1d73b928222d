// StartLocalKernel: a kernel process on this host, with no isolation.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common/fd.h"
#include "egg/kernel.h"

namespace egg {
namespace {

class LocalKernel final : public KernelProcess {
 public:
  explicit LocalKernel(pid_t pid) : pid_(pid) {}
  ~LocalKernel() override { Kill(); }

  std::optional<std::string> Ended() override {
    if (!reaped_) {
      int ws = 0;
      pid_t r = RetryEintr([&] { return waitpid(pid_, &ws, WNOHANG); });
      if (r == 0) return std::nullopt;
      reaped_ = true;
      if (r < 0) {
        why_ = "lost track of the kernel process";
      } else if (WIFSIGNALED(ws)) {
        why_ = "killed by signal " + std::to_string(WTERMSIG(ws));
      } else {
        why_ = "exited with status " + std::to_string(WEXITSTATUS(ws));
      }
      // Whatever the kernel started dies with it.
      kill(-pid_, SIGKILL);
    }
    return why_;
  }

  void Kill() override {
    if (reaped_) return;
    kill(-pid_, SIGKILL);
    kill(pid_, SIGKILL);
    int ws = 0;
    RetryEintr([&] { return waitpid(pid_, &ws, 0); });
    reaped_ = true;
    if (why_.empty()) why_ = "killed by egg";
  }

  bool Interrupt() override {
    if (reaped_) return false;
    return kill(pid_, SIGINT) == 0;
  }

 private:
  pid_t pid_;
  bool reaped_ = false;
  std::string why_;
};

}  // namespace

Result<std::unique_ptr<KernelProcess>> StartLocalKernel(
    const KernelSpec& spec, const std::string& connection_file,
    const std::vector<std::string>& env, int log_fd) {
  std::vector<std::string> argv = spec.argv;
  for (auto& a : argv) {
    size_t at;
    while ((at = a.find("{connection_file}")) != std::string::npos) {
      a.replace(at, 17, connection_file);
    }
  }
  std::vector<char*> cargv, cenv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  std::vector<std::string> env_copy = env;
  for (auto& e : env_copy) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  auto devnull = OpenFile("/dev/null", O_RDWR);
  if (!devnull) return Fail(devnull.error());
  int out = log_fd >= 0 ? log_fd : devnull->get();

  pid_t pid = fork();
  if (pid < 0) return Fail(ErrnoError("fork"));
  if (pid == 0) {
    setsid();
    signal(SIGINT, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    dup2(devnull->get(), 0);
    dup2(out, 1);
    dup2(out, 2);
    if (cargv[0][0] == '/') {
      execve(cargv[0], cargv.data(), cenv.data());
    } else {
      execvpe(cargv[0], cargv.data(), cenv.data());
    }
    _exit(127);
  }
  return std::unique_ptr<KernelProcess>(std::make_unique<LocalKernel>(pid));
}

}  // namespace egg
