"""The daemon as a Windows service: what ``agentroster.exe daemon --windows-service`` runs under the
service manager (the MSI installs the ``agentroster`` service with those arguments).

The service manager never sends SIGTERM: it calls the service's control handler, on the process's main
thread, while the daemon runs in the service thread. So ``SvcStop`` reports STOP_PENDING with a wait hint
and calls ``Daemon.stop()``; the daemon's loop then ends, flushes its state and stops its threads, and
the service reports STOPPED when ``SvcDoRun`` returns. A daemon that ends with an error makes the
service stop with that error, which the MSI's failure actions answer with a restart.

``ServiceHost`` is the part that runs on every OS (and is tested on Linux): it makes the daemon, runs
it, and stops it from another thread, also when the stop comes while the daemon is still being made.
The pywin32 glue (``_serve``) imports ``servicemanager``/``win32service`` on Windows only. A service has no
console: the daemon logs to ``<data dir>\\daemon.log`` (rotated), and start, stop and failures also
go to the Windows Application event log under the source "agentroster".
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from endpoint.errors import EndpointError

if TYPE_CHECKING:
    from endpoint.service.settings import Settings

log = logging.getLogger("agentroster.service")

SERVICE_NAME = "agentroster"
SERVICE_DISPLAY_NAME = "agentroster endpoint"
#: how long the service manager is told a stop may take before it presumes the service hung; the
#: daemon's shutdown takes about a second (endpoint/service/daemon.py: Daemon.shutdown)
STOP_WAIT_HINT_MS = 30_000
LOG_FILE_BYTES = 5 << 20
LOG_FILE_COUNT = 3
#: ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: StartServiceCtrlDispatcher called from a console
_NOT_UNDER_SCM = 1063


class ServiceFailed(EndpointError, RuntimeError):
    """The daemon ended with an error while the service manager had not asked it to stop."""

    code = "service_failed"


class Runnable(Protocol):
    """What the host runs: the daemon (``endpoint.service.daemon.Daemon``) or anything with its two calls."""

    def run(self) -> int: ...

    def stop(self) -> None: ...


class DataDirLock(Protocol):
    """The data dir's single-instance lock (``endpoint.service.instance_lock.InstanceLock``)."""

    @property
    def held(self) -> bool: ...

    def acquire(self) -> object: ...

    def release(self) -> None: ...


class ServiceHost:
    """Runs one daemon in the calling thread until ``stop()`` is called from any other thread, holding
    the data dir's lock (when given) while it runs, as ``run_daemon`` does."""

    def __init__(self, make_daemon: Callable[[], Runnable], *, data_dir_lock: DataDirLock | None = None) -> None:
        self._make_daemon = make_daemon
        self._data_dir_lock = data_dir_lock
        self._lock = threading.Lock()
        self._daemon: Runnable | None = None
        self._stop_requested = False
        self.exit_code: int | None = None

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def run(self) -> int:
        """The daemon's exit code; 0 without running it when a stop came while it was being made
        (loading the signatures and the state takes a moment, and the service manager may stop it then)."""
        held = self._data_dir_lock
        if held is not None and not held.held:
            held.acquire()  # AlreadyRunning: another daemon has this data dir, and the service fails
        try:
            daemon = self._make_daemon()
            with self._lock:
                self._daemon = daemon
                stopped_early = self._stop_requested
            self.exit_code = 0 if stopped_early else daemon.run()
        finally:
            if held is not None:
                held.release()
        return self.exit_code

    def failure(self) -> str | None:
        """Why the service stops with an error, in words; None when it stops as asked. A daemon that
        ended by itself with an error stops the service with an error, which its failure actions
        answer with a restart; one stopped as asked never does."""
        if self.exit_code in (None, 0) or self._stop_requested:
            return None
        return f"the daemon ended with exit code {self.exit_code}; the service manager restarts it"

    def stop(self) -> None:
        """Ask the daemon to end; returns at once (the service manager's thread must not block)."""
        with self._lock:
            self._stop_requested = True
            daemon = self._daemon
        if daemon is not None:
            daemon.stop()


def log_file(data_dir: Path) -> Path:
    # in the data dir itself, not a folder of it: a user who made C:\ProgramData\agentroster before the
    # install could have left a junction there, and SYSTEM would write its log wherever it points
    return Path(data_dir) / "daemon.log"


def file_log_handler(data_dir: Path) -> logging.Handler:
    """The service's log: rotated files in the data dir, which only SYSTEM and Administrators can read.
    ``OSError`` when ``daemon.log`` is a link (never followed: a symbolic link, a junction or another
    reparse point), a hard link (another name of a file elsewhere) or no regular file."""
    from endpoint.service.instance_lock import written_file_problem

    path = log_file(data_dir)
    try:
        why = written_file_problem(os.lstat(path), owner=None)
    except FileNotFoundError:
        why = None
    if why is not None:
        raise OSError(f"{path} is a link or no file the service made ({why}); remove it (the service writes "
                      "its log there)")
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_COUNT,
                                                   encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


class DeferredFileLog:
    """The service's log before and after the data dir is safe to write in: records are held in memory
    until the daemon has opened its data dir (which gives the dir its ACL), then ``open()`` writes them
    and everything after them to ``daemon.log``."""

    def __init__(self) -> None:
        self.buffer = logging.handlers.MemoryHandler(capacity=10_000, flushLevel=logging.CRITICAL + 1)

    def open(self, data_dir: Path, logger: logging.Logger) -> logging.Handler:
        handler = file_log_handler(data_dir)
        self.buffer.setTarget(handler)
        self.buffer.flush()
        logger.handlers[:] = [handler]
        return handler


def run_service(settings: Settings, *, once: bool = False, **daemon_args: Any) -> int:
    """``agentroster daemon --windows-service``: hand the daemon to the service manager. Called as
    ``endpoint.service.daemon.run_daemon`` is (which the CLI uses otherwise); ``daemon_args`` go to
    ``Daemon``."""
    if sys.platform != "win32":
        print("agentroster daemon: --windows-service is for the Windows service manager, which starts it "
              "(sc.exe start agentroster); elsewhere run `agentroster daemon`", file=sys.stderr)
        return 2
    if once:
        print("agentroster daemon: --once and --windows-service do not go together", file=sys.stderr)
        return 2
    from endpoint.service.daemon import Daemon
    from endpoint.service.instance_lock import InstanceLock

    root = logging.getLogger()
    service_log = DeferredFileLog()
    root.handlers[:] = [service_log.buffer]  # a service's stderr goes nowhere

    def make_daemon() -> Daemon:
        daemon = Daemon(settings, **daemon_args)  # opens the data dir, giving it its ACL first
        service_log.open(settings.data_dir, root)
        return daemon

    data_dir_lock = daemon_args.pop("lock", None) or InstanceLock(settings.data_dir)
    return _serve(ServiceHost(make_daemon, data_dir_lock=data_dir_lock))


def _serve(host: ServiceHost) -> int:  # pragma: no cover - pywin32 and the service manager exist on Windows only
    # plain imports, so that PyInstaller sees them and freezes pywin32 in (pyproject.toml: win32 only)
    import pywintypes  # type: ignore[import-untyped,unused-ignore]
    import servicemanager  # type: ignore[import-untyped,unused-ignore]
    import win32service  # type: ignore[import-untyped,unused-ignore]
    import win32serviceutil  # type: ignore[import-untyped,unused-ignore]

    class AgentrosterService(win32serviceutil.ServiceFramework):  # type: ignore[misc,unused-ignore]
        _svc_name_ = SERVICE_NAME
        _svc_display_name_ = SERVICE_DISPLAY_NAME

        def SvcStop(self) -> None:  # noqa: N802 - pywin32's name
            self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING, waitHint=STOP_WAIT_HINT_MS)
            host.stop()

        SvcShutdown = SvcStop  # the machine shuts down: the same clean stop

        def SvcRun(self) -> None:  # noqa: N802 - pywin32's name
            self.ReportServiceStatus(win32service.SERVICE_RUNNING)
            servicemanager.LogInfoMsg(f"{SERVICE_NAME}: started")
            try:
                host.run()
            except EndpointError as exc:  # a refusal that says what to do (a planted data dir, a second
                # daemon): into the event log itself, as the log in the data dir may be what was refused
                log.error("%s", exc)
                servicemanager.LogErrorMsg(f"{SERVICE_NAME}: {exc}")
                raise
            except Exception as exc:
                log.exception("daemon failed")
                servicemanager.LogErrorMsg(f"{SERVICE_NAME}: the daemon failed ({type(exc).__name__}); the "
                                           "log in the data dir has the details")
                raise  # pywin32 then reports STOPPED with an error, and the failure actions restart it
            failure = host.failure()
            if failure is not None:
                servicemanager.LogErrorMsg(f"{SERVICE_NAME}: {failure}")
                # SvcRun's return reports a clean stop: an exception is how pywin32 reports an error
                raise ServiceFailed(failure)
            servicemanager.LogInfoMsg(f"{SERVICE_NAME}: stopped")
            self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING, waitHint=STOP_WAIT_HINT_MS)

    servicemanager.Initialize()
    servicemanager.PrepareToHostSingle(AgentrosterService)
    try:
        servicemanager.StartServiceCtrlDispatcher()
    except pywintypes.error as exc:
        if exc.winerror == _NOT_UNDER_SCM:
            print("agentroster daemon: --windows-service is started by the service manager "
                  "(sc.exe start agentroster); to run the daemon in this console, leave the flag out",
                  file=sys.stderr)
            return 2
        raise
    return host.exit_code or 0
