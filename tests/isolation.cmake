# The hostile-cell suite against every backend (namespaces, oci with runc
# and crun, gvisor, vm), reusing the sandbox component's probes.
egg_test(test_isolation SOURCES isolation_test.cc DEPS egg_sandbox egg_hatch)
add_dependencies(test_isolation egg_sandbox_probe egg_sandbox_runner egg-init
                 egg-agent)
target_compile_definitions(test_isolation PRIVATE
  EGG_PROBE_DIR="${CMAKE_CURRENT_BINARY_DIR}/sandbox_probes")

# bench/isolation_bench.sh drives this: hatching time per backend.
add_executable(egg_isolation_bench ${PROJECT_SOURCE_DIR}/bench/isolation_bench_tool.cc)
target_link_libraries(egg_isolation_bench PRIVATE egg_hatch)
add_dependencies(egg_isolation_bench egg-init)
