// A folder under /tmp made for one test and removed, with everything in
// it, when the test is done.
#ifndef EGG_TESTS_TEMP_DIR_H_
#define EGG_TESTS_TEMP_DIR_H_

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace egg_test {

class TempDir {
 public:
  // /tmp/<prefix>-XXXXXX; a test that cannot make it fails.
  explicit TempDir(const std::string& prefix = "egg-test") {
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
    EXPECT_FALSE(path_.empty()) << "cannot make a folder under /tmp";
  }
  ~TempDir() {
    if (path_.empty()) return;
    // Extracted trees may hold read-only folders: open them up first.
    std::error_code ec;
    namespace fs = std::filesystem;
    for (auto it = fs::recursive_directory_iterator(path_, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) {
        ::chmod(it->path().c_str(), 0755);
      }
    }
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace egg_test

#endif  // EGG_TESTS_TEMP_DIR_H_
