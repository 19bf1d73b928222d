# Starts a Python session with the display driver (python_display.py).
#
# A script run as a program is compiled from source at every start; a
# module is not when its folder holds current bytecode. egg's build puts
# python_display.py's bytecode in this folder's __pycache__ as a
# checked-hash .pyc: the interpreter uses it only if the hash of the
# source beside it matches (any other interpreter version, or an edited
# source, compiles from source as before). In a sandbox this folder is
# bound read-only, so nothing a cell does reaches what a later session
# or hatch loads. The module is loaded by path, not through sys.path,
# so no folder a cell can write is searched.
import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
    "python_display",
    os.path.join(os.path.dirname(os.path.abspath(__file__)),
                 "python_display.py"))
_driver = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_driver)
_driver.main()
