// The files a hatch's cells leave in /out (the host's output folder):
// listed before and after each cell to report what a cell wrote, and
// counted against the egg's output cap. Shared by the built-in drivers'
// runner (run_cells.cc) and the Jupyter kernel runner (egg_kernel).
#ifndef EGG_HATCH_OUT_FILES_H_
#define EGG_HATCH_OUT_FILES_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "egg/hatch.h"

namespace egg::hatch {

// What identifies a version of a file: a cell that rewrites a file
// changes at least one of these.
struct FileStamp {
  uint64_t size;
  int64_t mtime_ns;
  uint64_t inode;
  // What the file holds on disk (st_blocks * 512); above `size` when
  // blocks were reserved past the end.
  uint64_t allocated = 0;
  bool operator==(const FileStamp&) const = default;
};
// Regular files by path relative to the folder ("a/b.txt").
using Listing = std::map<std::string, FileStamp>;

inline constexpr size_t kMaxListedFiles = 100000;
inline constexpr int kMaxListDepth = 64;
// OutTotal of a folder that cannot be counted (nested past
// kMaxListDepth, or kMaxListedFiles files or more).
inline constexpr uint64_t kOutUncountable = UINT64_MAX;

// Lists the regular files below `dir` without following links; ""
// gives an empty listing. Past kMaxListDepth levels sets *too_deep and
// goes no further; stops at kMaxListedFiles files.
Listing ListOutput(const std::string& dir, bool* too_deep = nullptr);

// Bytes of everything below `dir`, each file counted by the larger of
// its apparent size (a sparse file counts in full) and what it holds on
// disk (blocks reserved past its end count too), or kOutUncountable.
uint64_t OutTotal(const std::string& dir);

// Bytes held on the file system `dev` by files that `root` or any of its
// descendants (host pids, found through /proc/PID/task/TID/children)
// hold open after deleting them: each file once, by the larger of its
// apparent size and its blocks. What cannot be read counts as nothing.
// `skip_root_fds`: `root` is egg's own agent, which opens nothing in
// /out and is handed no descriptor by a cell; its children are walked,
// its descriptors are not looked at.
uint64_t DeletedOpenBytes(int root, dev_t dev, bool skip_root_fds = false);

// The same for the processes `pids` (host pids, e.g. every member of the
// box's control group), without walking their children.
uint64_t DeletedOpenBytesOf(const std::vector<int>& pids, dev_t dev);

// OutTotal of a listing already made by ListOutput (`too_deep` as it
// set it), so that one walk of /out serves both the cap and the report.
uint64_t ListingTotal(const Listing& listing, bool too_deep);

// Whether a cell that started with `baseline` bytes in /out has passed
// `cap` (0: no cap): over the cap and grown, or uncountable.
bool OutOverCap(uint64_t total, uint64_t baseline, uint64_t cap);

// The files of `after` that are new or changed since `before`, with
// their SHA-256 (hex; "" if the file could not be read).
std::vector<OutputFile> ChangedFiles(const std::string& dir,
                                     const Listing& before,
                                     const Listing& after);

// What the `files` lists of one run may hold together, counted as each
// entry's path plus kFileEntryCost: the results stay bounded however
// many files cells make or touch.
constexpr uint64_t kFileListBudget = 8 << 20;
constexpr uint64_t kFileEntryCost = 128;

// Keeps the entries of `files` that `*budget` still pays for, in order,
// and takes their cost from it; returns how many were dropped.
size_t TrimFileList(std::vector<OutputFile>* files, uint64_t* budget);

}  // namespace egg::hatch

#endif  // EGG_HATCH_OUT_FILES_H_
