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

# The micro-VM backend: encodings (fast) and real QEMU boots (slow).
add_executable(test_isolation_vm isolation_vm_test.cc)
target_link_libraries(test_isolation_vm PRIVATE egg_sandbox GTest::gtest_main)
add_dependencies(test_isolation_vm egg_sandbox_probe egg-init)
target_compile_definitions(test_isolation_vm PRIVATE
  EGG_PROBE_DIR="${CMAKE_CURRENT_BINARY_DIR}/sandbox_probes")
gtest_discover_tests(test_isolation_vm DISCOVERY_TIMEOUT 60
  PROPERTIES LABELS slow TIMEOUT 600)
