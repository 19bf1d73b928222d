# egg's Python driver: one live interpreter for every Python cell of an
# egg. It reads cells from fd 3 as "<cell> <length>\n" followed by the code,
# runs each in one shared namespace, and writes "<cell> <status>\n" on fd 4
# once the cell's output is flushed. Status 0 means success.
import builtins
import linecache
import os
import sys
import types

_CODE_FD = 3
_STATUS_FD = 4
_HEADER_MAX = 64


def _read_exact(fd, n):
    chunks = []
    while n > 0:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_header(fd):
    line = b""
    while not line.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            raise EOFError
        line += byte
        if len(line) > _HEADER_MAX:
            raise ValueError("cell header too long")
    cell, length = line.split()
    return int(cell), int(length)


def _flush():
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:
            pass


def _run(code_bytes, cell, namespace):
    filename = "<cell %d>" % cell
    source = code_bytes.decode("utf-8", errors="surrogateescape")
    # Tracebacks show the cell's lines.
    linecache.cache[filename] = (len(source), None,
                                 source.splitlines(True), filename)
    try:
        compiled = compile(source, filename, "exec", dont_inherit=True)
        exec(compiled, namespace)
        return 0
    except SystemExit as e:
        if e.code is None:
            return 0
        if isinstance(e.code, int):
            return e.code
        print(e.code, file=sys.stderr)
        return 1
    except BaseException:
        # Imported here, not at start: most runs never need it, and every
        # module the driver loads delays the first cell.
        import traceback
        etype, value, tb = sys.exc_info()
        # Drop the driver's own frame from the traceback.
        traceback.print_exception(etype, value, tb.tb_next if tb else None)
        return 1


def main():
    os.set_inheritable(_CODE_FD, False)
    os.set_inheritable(_STATUS_FD, False)
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = module
    namespace = module.__dict__
    while True:
        try:
            cell, length = _read_header(_CODE_FD)
            code = _read_exact(_CODE_FD, length)
        except EOFError:
            return
        status = _run(code, cell, namespace)
        _flush()
        os.write(_STATUS_FD, b"%d %d\n" % (cell, status))


main()
