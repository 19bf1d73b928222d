# The Jupyter kernel path: codec, kernelspecs, the client against the
# host's ipykernel, and kernels started through egg-agent.
egg_test(test_kernel SOURCES kernel_test.cc DEPS egg_kernel egg_sandbox)
add_dependencies(test_kernel egg-agent)
add_dependencies(test_kernel egg egg_drivers)
