# Registry client, egg and runtime transport tests. The hostile cases run
# against tests/registry_hostile_server.py; the rest against Debian's
# docker-registry, both started on 127.0.0.1 by the tests themselves.
egg_test(test_registry
  SOURCES registry_client_test.cc registry_egg_test.cc
          registry_runtime_test.cc
  DEPS egg_registry egg_format egg_store egg_runtime egg_crypto)
