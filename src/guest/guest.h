// Pieces shared by egg-init's two modes (src/guest/init.cc). egg-init is
// a static program that links nothing of libegg.
#ifndef EGG_GUEST_GUEST_H_
#define EGG_GUEST_GUEST_H_

#include <linux/filter.h>

#include <string>
#include <vector>

namespace egg::guest {

// Moves fd `slot` (-1: a fresh /dev/null) to fd `target`.
struct FdMove {
  int slot = -1;
  int target = -1;
};

// Prints "egg-init: <step>: <reason>" on stderr and exits with 125.
[[noreturn]] void Die(const std::string& step, const std::string& reason);
[[noreturn]] void DieErrno(const std::string& step);

// Reads a whole file of at most `max` bytes; false on any error.
bool ReadWhole(const std::string& path, std::string* out, size_t max);
// "SLOT:TARGET" or "n:TARGET"; both below 1024.
bool ParseFdMove(const std::string& text, FdMove* move);
// The seccomp file (src/guest/seccomp_file.h): exactly two programs.
bool DecodeSeccomp(const std::string& bytes,
                   std::vector<std::vector<sock_filter>>* programs);
// Applies the moves, then closes every fd that is not a target (or keep).
void ApplyFdMap(const std::vector<FdMove>& moves, int keep);
// Sets no_new_privs and loads each program; dies on failure.
void LoadSeccomp(const std::vector<std::vector<sock_filter>>& programs);
[[noreturn]] void ExecCommand(const std::vector<std::string>& argv);

// The micro-VM's PID 1 (src/guest/vm_init.cc).
int VmMain(int argc, char** argv);

}  // namespace egg::guest

#endif  // EGG_GUEST_GUEST_H_
