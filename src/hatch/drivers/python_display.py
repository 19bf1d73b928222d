# Jupyter-style display for egg's Python sessions (owned by the notebook
# component; see docs/NOTEBOOKS.md "Rich outputs").
#
# run_cell() runs one cell as a Jupyter kernel would show it:
#  - the last statement, when it is an expression not ended by ';', is
#    shown through sys.displayhook semantics as an execute_result with a
#    mimebundle (_repr_mimebundle_, _repr_html_, _repr_png_, _repr_svg_,
#    _repr_markdown_, _repr_latex_, _repr_json_, and text/plain from
#    IPython's pretty printer when present, else repr);
#  - display(obj, ...) is available as in IPython;
#  - matplotlib uses the Agg backend and open figures are sent as PNG
#    display_data at the end of the cell and closed, like the inline
#    backend;
#  - an exception becomes an error output (ename, evalue, traceback) and is
#    also printed to stderr.
# Outputs are written, in order, as one JSON object per line: to the file
# descriptor named by $EGG_DISPLAY_FD (the agent's display pipe, fd 5, in
# a hatch), else to $EGG_DISPLAY_DIR/cell-<cell>.jsonl when that variable
# is set; stdout and stderr still go to the real streams as well. On the
# pipe a stream record holds no text but "egg_raw_bytes", the number of
# bytes of the real stream it stands for (the hatcher takes them from
# there), so text counts once against the cell's output cap. The
# hatcher reads the records as hostile input (ParseDisplayRecords in the
# notebook library).
#
# Run as a program it is a complete session driver with the protocol of
# python.py: "<cell> <length>\n" and the code on fd 3, "<cell> <status>\n"
# on fd 4 once the cell's output is flushed.
import builtins
import importlib.machinery
import io
import os
import sys
import types

# base64 (images), traceback (errors) and json (records other than
# streams) are imported where they are needed: most cells need none of
# them, and every module loaded here delays the first cell. The parser's
# node classes come from the built-in _ast module, which ast.parse itself
# calls through compile(); the pure-Python ast module adds only helpers
# the driver does not use. linecache (which loads tokenize and re, about
# 3 ms) is imported by whatever first needs a cell's lines (traceback,
# warnings, the cell itself), and _CellSources puts every cell's source
# into its cache at that moment, so tracebacks and warnings show the
# cells' lines as before. The driver shares its interpreter with the
# cells, so deferring an import changes nothing a cell could do to the
# driver.

os.environ.setdefault("MPLBACKEND", "Agg")

_MAX_MIME_BYTES = 32 << 20
_MIME_METHODS = (
    ("_repr_html_", "text/html"),
    ("_repr_markdown_", "text/markdown"),
    ("_repr_svg_", "image/svg+xml"),
    ("_repr_png_", "image/png"),
    ("_repr_jpeg_", "image/jpeg"),
    ("_repr_latex_", "text/latex"),
    ("_repr_json_", "application/json"),
)
# The classic inline backend's look.
_INLINE_RC = {
    "figure.figsize": (6.0, 4.0),
    "figure.dpi": 72,
    "savefig.dpi": 72,
    "figure.facecolor": "white",
    "figure.edgecolor": "white",
    "font.size": 10,
    "figure.subplot.bottom": 0.125,
}


class _Sink:
    """Collects a cell's outputs and writes them as JSON lines."""

    def __init__(self):
        self.file = None
        self.pipe = None
        self.stream_name = None
        self.stream_text = []
        fd = os.environ.get("EGG_DISPLAY_FD")
        if fd and fd.isdigit():
            try:
                os.set_inheritable(int(fd), False)
                self.pipe = open(int(fd), "w", encoding="utf-8",
                                 errors="surrogateescape", closefd=True)
            except OSError:
                self.pipe = None

    def open(self, cell):
        self.close()
        folder = os.environ.get("EGG_DISPLAY_DIR")
        if self.pipe is not None:
            self.file = self.pipe
        elif folder:
            path = os.path.join(folder, "cell-%d.jsonl" % cell)
            self.file = open(path, "w", encoding="utf-8",
                             errors="surrogateescape")

    def _flush_stream(self):
        if self.stream_name and self.stream_text:
            if self.file is self.pipe:
                # Through the agent the text itself is already on the
                # real stream: the record says how many of its bytes
                # belong here, so each byte counts once against the
                # cell's output cap.
                # Written by hand, not through json: the name is one of
                # the driver's own two ("stdout", "stderr") and the
                # count an int, so the line is the one json.dumps gives.
                self._write_line(
                    '{"output_type": "stream", "name": "%s", '
                    '"egg_raw_bytes": %d}' % (self.stream_name,
                                              sum(self.stream_text)))
            else:
                self._write({"output_type": "stream",
                             "name": self.stream_name,
                             "text": "".join(self.stream_text)})
        self.stream_name = None
        self.stream_text = []

    def _write(self, record):
        if self.file is None:
            return
        try:
            # A cell that broke the import system loses its rich
            # records, not its run: the hatcher reports what it received.
            import json
            line = json.dumps(record, ensure_ascii=True, default=str)
        except Exception:
            return
        self._write_line(line)

    def _write_line(self, line):
        if self.file is None:
            return
        try:
            self.file.write(line + "\n")
        except (OSError, ValueError):
            pass

    def stream(self, name, text, target):
        """Records text just written to target (a text stream)."""
        if self.file is None or not text:
            return
        piece = text
        if self.file is self.pipe:
            try:
                piece = len(text.encode(getattr(target, "encoding", None)
                                        or "utf-8",
                                        getattr(target, "errors", None)
                                        or "strict"))
            except (LookupError, UnicodeError):
                return
        if self.stream_name != name:
            self._flush_stream()
            self.stream_name = name
        self.stream_text.append(piece)

    def emit(self, record):
        self._flush_stream()
        self._write(record)

    def close(self):
        if self.file is not None:
            self._flush_stream()
            try:
                if self.file is self.pipe:
                    self.file.flush()
                else:
                    self.file.close()
            except (OSError, ValueError):
                # A cell closed or broke the pipe: its records are lost,
                # and the hatcher reports what it received.
                self.pipe = None
            self.file = None


_sink = _Sink()


class _CellSources:
    """Keeps each cell's source for linecache, which is imported late.

    While linecache is not loaded, a one-shot finder first on
    sys.meta_path loads it through the normal path finder and fills its
    cache with the sources kept so far; once it is loaded, sources go
    straight into its cache."""

    def __init__(self):
        self._entries = {}
        self._waiting = False

    def add(self, filename, source):
        entry = (len(source), None, source.splitlines(True), filename)
        self._entries[filename] = entry
        module = sys.modules.get("linecache")
        if module is not None:
            try:
                module.cache[filename] = entry
            except Exception:
                pass
        elif not self._waiting:
            try:
                sys.meta_path.insert(0, self)
                self._waiting = True
            except Exception:
                # A cell replaced the import system: its tracebacks may
                # lack source lines, as a fresh linecache would.
                pass

    def find_spec(self, name, path=None, target=None):
        if name != "linecache":
            return None
        self._remove()
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _FillingLoader(spec.loader, self._entries)
        return spec

    def _remove(self):
        self._waiting = False
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass


class _FillingLoader:
    """Runs linecache's own loader, then fills its cache."""

    def __init__(self, inner, entries):
        self._inner = inner
        self._entries = entries

    def __getattr__(self, name):
        # get_source, is_package ...: linecache's own loader answers.
        return getattr(self._inner, name)

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        self._inner.exec_module(module)
        module.cache.update(self._entries)


_sources = _CellSources()


class _Tee(io.TextIOBase):
    """A text stream that writes through and records for the sink."""

    def __init__(self, name, target):
        self._name = name
        self._target = target

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("write() argument must be str")
        written = self._target.write(text)
        _sink.stream(self._name, text, self._target)
        return written

    def flush(self):
        self._target.flush()

    def fileno(self):
        return self._target.fileno()

    def isatty(self):
        return False

    def writable(self):
        return True

    @property
    def encoding(self):
        return getattr(self._target, "encoding", "utf-8")

    @property
    def buffer(self):
        return self._target.buffer


def _counter_printer(obj, p, cycle):
    # Counter's own repr order (most common first), which IPython's
    # printer has not always kept.
    name = type(obj).__name__
    if cycle:
        p.text(name + "(...)")
    elif not len(obj):
        p.text(name + "()")
    else:
        with p.group(len(name) + 1, name + "(", ")"):
            p.pretty(dict(obj.most_common()))


_pretty = None


def _plain(obj):
    global _pretty
    try:
        if _pretty is None:
            import collections
            from IPython.lib import pretty as module
            module.for_type(collections.Counter, _counter_printer)
            _pretty = module
        return _pretty.pretty(obj, max_width=79)
    except ImportError:
        pass
    except Exception:
        pass
    return repr(obj)


def mimebundle(obj):
    """The mimebundle Jupyter would show for obj."""
    data = {}
    if not isinstance(obj, type):
        method = getattr(obj, "_repr_mimebundle_", None)
        if callable(method):
            try:
                bundle = method()
                if isinstance(bundle, tuple):
                    bundle = bundle[0]
                if isinstance(bundle, dict):
                    data.update(bundle)
            except Exception:
                pass
        for name, mime in _MIME_METHODS:
            if mime in data:
                continue
            method = getattr(obj, name, None)
            if not callable(method):
                continue
            try:
                value = method()
            except Exception:
                continue
            if isinstance(value, tuple):
                value = value[0]
            if value is None:
                continue
            if isinstance(value, (bytes, bytearray)):
                import base64
                value = base64.b64encode(bytes(value)).decode("ascii")
            if isinstance(value, str) and len(value) > _MAX_MIME_BYTES:
                continue
            data[mime] = value
    data["text/plain"] = _plain(obj)
    return data


def display(*objs, **kwargs):
    for obj in objs:
        _sink.emit({"output_type": "display_data",
                    "data": mimebundle(obj), "metadata": {}})


class _Session:
    def __init__(self, namespace):
        self.namespace = namespace
        self.count = 0
        namespace.setdefault("display", display)
        self._inline_done = False
        sys.stdout = _Tee("stdout", sys.__stdout__)
        sys.stderr = _Tee("stderr", sys.__stderr__)
        sys.displayhook = self.displayhook

    def displayhook(self, value):
        if value is None:
            return
        builtins._ = value
        self.namespace["_"] = value
        _sink.emit({"output_type": "execute_result",
                    "execution_count": self.count,
                    "data": mimebundle(value), "metadata": {}})

    def _setup_inline(self):
        if self._inline_done or "matplotlib" not in sys.modules:
            return
        self._inline_done = True
        try:
            import matplotlib
            matplotlib.rcParams.update(_INLINE_RC)
        except Exception:
            pass

    def flush_figures(self):
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is None:
            return
        try:
            numbers = plt.get_fignums()
        except Exception:
            return
        for number in numbers:
            try:
                figure = plt.figure(number)
                import base64
                buffer = io.BytesIO()
                figure.savefig(buffer, format="png", bbox_inches="tight")
                png = base64.b64encode(buffer.getvalue()).decode("ascii")
                _sink.emit({"output_type": "display_data",
                            "data": {"image/png": png,
                                     "text/plain": repr(figure)},
                            "metadata": {}})
            except Exception:
                import traceback
                traceback.print_exc()
        try:
            plt.close("all")
        except Exception:
            pass

    def run(self, code_bytes, cell):
        self.count += 1
        # Libraries (sympy's init_printing) replace the hook for a plain
        # REPL; the notebook's display semantics win.
        sys.displayhook = self.displayhook
        _sink.open(cell)
        try:
            return self._run(code_bytes, cell)
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
            _sink.close()

    def _run(self, code_bytes, cell):
        filename = "<cell %d>" % cell
        source = code_bytes.decode("utf-8", errors="surrogateescape")
        source = _translate_magics(source, filename)
        _sources.add(filename, source)
        status = 0
        try:
            split = _split_last_statement(source, filename)
            if split is None:
                split = _split_by_parser(source, filename)
            codes, last = split
            for code in codes:
                exec(code, self.namespace)
            if last is not None:
                sys.displayhook = self.displayhook
                exec(last, self.namespace)
        except SystemExit as e:
            if e.code is None:
                status = 0
            elif isinstance(e.code, int):
                status = e.code
            else:
                print(e.code, file=sys.stderr)
                status = 1
        except BaseException:
            etype, value, tb = sys.exc_info()
            tb = tb.tb_next if tb is not None else None
            if issubclass(etype, SyntaxError):
                tb = None  # the frames are the driver's, not the cell's
            lines = _format_exception(etype, value, tb)
            sys.stderr.flush()
            sys.__stderr__.write("".join(lines))
            sys.__stderr__.flush()
            _sink.emit({"output_type": "error", "ename": etype.__name__,
                        "evalue": _safe_str(value),
                        "traceback": [line.rstrip("\n") for line in lines]})
            status = 1
        self._setup_inline()
        self.flush_figures()
        return status


def _split_by_parser(source, filename):
    """([code of every statement but a last expression statement], code
    of that expression in "single" mode or None), from the parse tree:
    the last statement is shown when it is an expression not ended by
    ';'. Raises SyntaxError as compile() does."""
    import _ast
    # What ast.parse(source, filename, "exec") does.
    tree = compile(source, filename, "exec", _ast.PyCF_ONLY_AST)
    last = None
    if (tree.body and isinstance(tree.body[-1], _ast.Expr)
            and not _semicolon_after(source, tree.body[-1])):
        last = compile(_ast.Interactive(body=[tree.body.pop()]), filename,
                       "single", dont_inherit=True)
    return [compile(tree, filename, "exec", dont_inherit=True)], last


# First words of the statements that hold statements (a "match" may be
# a call, so it goes to the parser).
_COMPOUND = ("if", "while", "for", "try", "with", "def", "class", "async")


def _split_last_statement(source, filename):
    """What _split_by_parser returns, found without the parse tree, or None
    when this cannot tell (then the parser decides).

    A part may be compiled more than once on the way (a head that does
    not compile is tried again with more of the cell), and a cell this
    gives up on is compiled again by the parser: the warnings of these
    compiles are held and shown only when the split is used, so each is
    shown once (the warning filters are not touched).
    """
    import warnings
    held = []
    shown = warnings.showwarning

    def hold(message, category, filename, lineno, file=None, line=None):
        held.append((message, category, filename, lineno, file, line))

    warnings.showwarning = hold
    try:
        split = _split_without_parser(source, filename)
    finally:
        warnings.showwarning = shown
    if split is not None:
        for args in held:
            shown(*args)
    return split


def _split_without_parser(source, filename):
    """The work of _split_last_statement.

    The parser's node classes are built at their first use in a process:
    1.2 to 1.7 ms with Python 3.11, more than a short cell takes. Most
    cells end in a statement that starts a line at column 0 and runs to
    the end of the cell. That line starts the cell's last top-level
    statement when the text before it (the head) compiles on its own, so
    that no string, bracket or continuation is open there, and the text
    from it (the tail) compiles on its own: no line after it starts at
    column 0, so the tail is one statement. A simple statement compiled
    in "single" mode runs as in "exec" mode and shows its value exactly
    when it is an expression statement, as the parser's rule does; a
    compound statement (its first word says so) is compiled in "exec"
    mode and shows nothing. Each part is compiled once, with the line
    numbers it has in the cell, so a warning is given once.

    To the parser: a cell with ';' in its tail (two statements, or a
    trailing ';' that hides the value), with "__future__", "global" or
    "nonlocal" anywhere (they apply across statements), a tail starting
    with "match" or "@", odd line breaks, and any cell that does not
    compile in two parts (a syntax error is reported by the parser)."""
    for odd in ("\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85",
                "\u2028", "\u2029", "__future__", "global", "nonlocal"):
        if odd in source:
            return None
    lines = source.split("\n")
    start = len(lines)
    # A statement may go on over lines at column 0 ("x = (1,\n2)"): the
    # head before such a line does not compile, and the line before it is
    # tried, a few times. A simple statement compiled in "single" mode
    # must be one statement, so a tail of two is refused there.
    for attempt in range(4):
        start -= 1
        while start >= 0:
            first = lines[start][:1]
            if first and first not in " \t#\\":
                break
            start -= 1
        if start < 0:
            return None
        tail = "\n".join(lines[start:])
        if ";" in tail or tail.startswith(("match", "@")):
            return None
        compound = False
        for word in _COMPOUND:
            if tail.startswith(word):
                after = tail[len(word):len(word) + 1]
                if not ("_" + after).isidentifier():
                    compound = True
                    break
        if compound and attempt > 0:
            # "exec" mode would take two statements as well as one.
            return None
        head = "\n".join(lines[:start]) + "\n" if start else ""
        try:
            body = compile(head, filename, "exec", dont_inherit=True)
        except Exception:
            continue
        try:
            last = compile("\n" * start + tail, filename,
                           "exec" if compound else "single",
                           dont_inherit=True)
        except Exception:
            return None
        if compound:
            return [body, last], None
        return [body], last
    return None


def _format_exception(etype, value, tb):
    # A cell that broke the import system still gets its error reported.
    try:
        import traceback
        return traceback.format_exception(etype, value, tb)
    except BaseException:
        return ["%s: %s\n" % (etype.__name__, _safe_str(value))]


def _safe_str(value):
    try:
        return str(value)
    except Exception:
        return "<unprintable %s>" % type(value).__name__


def _semicolon_after(source, node):
    """Whether a ';' follows `node` (the cell's last statement) before
    anything but blanks: IPython then shows nothing. Found from where the
    parser says the node ends, so a ';' or '#' in a string is not taken
    for one."""
    end_line = getattr(node, "end_lineno", None)
    end_col = getattr(node, "end_col_offset", None)
    if end_line is None or end_col is None:
        return False
    lines = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if end_line > len(lines):
        return False
    # Offsets are in UTF-8 bytes.
    rest = lines[end_line - 1].encode("utf-8", "surrogateescape")[end_col:]
    text = rest.decode("utf-8", "surrogateescape").lstrip(" \t\f")
    return text.startswith(";")


def _translate_magics(source, filename):
    """IPython magics that change nothing in egg become 'pass'; others
    fail the cell with a clear message. Only in a cell that is not
    Python as written: a line starting with '%' or '!' may be a
    continuation ("!= b", "% (a, b)") or inside a string."""
    if not any(line.lstrip()[:1] in ("%", "!")
               for line in source.splitlines()):
        return source
    try:
        import _ast
        compile(source, filename, "exec", _ast.PyCF_ONLY_AST,
                dont_inherit=True)
        return source
    except Exception:
        pass
    out = []
    for line in source.splitlines(True):
        stripped = line.strip()
        if stripped.startswith("%matplotlib") or stripped.startswith(
                "%config"):
            indent = line[:len(line) - len(line.lstrip())]
            out.append(indent + "pass\n")
        elif stripped.startswith("%") or stripped.startswith("!"):
            word = stripped.split()[0]
            out.append(
                "raise NotImplementedError(%r)\n"
                % ("IPython syntax %s is not supported by egg's Python "
                   "driver; use a Jupyter kernel" % word))
        else:
            out.append(line)
    return "".join(out)


_session = None


def run_cell(code_bytes, cell, namespace):
    """Runs one cell in namespace; returns the status (0 = success)."""
    global _session
    if _session is None or _session.namespace is not namespace:
        _session = _Session(namespace)
    return _session.run(code_bytes, cell)


class _CellInput:
    """The cells on fd 3, "<cell> <length>\n" and the code, read through
    one buffer (a header is not read a byte per system call).

    Between two cells the driver polls fd 3 for a moment before it
    sleeps: the next cell usually arrives within a fraction of a
    millisecond, and waking a sleeping process on another CPU costs tens
    of microseconds a time on a virtual machine. Not on a single CPU,
    where polling would only delay the processes it waits for."""

    _POLL_NS = 400_000

    def __init__(self, fd):
        self.fd = fd
        self.buf = b""
        try:
            self.poll = len(os.sched_getaffinity(0)) > 1
        except (AttributeError, OSError):
            self.poll = False
        if self.poll:
            import time
            self.clock = time.monotonic_ns
            os.set_blocking(fd, False)

    def _fill(self, poll):
        if self.poll:
            deadline = self.clock() + (self._POLL_NS if poll else 0)
            while True:
                try:
                    chunk = os.read(self.fd, 1 << 16)
                    break
                except BlockingIOError:
                    # Whatever waits for this CPU (egg, its agent) runs
                    # first: the poll only fills time that is idle.
                    os.sched_yield()
                    if self.clock() >= deadline:
                        os.set_blocking(self.fd, True)
                        try:
                            chunk = os.read(self.fd, 1 << 16)
                        finally:
                            os.set_blocking(self.fd, False)
                        break
        else:
            chunk = os.read(self.fd, 1 << 16)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def next(self, poll):
        """(cell, code bytes); EOFError at the end of the input."""
        while b"\n" not in self.buf:
            if len(self.buf) > 64:
                raise ValueError("cell header too long")
            self._fill(poll)
        line, _, rest = self.buf.partition(b"\n")
        if len(line) > 64:
            raise ValueError("cell header too long")
        cell, length = line.split()
        cell, length = int(cell), int(length)
        chunks = [rest]
        have = len(rest)
        while have < length:
            self.buf = b""
            self._fill(False)
            chunks.append(self.buf)
            have += len(self.buf)
        data = b"".join(chunks) if len(chunks) > 1 else rest
        self.buf = data[length:]
        return cell, data[:length]


def main():
    os.set_inheritable(3, False)
    os.set_inheritable(4, False)
    # Under -u every write of print() (each argument, separator and end)
    # was a write(2), a wake-up of the agent and a frame to the hatcher.
    # Stdout is line-buffered instead, as on a terminal: one write per
    # line, and run() flushes what is left of a line at the end of every
    # cell, before its records and status, so text stays with its cell.
    # Stderr stays unbuffered.
    try:
        sys.__stdout__.reconfigure(line_buffering=True, write_through=False)
    except (AttributeError, ValueError, OSError):
        pass
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = module
    cells = _CellInput(3)
    poll = False
    while True:
        try:
            cell, code = cells.next(poll)
        except EOFError:
            return
        status = run_cell(code, cell, module.__dict__)
        os.write(4, b"%d %d\n" % (cell, status))
        poll = True


if __name__ == "__main__":
    main()
