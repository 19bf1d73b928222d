// An agent run as a plain child process, with no isolation: for tests and
// for `egg hatch --no-sandbox`.
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/fd.h"
#include "egg/hatch.h"

namespace egg {
namespace {

class LocalAgentHost : public AgentHost {
 public:
  LocalAgentHost(pid_t pid, UniqueFd fd) : pid_(pid), fd_(std::move(fd)) {}
  ~LocalAgentHost() override {
    Kill();
    Reap(true);
  }

  int control_fd() const override { return fd_.get(); }
  Status BeforeCell(const Limits&) override {
    // TODO(security): no memory/CPU/process limits without a sandbox; the
    // agent still enforces wall time and the output cap.
    return {};
  }
  std::optional<HostEnd> Ended() override {
    Reap(false);
    if (!ended_) return std::nullopt;
    return end_;
  }
  void Kill() override {
    if (!ended_ && pid_ > 0) kill(pid_, SIGKILL);
  }

 private:
  void Reap(bool block) {
    if (ended_ || pid_ <= 0) return;
    int ws = 0;
    pid_t r =
        RetryEintr([&] { return waitpid(pid_, &ws, block ? 0 : WNOHANG); });
    if (r != pid_) return;
    ended_ = true;
    if (WIFSIGNALED(ws)) {
      end_.reason = "agent killed by signal " + std::to_string(WTERMSIG(ws));
    } else {
      end_.reason =
          "agent exited with status " + std::to_string(WEXITSTATUS(ws));
    }
  }

  pid_t pid_;
  UniqueFd fd_;
  bool ended_ = false;
  HostEnd end_;
};

}  // namespace

Result<std::unique_ptr<AgentHost>> StartLocalAgent(
    const std::string& agent_path) {
  if (access(agent_path.c_str(), X_OK) != 0) {
    return Fail(ErrnoError("agent '" + agent_path + "'"));
  }
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return Fail(ErrnoError("socketpair"));
  }
  UniqueFd ours(sv[0]);
  UniqueFd theirs(sv[1]);
  std::string path = agent_path;
  char arg0[] = "egg-agent";
  char* argv[] = {arg0, nullptr};
  char* envp[] = {nullptr};
  pid_t pid = fork();
  if (pid < 0) return Fail(ErrnoError("fork"));
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    int fd = theirs.get() == 3 ? 3 : dup2(theirs.get(), 3);
    if (fd != 3) _exit(127);
    if (theirs.get() == 3) fcntl(3, F_SETFD, 0);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
    }
    execve(path.c_str(), argv, envp);
    _exit(127);
  }
  theirs.Reset();
  return std::unique_ptr<AgentHost>(
      std::make_unique<LocalAgentHost>(pid, std::move(ours)));
}

Result<AgentFiles> FindAgentFiles() {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) return Fail(ErrnoError("finding the egg executable"));
  exe[n] = '\0';
  std::string dir(exe);
  dir = dir.substr(0, dir.rfind('/'));
  for (const std::string& base : {dir, dir + "/../lib/egg"}) {
    AgentFiles files{base + "/egg-agent", base + "/drivers"};
    struct stat st;
    if (access(files.agent.c_str(), X_OK) == 0 &&
        stat(files.drivers_dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      return files;
    }
  }
  return Fail(Code::kNotFound, "egg-agent and drivers/ not found beside '" +
                                   std::string(exe) + "' or in ../lib/egg");
}

}  // namespace egg
