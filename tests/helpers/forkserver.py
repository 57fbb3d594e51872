"""`python -m sp_sync ...` for the tests, without paying the interpreter's start every time.

Each `sp-sync` child process costs about 0.65 CPU-s of imports (pandas, pyarrow, office365, msal,
openpyxl) before it does anything, and the suite starts hundreds. A fork server (one per xdist
worker, started on first use, closed when the worker exits) imports sp_sync's CLI and those
libraries once; every invocation is a `fork()` of it that then runs `sp_sync/__main__.py` as
`python -m sp_sync` would. As far as a test can see the child is that process:

- its own pid, which the test may signal (SIGKILL, SIGINT) - `pid` is the real child's;
- the argv, the exact environment the test passed (os.environ replaced before anything reads
  it: sp_sync reads its settings at run time, see `Settings.from_env`), the working directory;
- stdin/stdout/stderr as the test wired them (PIPE, DEVNULL, a file, inherited): the test's own
  file descriptors travel over a Unix socket (`socket.send_fds`), and sys.stdin/stdout/stderr are
  rebuilt with the encoding PYTHONIOENCODING asks for;
- its exit code, or the signal that ended it as a negative returncode, as subprocess reports;
- `random` reseeded, the root logger without handlers, default signal handlers, the interpreter's
  normal shutdown (atexit, non-daemon threads joined, streams flushed).

What a fork cannot give is what the interpreter fixes at its start: `sys.path`, UTF-8 mode, the
warning filters, the string-hash seed. So an environment that asks for any of those differently
from the server's (a `PYTHON*` variable other than the few below, `LC_ALL`/`LC_CTYPE`/`LANG`, a
`PYTHONPATH` entry the server does not have) gets a real interpreter instead. The children of one
server share its hash seed: whether a night's output is the same across processes with
different seeds (a set's order) is checked with real interpreters (tests/cli/test_night_costs.py
runs two nights and expects every workbook unchanged).

`ForkedProcess` has the part of `subprocess.Popen`'s surface the tests use, and `run` is
`subprocess.run` for it. Real interpreters are kept where the start itself is under test (lean
imports, bytecode, packaging, the entry-point script, `-X importtime`, the Functions imports):
those tests call `subprocess` directly. `SP_SYNC_TEST_FORKSERVER=0` makes `popen`/`run` start a
real `python -m sp_sync` for every call, so anyone can check that the suite passes that way too.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
#: What a typical `sp-sync` command imports, so that a child finds it in sys.modules. Kept to
#: what sp_sync itself imports at some point (the lean-import tests run real interpreters).
PRELOAD = (
    "sp_sync.cli",
    "sp_sync.run.pipeline",
    "sp_sync.run.jobs",
    "sp_sync.run.status",
    "sp_sync.run.progress",
    "sp_sync.sharepoint",
    "sp_sync.state",
    "sp_sync.sync.engine",
    "sp_sync.report.publish",
    "sp_sync.report.tables",
    "sp_sync.report.workbook",
    "sp_sync.report.layouts",
    "sp_sync.report.xlsx_writer",
    "sp_sync.schema.provision",
    "sp_sync.schema.drift",
    "sp_sync.demo.runner",
    "sp_sync.state.blob",
    "sp_sync.notify.commands",
    "sp_sync.notify.entry",
    "sp_sync.demo.data",
    "cryptography.hazmat.backends.openssl",
    "sp_emulator",
    "pandas",
    "pyarrow",
    "pyarrow.parquet",
    "openpyxl",
    "msal",
    "office365.sharepoint.request",
)
_HEADER = struct.Struct("!I")


def enabled() -> bool:
    """False when SP_SYNC_TEST_FORKSERVER=0: every call starts a real interpreter."""
    return os.environ.get("SP_SYNC_TEST_FORKSERVER", "1") != "0"


#: Variables read after the start (by sp_sync or the child's stdio set-up), which a fork honours.
_RUNTIME_PYTHON_VARS = frozenset(
    {"PYTHONIOENCODING", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}
)
_LOCALE_VARS = ("LC_ALL", "LC_CTYPE", "LANG")


def _server_env() -> dict[str, str]:
    """The environment the fork server starts with (and so what it fixed at its start)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SP_SYNC_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _path_entries(value: str) -> set[str]:
    return {os.path.realpath(p) for p in value.split(os.pathsep) if p}


def forkable(env: Mapping[str, str] | None) -> bool:
    """Whether a fork of the server starts as a real interpreter with `env` would."""
    if env is None:
        return True
    server = _server_env()

    def start_vars(e: Mapping[str, str]) -> dict[str, str]:
        return {
            k: v
            for k, v in e.items()
            if (k.startswith("PYTHON") and k not in _RUNTIME_PYTHON_VARS and k != "PYTHONPATH")
            or k in _LOCALE_VARS
        }

    if start_vars(env) != start_vars(server):
        return False
    return _path_entries(env.get("PYTHONPATH", "")) <= _path_entries(server["PYTHONPATH"])


# --- the server (runs as `python -m tests.helpers.forkserver SOCKET`) ---------------------------


def _send_msg(sock: socket.socket, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    sock.sendall(_HEADER.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def _recv_msg(sock: socket.socket) -> dict[str, Any]:
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    result: dict[str, Any] = json.loads(_recv_exact(sock, size))
    return result


def _serve(path: str) -> tuple[dict[str, Any], list[int]] | None:
    """Accept invocations until the client closes the control connection. Returns None in the
    server; in a forked child it returns that child's request and its three stdio descriptors."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # Bound under another name and renamed once listening: the client waits for `path` to
    # exist, and a socket bound but not yet listening refuses connections (seen under load).
    listener.bind(path + ".binding")
    listener.listen(16)
    os.rename(path + ".binding", path)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd is written
    signal.set_wakeup_fd(wake_w)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(wake_r, selectors.EVENT_READ, "child")
    sel.register(sys.stdin, selectors.EVENT_READ, "parent")  # EOF: the test process is gone
    children: dict[int, socket.socket] = {}
    try:
        while True:
            for key, _ in sel.select():
                if key.data == "parent":
                    if not os.read(0, 4096):
                        return None
                elif key.data == "child":
                    with contextlib.suppress(BlockingIOError):
                        while os.read(wake_r, 4096):
                            pass
                    _reap(children)
                else:
                    conn, _ = listener.accept()
                    msg, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
                    (size,) = _HEADER.unpack(msg[: _HEADER.size])
                    body = msg[_HEADER.size :]
                    if len(body) < size:
                        body += _recv_exact(conn, size - len(body))
                    request = json.loads(body)
                    if len(os.listdir("/proc/self/task")) != 1:  # fork() copies one thread only
                        raise RuntimeError("the fork server has threads; it must not fork")
                    pid = os.fork()
                    if pid == 0:
                        # The child: nothing of the server's stays open but the descriptors
                        # it was sent (a real child gets close_fds).
                        signal.set_wakeup_fd(-1)
                        sel.close()
                        for other in (listener, conn, *children.values()):
                            other.close()
                        os.close(wake_r)
                        os.close(wake_w)
                        return request, fds
                    for fd in fds:
                        os.close(fd)
                    _send_msg(conn, {"pid": pid})
                    children[pid] = conn
                    _reap(children)  # a child may have ended before it was registered
    finally:
        if os.getpid() == _SERVER_PID:
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is None:
            continue
        with contextlib.suppress(OSError):
            _send_msg(
                conn,
                {
                    "returncode": os.waitstatus_to_exitcode(status),
                    "cpu": usage.ru_utime + usage.ru_stime,
                },
            )
        conn.close()


def _stream(
    fd: int, mode: str, encoding: str, errors: str, *, line: bool = False, through: bool = False
) -> io.TextIOWrapper:
    """A sys.std* stream as the interpreter builds it (line buffering on a terminal and always
    for stderr, write-through with PYTHONUNBUFFERED)."""
    raw = open(fd, mode + "b", buffering=-1, closefd=False)  # noqa: SIM115 - the stream is sys's
    return io.TextIOWrapper(
        raw,
        encoding=encoding,
        errors=errors,
        line_buffering=line,
        write_through=through,
    )


def _become(request: dict[str, Any], fds: list[int]) -> None:
    """Turn this forked child into `python -m sp_sync ARGS` as the client asked for it."""
    # The server's sys.std* objects own descriptors 0-2 and would close them (now the test's)
    # when collected: they are kept alive for the life of this process.
    import ctypes
    import logging
    import random
    import runpy

    for stream in (sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(stream))
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(sys.__stderr__))
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in set(fds):
        if fd > 2:
            os.close(fd)
    for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGPIPE, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as the interpreter installs it
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # the interpreter ignores SIGPIPE
    if request["start_new_session"]:
        os.setsid()
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    os.chdir(request["cwd"])
    random.seed()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    encoding, _, errors = os.environ.get("PYTHONIOENCODING", "").partition(":")
    if not encoding:
        encoding = "utf-8" if os.environ.get("PYTHONUTF8") == "1" else _locale_encoding()
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    sys.stdin = _stream(0, "r", encoding, errors or "strict")
    sys.stdout = _stream(
        1, "w", encoding, errors or "strict", line=os.isatty(1), through=unbuffered
    )
    sys.stderr = _stream(
        2, "w", encoding, errors or "backslashreplace", line=True, through=unbuffered
    )
    # The interpreter's originals are these streams too (faulthandler, shutdown flushing).
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr  # type: ignore[misc]
    args = list(request["args"])
    if args[0] == "-m":
        # As `python -m MODULE`: the working directory first on the path, argv[0] the file.
        sys.path[0] = os.getcwd()
        sys.argv = ["-m", *args[2:]]
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    elif args[0] == "-c":
        sys.path[0] = ""
        sys.argv = ["-c", *args[2:]]
        import builtins
        import types

        main = types.ModuleType("__main__")  # a fresh one: this server module is __main__ now
        main.__dict__["__builtins__"] = builtins
        sys.modules["__main__"] = main
        exec(compile(args[1], "<string>", "exec"), main.__dict__)
    else:
        sys.path[0] = os.path.dirname(os.path.abspath(args[0]))
        sys.argv = args
        runpy.run_path(args[0], run_name="__main__")


def _locale_encoding() -> str:
    import locale

    return locale.getpreferredencoding(False)


_SERVER_PID = os.getpid()
_THIS_FILE = __file__


def _server_main(path: str) -> None:
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    # Imports can leave cycles and garbage behind: collect and freeze them once, so a child's
    # collector does not walk (and copy-on-write) the whole pre-imported heap.
    import gc

    gc.collect()
    gc.freeze()
    served = _serve(path)
    if served is None:
        return
    request, fds = served
    try:
        _become(request, fds)  # SystemExit ends the child as it ends the interpreter
    except SystemExit:
        raise
    except BaseException as exc:  # the interpreter's report, without this file's frames
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == _THIS_FILE:
            tb = tb.tb_next
        sys.excepthook(type(exc), exc.with_traceback(tb), tb)
        if isinstance(exc, KeyboardInterrupt):  # ends "by SIGINT", as the interpreter does
            sys.stdout.flush()
            sys.stderr.flush()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        sys.exit(1)


# --- the client ---------------------------------------------------------------------------------


class _Server:
    """The fork server of this process: started on first use, ended when this process exits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._path = ""

    def path(self) -> str:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                folder = tempfile.mkdtemp(prefix="sp-sync-fork-")
                self._path = os.path.join(folder, "socket")
                env = _server_env()
                # No thread may run in the server when it forks: OpenBLAS (numpy) and Arrow's
                # jemalloc start one each at import unless told not to. (A child's environment
                # is the test's; these only shape the libraries loaded before the fork.)
                env["OPENBLAS_NUM_THREADS"] = "1"
                env["JE_ARROW_MALLOC_CONF"] = "background_thread:false"
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "tests.helpers.forkserver", self._path],
                    cwd=ROOT,
                    env=env,
                    stdin=subprocess.PIPE,  # its EOF ends the server with this process
                    stdout=subprocess.DEVNULL,
                )
                deadline = time.monotonic() + 60
                while not os.path.exists(self._path):
                    if self._proc.poll() is not None:
                        raise RuntimeError(f"fork server exited ({self._proc.returncode})")
                    if time.monotonic() > deadline:
                        raise RuntimeError("fork server did not start within 60 s")
                    time.sleep(0.01)
                atexit.register(self.close)
            return self._path

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


SERVER = _Server()
#: Every child the fork server has finished, kind → [count, CPU-s] (for tests/helpers/spawn_count).
on_exit: list[Any] = []


def _fd_for(spec: Any, default: int, closers: list[int]) -> tuple[int, int | None]:
    """(fd for the child, read/write end the parent keeps for PIPE) for a stdio argument."""
    if spec is None:
        return default, None
    if spec == subprocess.PIPE:
        r, w = os.pipe()
        if default == 0:
            closers.append(r)
            return r, w
        closers.append(w)
        return w, r
    if spec == subprocess.DEVNULL:
        fd = os.open(os.devnull, os.O_RDWR)
        closers.append(fd)
        return fd, None
    if isinstance(spec, int):
        return spec, None
    return spec.fileno(), None


class ForkedProcess:
    """A `python ARGS` child of the fork server (ARGS: `-m MODULE ...`, `-c CODE ...` or
    `SCRIPT ...`), with Popen's surface."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stdin: Any = None,
        stdout: Any = None,
        stderr: Any = None,
        text: bool | None = None,
        encoding: str | None = None,
        errors: str | None = None,
        universal_newlines: bool | None = None,
        start_new_session: bool = False,
    ) -> None:
        self.args = [sys.executable, *args]
        self.returncode: int | Any = None  # as typeshed types Popen.returncode
        self.cpu = 0.0
        text_mode = bool(text or encoding or errors or universal_newlines)
        closers: list[int] = []
        in_fd, in_keep = _fd_for(stdin, 0, closers)
        out_fd, out_keep = _fd_for(stdout, 1, closers)
        if stderr == subprocess.STDOUT:
            err_fd, err_keep = out_fd, None
        else:
            err_fd, err_keep = _fd_for(stderr, 2, closers)
        request = {
            "args": list(args),
            "env": dict(env if env is not None else os.environ),
            "cwd": os.fspath(cwd) if cwd is not None else os.getcwd(),
            "start_new_session": start_new_session,
        }
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(SERVER.path())
            data = json.dumps(request).encode()
            socket.send_fds(self._sock, [_HEADER.pack(len(data)) + data], [in_fd, out_fd, err_fd])
        finally:
            for fd in closers:
                os.close(fd)
        self.pid: int = _recv_msg(self._sock)["pid"]
        enc = encoding
        if text_mode and enc is None:
            import locale

            enc = locale.getpreferredencoding(False)
        self.stdin: IO[Any] | None = None
        self.stdout: IO[Any] | None = None
        self.stderr: IO[Any] | None = None
        if in_keep is not None:
            self.stdin = open(in_keep, "wb")  # noqa: SIM115 - closed by communicate / the test
            if text_mode:
                self.stdin = io.TextIOWrapper(
                    self.stdin,
                    encoding=enc,
                    errors=errors,
                    write_through=True,
                    line_buffering=False,
                )
        for name, keep in (("stdout", out_keep), ("stderr", err_keep)):
            if keep is not None:
                stream: IO[Any] = open(keep, "rb")  # noqa: SIM115
                if text_mode:
                    stream = io.TextIOWrapper(stream, encoding=enc, errors=errors)
                setattr(self, name, stream)
        self._text = text_mode
        self._encoding = enc
        self._errors = errors or "strict"
        self._readers: dict[str, threading.Thread] = {}
        self._output: dict[str, list[bytes]] = {}
        # The status is read once, by whichever thread gets there first (a test's trigger may
        # signal from an emulator thread while the main thread waits), as Popen's waitpid lock.
        self._status_lock = threading.Lock()

    # --- waiting ----------------------------------------------------------------------------

    def poll(self) -> int | None:
        if self.returncode is None:
            # Readable means the server sent the status (one small message) or ended.
            readable, _, _ = select.select([self._sock], [], [], 0)
            if readable:
                self.wait()
        return self.returncode

    def _take_status(self) -> None:
        msg = _recv_msg(self._sock)
        self.returncode = int(msg["returncode"])
        self.cpu = float(msg["cpu"])
        self._sock.close()
        for hook in on_exit:
            hook(self)

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            started = time.monotonic()
            if not self._status_lock.acquire(timeout=-1 if timeout is None else timeout):
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            try:
                if self.returncode is None:  # another thread may have read it meanwhile
                    left = (
                        None
                        if timeout is None
                        else max(0.0, timeout - (time.monotonic() - started))
                    )
                    self._sock.settimeout(left)
                    try:
                        self._take_status()
                    except TimeoutError:
                        raise subprocess.TimeoutExpired(self.args, timeout or 0.0) from None
                    except EOFError:
                        raise RuntimeError("the fork server ended before its child") from None
            finally:
                self._status_lock.release()
        assert self.returncode is not None
        return self.returncode

    def communicate(self, input: Any = None, timeout: float | None = None) -> tuple[Any, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.stdin is not None and "stdin" not in self._readers:
            stdin = self.stdin

            def feed() -> None:
                with contextlib.suppress(BrokenPipeError):
                    if input:
                        stdin.write(input)
                        stdin.flush()
                with contextlib.suppress(BrokenPipeError, OSError):
                    stdin.close()

            self._readers["stdin"] = threading.Thread(target=feed, daemon=True)
            self._readers["stdin"].start()
        for name in ("stdout", "stderr"):
            stream = getattr(self, name)
            if stream is not None and name not in self._readers:
                raw = stream.buffer if isinstance(stream, io.TextIOWrapper) else stream
                chunks: list[bytes] = []
                self._output[name] = chunks
                thread = threading.Thread(target=_drain, args=(raw, chunks), daemon=True)
                self._readers[name] = thread
                thread.start()
        for thread in self._readers.values():
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        results: list[Any] = []
        for name in ("stdout", "stderr"):
            if name not in self._output:
                results.append(None)
                continue
            data = b"".join(self._output[name])
            getattr(self, name).close()
            if self._text:
                assert self._encoding is not None
                text = data.decode(self._encoding, self._errors)
                results.append(text.replace("\r\n", "\n").replace("\r", "\n"))
            else:
                results.append(data)
        return results[0], results[1]

    # --- signals ----------------------------------------------------------------------------

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # as Popen: never signal a pid that may have been reused
            # The server reaps the child before its status reaches us: a child that has just
            # ended is already gone (Popen suppresses this too, bpo-40550).
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def __enter__(self) -> ForkedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self.wait()


def _drain(stream: IO[bytes], chunks: list[bytes]) -> None:
    while chunk := stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536):
        chunks.append(chunk)


def popen(args: Sequence[str], **kwargs: Any) -> ForkedProcess | subprocess.Popen[Any]:
    """`subprocess.Popen([python, *ARGS], **kwargs)`, forked from the server (or a real
    interpreter when SP_SYNC_TEST_FORKSERVER=0). ARGS: `-m MODULE ...`, `-c CODE ...` or
    `SCRIPT ...`; the keyword arguments the fork server knows (see ForkedProcess)."""
    if not enabled() or not forkable(kwargs.get("env")):
        return subprocess.Popen([sys.executable, *args], **kwargs)
    return ForkedProcess(args, **kwargs)


def run(
    args: Sequence[str],
    *,
    input: Any = None,
    capture_output: bool = False,
    timeout: float | None = None,
    check: bool = False,
    **kwargs: Any,
) -> subprocess.CompletedProcess[Any]:
    """`subprocess.run([python, *ARGS], ...)` through `popen`."""
    if not enabled() or not forkable(kwargs.get("env")):
        return subprocess.run(
            [sys.executable, *args],
            input=input,
            capture_output=capture_output,
            timeout=timeout,
            check=check,
            **kwargs,
        )
    if input is not None:
        kwargs["stdin"] = subprocess.PIPE
    if capture_output:
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    proc = ForkedProcess(args, **kwargs)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    done = subprocess.CompletedProcess(proc.args, proc.wait(), out, err)
    if check:
        done.check_returncode()
    return done


def sp_sync(args: Sequence[str], **kwargs: Any) -> ForkedProcess | subprocess.Popen[Any]:
    """`python -m sp_sync ARGS` (see `popen`)."""
    return popen(["-m", "sp_sync", *args], **kwargs)


if __name__ == "__main__":
    _server_main(sys.argv[1])
