egg_test(test_store SOURCES store_test.cc DEPS egg_store)
