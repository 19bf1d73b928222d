# The hostile-cell suite against every backend (namespaces, oci with runc
# and crun, gvisor, vm), reusing the sandbox component's probes.
# Not egg_test(): the vm instances and the example on every backend boot
# guests under TCG, so they are discovered apart and labelled slow.
add_executable(test_isolation isolation_test.cc)
target_link_libraries(test_isolation PRIVATE egg_sandbox egg_hatch
                      GTest::gtest_main)
target_compile_definitions(test_isolation PRIVATE
  EGG_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
  EGG_BINARY_DIR="${PROJECT_BINARY_DIR}")
gtest_discover_tests(test_isolation DISCOVERY_TIMEOUT 60
  TEST_FILTER "-*/vm:IsolationExample.*"
  PROPERTIES ENVIRONMENT "EGG_BIN=$<TARGET_FILE_DIR:egg>/egg")
gtest_discover_tests(test_isolation DISCOVERY_TIMEOUT 60
  TEST_FILTER "*/vm:IsolationExample.*"
  PROPERTIES ENVIRONMENT "EGG_BIN=$<TARGET_FILE_DIR:egg>/egg"
             LABELS slow TIMEOUT 900)
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
add_dependencies(test_isolation_vm egg_sandbox_probe egg-init egg)
target_compile_definitions(test_isolation_vm PRIVATE
  EGG_PROBE_DIR="${CMAKE_CURRENT_BINARY_DIR}/sandbox_probes")
gtest_discover_tests(test_isolation_vm DISCOVERY_TIMEOUT 60
  PROPERTIES LABELS slow TIMEOUT 600
             ENVIRONMENT "EGG_BIN=$<TARGET_FILE_DIR:egg>/egg")
