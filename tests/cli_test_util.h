// Helpers for tests that run the built `egg` binary.
#ifndef EGG_TESTS_CLI_TEST_UTIL_H_
#define EGG_TESTS_CLI_TEST_UTIL_H_

#include <fcntl.h>
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

// Runs egg with no terminal, stdin /dev/null and the store under `home`;
// returns the exit code, stderr in *err.
inline int RunEgg(const std::string& home,
                  const std::vector<std::string>& args, std::string* err) {
  std::string err_path = home + "/stderr";
  pid_t pid = fork();
  if (pid == 0) {
    setsid();
    setenv("XDG_CACHE_HOME", (home + "/cache").c_str(), 1);
    int devnull = open("/dev/null", O_RDWR);
    int efd = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(efd, 2);
    std::vector<std::string> all = {EggBin()};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int ws = 0;
  waitpid(pid, &ws, 0);
  *err = ReadFile(err_path);
  return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

}  // namespace egg_test

#endif  // EGG_TESTS_CLI_TEST_UTIL_H_
