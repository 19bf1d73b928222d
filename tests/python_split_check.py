# Checks the display driver's split of a cell without the parser
# (_split_last_statement in python_display.py) against the parser's
# (_split_by_parser): for every cell below where the fast split gives an
# answer, running both splits shows the same values, prints the same
# text, raises the same error at the same lines and warns alike. Cells
# the fast split must answer are listed too, so that a split that always
# gives up fails here.
#
# usage: python3 python_split_check.py DRIVERS_DIR
import importlib.util
import io
import os
import re
import sys
import traceback
import warnings

spec = importlib.util.spec_from_file_location(
    "python_display", os.path.join(sys.argv[1], "python_display.py"))
driver = importlib.util.module_from_spec(spec)
spec.loader.exec_module(driver)

FILENAME = "<cell 1>"

# (source, whether the fast split must answer it)
CELLS = [
    ("x = 1", True),
    ("1 + 1", True),
    ("x = 1\nx", True),
    ("x = 1\nx;", False),
    ("x = 1\nx  # the value\n", True),
    ("x = 2\n# done\n\n", True),
    ("'doc'", True),
    ("'doc'\nx = 2", True),
    ("'doc'\nx = 2\nx", True),
    ("if True:\n    5\n", True),
    ("for i in range(3): i", True),
    ("for i in range(3):\n    i\nelse:\n    7", False),
    ("def f():\n    return 1\nf()", True),
    ("def f():\n    return 1\n\nf", True),
    ("class A:\n    pass\nA.__name__", True),
    ("x = (1,\n2)", True),
    ("a = 1\nb = (2,\n3)\nb", True),
    ("a = {\n'k':\n1,\n}\na", True),
    ("d = {\n1: 2,\n3: 4,\n5: 6,\n7: 8,\n}", False),
    ("if a:\n    b = (1,\n2)", False),
    ("x = 1\ny = [\n2]", True),
    ("(1,\n2)", True),
    ("foo = [\n1,\n2]\nfoo", True),
    ("[\n1,\n2]", True),
    ('s = """\nabc\n"""\ns', True),
    ('s = """\nabc\n"""', True),
    ('print("""\nabc""")', True),
    ("x = 1 + \\\n2\nx", True),
    ("x = 1 + \\\n2", True),
    ("*a, b = [1, 2, 3]\na", True),
    ("a, *b = 1, 2\nb", True),
    ("x = [1, 2]\n*x, 3", True),
    ("match = 3\nmatch", False),
    ("with open('/dev/null') as f:\n    f.read()", True),
    ("try:\n    1/0\nexcept ZeroDivisionError:\n    'caught'", False),
    ("x = 1\nif x:\n    x\nelif x:\n    2\nelse:\n    3", False),
    ("lambda: 1", True),
    ("print('a'); 5", False),
    ("import os\nos.sep", True),
    ("x = 5\nx is 5", True),
    ("x = 5\ny = x is 5", True),
    ("s = '\\d'\ns", True),
    ("1/0", True),
    ("x = 1\n1/0", True),
    ("def g():\n    return 1/0\nx = 1\ng()", True),
    ("def f(:\n", False),
    ("x = (", False),
    ("  x = 1", False),
    ("return 5", False),
    ("yield 1", False),
    ("await x", False),
    ("global x\nx = 1", False),
    ("x = 1\nglobal x", False),
    ("from __future__ import annotations\nx: int = 1\nx", False),
    ("x = 1\nfrom __future__ import annotations", False),
    ("if x:\n\tpass", True),
    ("x = 1\n\n\n", True),
    ("\n\nx = 3\nx\n\n", True),
    ("\u00e9 = 1\n\u00e9", True),
    ("x = '''\n;\n'''\nx", True),
    ("iffy = 3\niffy", True),
    ("class_ = 3\nclass_", True),
    ("for_ = [1]\nfor_", True),
    ("x = {1: 2}\nx[1]", True),
    ("@staticmethod\ndef p(): pass", False),
    ("async def f():\n    pass", True),
    ("x: int = 4\nx", True),
    ("x: int = 4\n__annotations__", True),
    ("del undefined_name", True),
    ("import sys\nsys.displayhook is not None", True),
    ("print('a')\nprint('b')", True),
    ("x = 1\nx\r\n", False),
    ("a = 1\n\\\nb = 2", False),
    ("", False),
    ("# only a comment", False),
    ("pass", True),
    ("def f():\n    x = 1\n    x\nf()", True),
    ("class C:\n    def __repr__(self):\n        return 'C!'\nC()", True),
    ("None", True),
    ("x = 3\nx if x else 4", True),
    ("raise ValueError('boom')", True),
    ("assert False, 'no'", True),
    ("x = [i for i in range(3)]\n[i * 2 for i in x]", True),
    ("with_ = 1\nwith_", True),
    ("import warnings\nwarnings.warn('careful')\n1", True),
]


def run(split):
    """What running a split shows: values, text, error, warnings."""
    shown = []
    namespace = {"__name__": "__main__"}
    out = io.StringIO()
    old_out, old_hook = sys.stdout, sys.displayhook
    error = None
    sys.stdout = out
    sys.displayhook = lambda v: shown.append(
        re.sub(r" at 0x[0-9a-f]+", "", repr(v))) if v is not None else None
    try:
        codes, last = split
        for code in codes:
            exec(code, namespace)
        if last is not None:
            exec(last, namespace)
    except BaseException:
        etype, value, tb = sys.exc_info()
        lines = [frame.lineno for frame in traceback.extract_tb(tb)
                 if frame.filename == FILENAME]
        error = (etype.__name__, str(value), lines)
    finally:
        sys.stdout, sys.displayhook = old_out, old_hook
    return shown, out.getvalue(), error


def observe(make, source):
    """run(make(source)) with the warnings of compiling and running."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            split = make(source, FILENAME)
        except SyntaxError as e:
            return ("syntax", e.msg, e.lineno), []
        if split is None:
            return None, []
        result = run(split)
    return result, [(w.category.__name__, str(w.message), w.lineno)
                    for w in caught]


def as_the_driver_does(source, filename):
    """The split the driver uses: without the parser, else with it."""
    split = driver._split_last_statement(source, filename)
    return split if split is not None else driver._split_by_parser(
        source, filename)


CELLS += [
    # Warnings of a head compiled before the split gave up.
    ("w = 1\nif w is 1:\n    pass\nelse:\n    pass", False),
    ("w = 1\nif w is 1:\n    pass\nw", True),
    ('"#";', False),
    ('x = {"#": 1}\nx["#"];', False),
    ("x = 1\nx # a;b", False),
]

failures = []
answered = 0
# Whatever path a cell takes, it shows what the parser alone shows and
# warns as often.
for source, _ in CELLS:
    flow, flow_warnings = observe(as_the_driver_does, source)
    slow, slow_warnings = observe(driver._split_by_parser, source)
    if flow != slow or flow_warnings != slow_warnings:
        failures.append("%r as the driver runs it: %r %r, parser alone %r %r"
                        % (source, flow, flow_warnings, slow, slow_warnings))

# The semicolon rule, from where the parser says the value ends.
for source, shown in [('"#";', []), ('x = {"#": 1}\nx["#"];', []),
                      ("x = 2\nx # a;b", ["2"]), ("3 ;  # c", []),
                      ("(4,\n5);", []), ("6", ["6"])]:
    result, _ = observe(driver._split_by_parser, source)
    if result[0] != shown:
        failures.append("%r shows %r, should show %r"
                        % (source, result[0], shown))

# Magics only where the cell is not Python as written.
for source, translated in [
        ("a, b = 1, 2\nif (\n    a\n    != b\n):\n    print('differ')", False),
        ('name, n = "x", 2\nmsg = ("%s has %d items"\n       % (name, n))',
         False),
        ('s = """\n%d items\n!important\n"""', False),
        ("%matplotlib inline\nx = 1", True),
        ("!ls\n", True)]:
    out = driver._translate_magics(source, FILENAME)
    if (out != source) != translated:
        failures.append("%r: translated to %r" % (source, out))
for source, must_answer in CELLS:
    fast, fast_warnings = observe(driver._split_last_statement, source)
    if fast is None:
        if must_answer:
            failures.append("the fast split gave up on %r" % source)
        continue
    answered += 1
    if not must_answer:
        failures.append("the fast split answered %r, which it must leave "
                        "to the parser" % source)
    slow, slow_warnings = observe(driver._split_by_parser, source)
    if fast != slow:
        failures.append("%r: fast %r, parser %r" % (source, fast, slow))
    if fast_warnings != slow_warnings:
        failures.append("%r: warnings fast %r, parser %r"
                        % (source, fast_warnings, slow_warnings))

for f in failures:
    print("FAIL", f)
print("%d cells, %d answered without the parser, %d failures"
      % (len(CELLS), answered, len(failures)))
sys.exit(1 if failures else 0)
