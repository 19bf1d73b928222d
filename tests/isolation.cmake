# The hostile-cell suite against every backend (namespaces, oci with runc
# and crun, gvisor, vm), reusing the sandbox component's probes.
egg_test(test_isolation SOURCES isolation_test.cc DEPS egg_sandbox)
add_dependencies(test_isolation egg_sandbox_probe egg_sandbox_runner egg-init)
target_compile_definitions(test_isolation PRIVATE
  EGG_PROBE_DIR="${CMAKE_CURRENT_BINARY_DIR}/sandbox_probes")
