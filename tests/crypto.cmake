# egg_crypto: library tests, and interop tests against ssh-keygen/ssh-agent.
egg_test(test_crypto SOURCES crypto_test.cc DEPS egg_crypto)
egg_test(test_crypto_interop SOURCES crypto_interop_test.cc DEPS egg_crypto)
