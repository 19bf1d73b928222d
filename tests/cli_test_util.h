// Helpers for tests that run the built `egg` binary.
#ifndef EGG_TESTS_CLI_TEST_UTIL_H_
#define EGG_TESTS_CLI_TEST_UTIL_H_

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace egg_test {

// $EGG_BIN, or the egg built beside the tests.
inline std::string EggBin() {
  const char* bin = getenv("EGG_BIN");
  return bin ? bin : std::string(EGG_BINARY_DIR) + "/egg";
}

// The whole file, or "" if it cannot be read.
inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// What one run of egg gave.
struct EggRun {
  int code = -1;  // the exit code, or 128 + the signal that ended it
  std::string out;
  std::string err;
};

// How RunEggCapture runs egg beyond its defaults.
struct EggRunOptions {
  // egg's store lives under this folder (XDG_CACHE_HOME=<it>/cache);
  // "" leaves the user's own.
  std::string cache_home;
  // HOME and XDG_CONFIG_HOME under this folder too (keys, trust); "" none.
  std::string config_home;
  // stdout goes to this descriptor (kept open in the child), else a file.
  int stdout_fd = -1;
  bool ignore_sigpipe = false;  // an ignored signal stays so across exec
};

// Runs egg ARGS with no controlling terminal and stdin /dev/null; stdout
// and stderr go through files in `dir`. SOURCE_DATE_EPOCH is never
// inherited.
inline EggRun RunEggCapture(const std::string& dir,
                            const std::vector<std::string>& args,
                            const EggRunOptions& options) {
  std::string out_path = dir + "/stdout";
  std::string err_path = dir + "/stderr";
  pid_t pid = fork();
  if (pid == 0) {
    setsid();
    if (!options.cache_home.empty()) {
      setenv("XDG_CACHE_HOME", (options.cache_home + "/cache").c_str(), 1);
    }
    if (!options.config_home.empty()) {
      setenv("HOME", (options.config_home + "/home").c_str(), 1);
      setenv("XDG_CONFIG_HOME", (options.config_home + "/home/config").c_str(),
             1);
    }
    unsetenv("SOURCE_DATE_EPOCH");
    if (options.ignore_sigpipe) signal(SIGPIPE, SIG_IGN);
    int devnull = open("/dev/null", O_RDWR);
    int ofd = options.stdout_fd >= 0
                  ? options.stdout_fd
                  : open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int efd = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (devnull < 0 || ofd < 0 || efd < 0) _exit(126);
    dup2(devnull, 0);
    dup2(ofd, 1);
    dup2(efd, 2);
    std::vector<std::string> all = {EggBin()};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  EggRun run;
  int ws = 0;
  if (pid < 0 || waitpid(pid, &ws, 0) != pid) return run;
  run.code = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
  run.out = ReadFile(out_path);
  run.err = ReadFile(err_path);
  return run;
}

// RunEggCapture with the store under `cache_home` ("" for the user's).
inline EggRun RunEggCapture(const std::string& dir,
                            const std::vector<std::string>& args,
                            const std::string& cache_home) {
  EggRunOptions options;
  options.cache_home = cache_home;
  return RunEggCapture(dir, args, options);
}

// RunEggCapture with the store under `home`; the exit code, stderr in
// *err.
inline int RunEgg(const std::string& home, const std::vector<std::string>& args,
                  std::string* err) {
  EggRun run = RunEggCapture(home, args, home);
  *err = run.err;
  return run.code;
}

}  // namespace egg_test

#endif  // EGG_TESTS_CLI_TEST_UTIL_H_
