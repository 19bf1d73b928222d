# egg_crypto: library tests, interop tests against ssh-keygen/ssh-agent, and
# tests of the keygen/sign/verify commands (they need the egg binary).
egg_test(test_crypto SOURCES crypto_test.cc DEPS egg_crypto)
egg_test(test_crypto_interop SOURCES crypto_interop_test.cc format_test_util.cc
  DEPS egg_crypto egg_format)
egg_test(test_crypto_cli SOURCES crypto_cli_test.cc format_test_util.cc
  DEPS egg_crypto egg_format nlohmann_json::nlohmann_json)
