egg_test(test_notebook SOURCES notebook_test.cc DEPS egg_notebook)
