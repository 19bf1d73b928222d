// Where the negative tests plant host secrets.
#ifndef EGG_TESTS_HOST_TEST_UTIL_H_
#define EGG_TESTS_HOST_TEST_UTIL_H_

#include <pwd.h>

#include <string>

namespace egg_test {

// The superuser's home folder, from the password database: the host
// folder a cell must never read (issue: "a file the test plants in the
// host's /root").
inline std::string RootHome() {
  const passwd* pw = getpwuid(0);
  return pw != nullptr && pw->pw_dir != nullptr && pw->pw_dir[0] == '/'
             ? std::string(pw->pw_dir)
             : std::string("/");
}

}  // namespace egg_test

#endif  // EGG_TESTS_HOST_TEST_UTIL_H_
