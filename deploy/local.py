"""One machine: start Prefect's server, the Baoxue web process and a process-pool worker as children.

Prefect's own database lives in ``PREFECT_HOME`` (SQLite ``prefect.db`` there by default),
apart from Baoxue's database. Nothing listens beyond 127.0.0.1. Children run in ``PREFECT_HOME``,
never in the caller's current directory.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:``port`` now (as servers do, with SO_REUSEADDR)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def prefect_home_for(db_url: str) -> Path:
    """Prefect's state next to a SQLite Baoxue database (out/baoxue.db → out/prefect/), else ./.prefect."""
    if db_url.startswith("sqlite:///"):
        return Path(db_url.split("///", 1)[1]).resolve().parent / "prefect"
    return Path(".prefect").resolve()


def base_env(prefect_home: Path, api_url: str | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
        "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    })
    if api_url:
        env["PREFECT_API_URL"] = api_url
    env.update(extra)
    return env


def start(cmd: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "ab")
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=cwd or env.get("PREFECT_HOME"))


def start_worker(env: dict[str, str], log: Path, name: str) -> subprocess.Popen:
    """``prefect worker start`` on the process pool ``baoxue-process``: it polls the pool, runs each
    flow run as a subprocess and heartbeats, so the UI's Work Pools page shows it with its health."""
    from deploy.deployments import WORK_POOL

    return start([str(BIN / "prefect"), "worker", "start", "--pool", WORK_POOL, "--type", "process",
                  "--name", name], env, log)


def start_prefect_server(prefect_home: Path, port: int, log: Path) -> tuple[subprocess.Popen, str]:
    prefect_home.mkdir(parents=True, exist_ok=True)
    env = base_env(prefect_home, PREFECT_UI_API_URL=f"http://127.0.0.1:{port}/api")
    env.pop("PREFECT_API_URL", None)
    proc = start([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)], env, log)
    return proc, f"http://127.0.0.1:{port}/api"


def wait_healthy(url: str, proc: subprocess.Popen | None = None, timeout: float = 120, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{url}: the process exited with {proc.returncode}\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - 127.0.0.1 only
                if r.status < 500:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen | None, timeout: float = 15) -> None:
    """SIGTERM the child's process group, then SIGKILL what is left after ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)
