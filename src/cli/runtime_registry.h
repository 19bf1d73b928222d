// Runtimes through OCI registries on the command line: `egg runtime push`
// and `egg runtime fetch` (added to the `runtime` command), and the fetch
// of a manifest's `oci://host/repo@sha256:...` runtime that `egg build`
// and `egg update-runtime` share.
#ifndef EGG_CLI_RUNTIME_REGISTRY_H_
#define EGG_CLI_RUNTIME_REGISTRY_H_

#include <nlohmann/json.hpp>
#include <string>

#include "cli/cli.h"
#include "egg/registry.h"
#include "egg/store.h"

namespace egg::cli {

// Adds "push" and "fetch" below `runtime`. The returned runner runs the
// one that was parsed, or returns -1 when neither was.
Runner AddRuntimeRegistryCommands(CLI::App* runtime);

// Fetches the runtime `reference` pins (oci://host/repo@sha256:<manifest>)
// into `store` through the trust config at `trust_path` (empty: the
// default file if present), with every check of FetchRuntime, and reports
// what was fetched and who signed it on stderr.
[[nodiscard]] Result<RuntimeFetchResult> FetchPinnedRuntime(
    const std::string& reference, const std::string& trust_path, Store& store);

// When the egg's manifest says its runtime is version N of a registry
// runtime (kind oci, "name", "version") and the default trust config's
// runtime_versions records a newer trusted version of that name, prints a
// warning suggesting `egg update-runtime`. Silent otherwise, including
// when the trust config or state file cannot be read (hatch does not
// depend on them).
void WarnIfRuntimeSuperseded(const nlohmann::json& manifest);

}  // namespace egg::cli

#endif  // EGG_CLI_RUNTIME_REGISTRY_H_
