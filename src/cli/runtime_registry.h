// Runtimes through OCI registries on the command line: `egg runtime push`
// and `egg runtime fetch` (added to the `runtime` command), and the fetch
// of a manifest's `oci://host/repo@sha256:...` runtime that `egg build`
// and `egg update-runtime` share.
#ifndef EGG_CLI_RUNTIME_REGISTRY_H_
#define EGG_CLI_RUNTIME_REGISTRY_H_

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

}  // namespace egg::cli

#endif  // EGG_CLI_RUNTIME_REGISTRY_H_
