"""The child-process base of every part the testbed runs, and the wait it is watched with.

A `ChildProcess` appends its output to a log file of its own and runs in a session
of its own: Ctrl-C in a terminal reaches only the parent (the demo, pytest), which
then stops its children in order. What the current run printed is `output()`;
`wait_log` waits for a line of it. Control is synchronous (subprocess, polling):
coroutines that must keep their event loop serving while they wait use
`wait_log_async`, which waits in a thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self


class TestbedError(Exception):
    """A part did not start or did not behave; the message says which and why."""

    __test__ = False  # not a test class, whatever pytest's name pattern says


class ProcessFailed(TestbedError):
    """The process a wait depends on exited, or can no longer do its job: waiting longer
    cannot help."""


def wait_until[T](
    predicate: Callable[[], T | None],
    within: float,
    what: str,
    *,
    interval: float = 0.05,
    transient: tuple[type[Exception], ...] = (OSError,),
) -> T:
    """Poll `predicate` until it returns something truthy and return that.

    Errors of the `transient` kinds (a server not listening yet) count as "not yet";
    `ProcessFailed` and any other error end the wait. On timeout: TestbedError
    naming `what` and the last transient error."""
    deadline = time.monotonic() + within
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
        except ProcessFailed:
            raise
        except transient as err:
            last_error, value = err, None
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f" (last error: {last_error})" if last_error else ""
            raise TestbedError(f"timed out after {within:g} s waiting for {what}{extra}")
        time.sleep(interval)


def run_sync[T](coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end from synchronous code, in a private event loop. Never
    made the thread's current loop: asyncio.run() would reset that, and pytest's and
    Home Assistant's fixtures rely on it. Under a loop that is already running on this
    thread (Playwright's synchronous API keeps one), it runs on a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_private(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future: concurrent.futures.Future[T] = pool.submit(_run_private, coro)
        return future.result()


def _run_private[T](coro: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


class ChildProcess:
    """One child process, its output appended to `log`. As a context manager it is
    started on entry and stopped on exit."""

    name = "process"

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def start(self) -> None:
        """Start the process (and wait until it is ready): each kind says how."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def spawn(self, cmd: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None) -> None:
        """Start `cmd`; its stdout and stderr go to the log, after what earlier runs wrote."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                list(cmd),
                cwd=cwd,
                env=None if env is None else dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once a started process has exited (None while it runs or
        before it started)."""
        return None if self.proc is None else self.proc.poll()

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise TestbedError(f"{self.name} is not running")
        return self.proc.pid

    def output(self, since: int | None = None) -> str:
        """What the current run wrote so far (from the log offset `since`, if given)."""
        try:
            with self.log.open("rb") as f:
                f.seek(self._log_offset if since is None else since)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_size(self) -> int:
        """Where the log ends now: as `since`, waits see only what comes after."""
        return self.log.stat().st_size if self.log.exists() else 0

    def check_alive(self) -> None:
        """Raise ProcessFailed, with the last output, if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise ProcessFailed(
                f"{self.name} exited with status {self.proc.returncode}; "
                f"last output ({self.log}):\n{self.output()[-3000:]}"
            )

    # -- its output

    def count_log(self, pattern: str) -> int:
        """How often `pattern` (a regular expression) occurs in this run's output."""
        return len(re.findall(pattern, self.output()))

    def find_log(
        self, pattern: str, count: int = 1, since: int | None = None
    ) -> re.Match[str] | None:
        """The `count`-th match of `pattern` in this run's output (after `since`), if there
        is one yet; ProcessFailed if there is not and the process is gone."""
        matches = list(re.finditer(pattern, self.output(since)))
        if len(matches) >= count:
            return matches[count - 1]
        self.check_alive()
        return None

    def wait_log(
        self, pattern: str, within: float = 30.0, count: int = 1, since: int | None = None
    ) -> re.Match[str]:
        """Wait until `pattern` has been printed `count` times in this run (after `since`)."""
        try:
            return wait_until(
                lambda: self.find_log(pattern, count, since),
                within,
                f"{self.name} to log {pattern!r}",
            )
        except ProcessFailed:
            raise
        except TestbedError as err:
            raise TestbedError(
                f"{err}\n--- {self.name} output ({self.log}) ---\n{self.output()[-3000:]}"
            ) from None

    async def wait_log_async(
        self, pattern: str, within: float = 30.0, count: int = 1, since: int | None = None
    ) -> re.Match[str]:
        """`wait_log` for a coroutine: the wait runs in a thread, the event loop serves on."""
        return await asyncio.to_thread(self.wait_log, pattern, within, count, since)

    # -- signals

    def freeze(self) -> None:
        """SIGSTOP: the process and its sockets hang, as on a network partition."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after `freeze`."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def wait_exit(self, timeout: float = 15) -> int:
        """Wait for the process to end by itself; SIGKILL and TestbedError after `timeout`."""
        if self.proc is None:
            raise TestbedError(f"{self.name} was not started")
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise TestbedError(f"{self.name} did not exit within {timeout:g} s") from None

    def kill(self) -> None:
        """SIGKILL to the process and its children (it leads a session of its own): its
        connections are reset, nothing is flushed."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status (None: never
        started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.send_signal(signal.SIGCONT)  # a frozen process acts on SIGTERM only then
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
