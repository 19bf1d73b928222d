// What a sandboxed run may do and use. A Policy is built and validated by
// PolicyBuilder, then frozen: nothing runs under a half-built policy.
// The manifest parser produces the *requested* policy; hatch intersects it
// with what the person granted; sandbox backends enforce the result.
#ifndef EGG_POLICY_H_
#define EGG_POLICY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "egg/status.h"

namespace egg {

// Resource limits. An unset field means "use the default" when requested,
// and is always filled in the effective policy.
struct Limits {
  std::optional<uint64_t> wall_ms;        // wall-clock time
  std::optional<uint64_t> cpu_ms;         // CPU time (user + system)
  std::optional<uint64_t> memory_bytes;   // resident memory of the tree
  std::optional<uint64_t> processes;      // live tasks at once
  std::optional<uint64_t> scratch_bytes;  // writable scratch space
  std::optional<uint64_t> output_bytes;   // captured stdout + stderr

  bool operator==(const Limits&) const = default;
};

// A host path made visible inside the sandbox.
struct HostPath {
  std::string host;     // absolute, canonical path on the host
  std::string sandbox;  // absolute path inside the sandbox
  bool writable = false;

  bool operator==(const HostPath&) const = default;
};

// Extra permissions beyond deny-all. Each one weakens isolation and must be
// granted by the person hatching.
struct Permissions {
  bool network = false;                // a network beyond loopback
  std::vector<HostPath> host_paths;    // host folders or files
  std::vector<std::string> devices;    // e.g. "/dev/dri/renderD128"

  bool empty() const {
    return !network && host_paths.empty() && devices.empty();
  }
  bool operator==(const Permissions&) const = default;
};

// Defaults applied where an egg asks for nothing.
Limits DefaultEggLimits();   // for the whole egg
Limits DefaultCellLimits();  // for each cell

// Fills every unset field of `limits` from `defaults`.
Limits MergeLimits(const Limits& limits, const Limits& defaults);

// Upper bounds a manifest may ask for; larger values are rejected.
Limits MaximumLimits();

}  // namespace egg

#endif  // EGG_POLICY_H_
