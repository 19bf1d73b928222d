# The sandbox's hostile-cell suite: probes run inside the sandbox and the
# tests assert what they could not do.
add_executable(egg_sandbox_probe probes/sandbox_probe.cc)
add_executable(egg_sandbox_runner probes/sandbox_runner.cc)
target_link_libraries(egg_sandbox_runner PRIVATE egg_sandbox)
# Linked as `egg` is (src/cli/CMakeLists.txt), so that the benchmark's
# fresh runner per session starts as `egg hatch` does.
if(EGG_STATIC_LIBS AND NOT EGG_SANITIZE)
  target_link_options(egg_sandbox_runner PRIVATE -static-libstdc++
                      -static-libgcc)
endif()
set_target_properties(egg_sandbox_probe egg_sandbox_runner PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/sandbox_probes)

egg_test(test_sandbox SOURCES sandbox_test.cc DEPS egg_sandbox)
add_dependencies(test_sandbox egg_sandbox_probe egg_sandbox_runner)
target_compile_definitions(test_sandbox PRIVATE
  EGG_PROBE_DIR="${CMAKE_CURRENT_BINARY_DIR}/sandbox_probes")
