"""Harness for the client smoke tests: runs the real `lakehose` binary and talks to it with
the clients users run (boto3, the AWS CLI).

The binary is `$LAKEHOSE_BIN` (scripts/test sets it; otherwise the debug build in
`$CARGO_TARGET_DIR`, `~/.cache/lakehose/target` or `./target` is used). Each server gets its
own data dir; S3 buckets named in `BucketARN`s land in `<data dir>/buckets/<bucket>/`.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable

import boto3
import pytest
from botocore.config import Config

ROLE_ARN = "arn:aws:iam::123456789012:role/firehose"
REGION = "us-east-1"
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
DELIVERY_TIMEOUT_S = 15.0

_LISTENING = re.compile(r"lakehose listening on (https?://\S+)")
_REPO_ROOT = Path(__file__).resolve().parents[2]

# Firehose's file extension per CompressionFormat (no FileExtension configured).
EXTENSIONS = {
    "UNCOMPRESSED": "",
    "GZIP": ".gz",
    "ZIP": ".zip",
    "Snappy": ".snappy",
    "HADOOP_SNAPPY": ".hsnappy",
}


def pytest_configure(config: pytest.Config) -> None:
    # Fixed test credentials for every client, and no user AWS config leaking in.
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
        }
    )
    for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_FIREHOSE"):
        os.environ.pop(var, None)


def lakehose_bin() -> Path:
    candidates = []
    if os.environ.get("LAKEHOSE_BIN"):
        candidates.append(Path(os.environ["LAKEHOSE_BIN"]))
    else:
        if os.environ.get("CARGO_TARGET_DIR"):
            candidates.append(Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "lakehose")
        candidates.append(Path.home() / ".cache" / "lakehose" / "target" / "debug" / "lakehose")
        candidates.append(_REPO_ROOT / "target" / "debug" / "lakehose")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    pytest.fail(
        "lakehose binary not found (tried: "
        + ", ".join(str(p) for p in candidates)
        + "); build it with `cargo build -p lakehose` or set LAKEHOSE_BIN",
        pytrace=False,
    )


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class LakehoseServer:
    """One `lakehose serve --listen 127.0.0.1:0` process on its own data dir."""

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        extra_args: Iterable[str] = (),
        ca_bundle: str | None = None,
    ):
        self.data_dir = data_dir
        self.log_path = log_path
        # More `serve` flags (e.g. --tls-cert/--tls-key), and the CA file boto3 clients trust
        # when the server speaks HTTPS with a test certificate.
        self.extra_args = list(extra_args)
        self.ca_bundle = ca_bundle
        self.endpoint = ""
        self.proc: subprocess.Popen[str] | None = None
        self._stdout: list[str] = []

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> "LakehoseServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "a", encoding="utf-8", errors="replace")
        cmd = [str(lakehose_bin()), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir)]
        cmd += self.extra_args
        self._log.write(f"$ {' '.join(cmd)}\n")
        self._log.flush()
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        # cwd = data dir so no ./lakehose.toml from elsewhere is picked up.
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
            env=env,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            # Reads stdout for the whole life of the process so the pipe never fills up.
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self._stdout.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, name="lakehose-stdout", daemon=True).start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                pytest.fail(
                    f"lakehose did not print its listening line within {STARTUP_TIMEOUT_S:.0f} s\n"
                    + self.log_tail(),
                    pytrace=False,
                )
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                code = self.proc.wait()
                pytest.fail(
                    f"lakehose exited with {code} before listening\n" + self.log_tail(), pytrace=False
                )
            match = _LISTENING.search(line)
            if match:
                self.endpoint = match.group(1).rstrip("/")
                return self

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, wait, SIGKILL fallback. Returns the exit code of a clean stop, else None."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- {self.log_path} (last {lines} lines) ---\n{tail}"

    # --- clients and delivered objects ------------------------------------------------------

    def client(self):
        return self.aws("firehose")

    def aws(self, service: str, access_key_id: str = "test", secret_access_key: str = "test"):
        """A boto3 client of `service` (firehose, glue, athena) for this server, signing with
        the given key (a server started with `[auth]` keys checks it)."""
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            verify=self.ca_bundle,
            config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=60),
        )

    def bucket_dir(self, bucket: str) -> Path:
        return self.data_dir / "buckets" / bucket

    def objects(self, bucket: str, stream: str, extension: str) -> dict[str, bytes]:
        """Delivered objects of `stream` (key relative to the bucket -> bytes)."""
        root = self.bucket_dir(bucket)
        found: dict[str, bytes] = {}
        if not root.is_dir():
            return found
        for path in root.rglob("*"):
            name = path.name
            # object_store stages writes as `<key>#<n>` and renames: skip those.
            if not path.is_file() or "#" in name or not name.startswith(f"{stream}-"):
                continue
            if extension and not name.endswith(extension):
                continue
            if not extension and "." in name:
                continue
            try:
                found[path.relative_to(root).as_posix()] = path.read_bytes()
            except FileNotFoundError:
                continue
        return found

    def wait_for_records(
        self,
        bucket: str,
        stream: str,
        extension: str,
        decode: Callable[[bytes], bytes],
        expected: Iterable[bytes],
        split: Callable[[bytes], list[bytes]] | None = None,
        timeout: float = DELIVERY_TIMEOUT_S,
    ) -> tuple[dict[str, bytes], Counter]:
        """Polls until the decoded objects of `stream` hold every expected record.

        Returns the objects and the Counter of records found (the caller asserts exactness).
        Records are newline-terminated unless `split` says otherwise.
        """
        split = split or split_lines
        want = Counter(expected)
        deadline = time.monotonic() + timeout
        last_error = ""
        found: Counter = Counter()
        objects: dict[str, bytes] = {}
        while True:
            objects = self.objects(bucket, stream, extension)
            found = Counter()
            try:
                for key in sorted(objects):
                    found.update(split(decode(objects[key])))
                last_error = ""
            except Exception as exc:  # a half-written object: look again
                last_error = f"{type(exc).__name__}: {exc}"
            if not last_error and not (want - found):
                return objects, found
            if time.monotonic() >= deadline:
                missing = want - found
                pytest.fail(
                    f"after {timeout:.0f} s, {len(objects)} object(s) of stream {stream!r} under "
                    f"{self.bucket_dir(bucket)} (extension {extension!r}) hold "
                    f"{sum(found.values())} record(s); {sum(missing.values())} of "
                    f"{sum(want.values())} expected records missing"
                    + (f"; last decode error: {last_error}" if last_error else "")
                    + f"; keys: {sorted(objects)[:10]}",
                    pytrace=False,
                )
            time.sleep(0.2)


def split_lines(data: bytes) -> list[bytes]:
    """Newline-terminated records, each with its newline (a last unterminated piece kept)."""
    return data.splitlines(keepends=True)


def object_key_pattern(stream: str, extension: str) -> re.Pattern[str]:
    """Firehose's default key: `YYYY/MM/DD/HH/<stream>-<version>-YYYY-MM-DD-HH-MM-SS-<uuid><ext>`."""
    return re.compile(
        r"^(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P<h>\d{2})/"
        + re.escape(stream)
        + r"-(?P<version>\d+)-(?P=y)-(?P=m)-(?P=d)-(?P=h)-\d{2}-\d{2}-"
        + r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
        + re.escape(extension)
        + "$"
    )


_servers: list[LakehoseServer] = []


@pytest.fixture(scope="session")
def lakehose(tmp_path_factory: pytest.TempPathFactory):
    """The shared server for the session; stopped with SIGTERM (SIGKILL fallback) at the end."""
    root = tmp_path_factory.mktemp("lakehose")
    server = LakehoseServer(root / "data", root / "server.log").start()
    _servers.append(server)
    yield server
    code = server.stop()
    _servers.remove(server)
    if code != 0:
        pytest.fail(
            f"lakehose did not stop cleanly on SIGTERM (exit {code}; None = needed SIGKILL)\n"
            + server.log_tail(),
            pytrace=False,
        )


@pytest.fixture
def server_factory(tmp_path: Path):
    """Starts extra servers (restart tests); any still running are killed afterwards."""
    started: list[LakehoseServer] = []

    def start(data_dir: Path | None = None) -> LakehoseServer:
        server = LakehoseServer(data_dir or tmp_path / "data", tmp_path / "server.log").start()
        started.append(server)
        _servers.append(server)
        return server

    yield start
    for server in started:
        server.kill()
        _servers.remove(server)


@pytest.fixture(scope="module")
def configured_server(tmp_path_factory: pytest.TempPathFactory):
    """Starts servers with a `lakehose.toml` body (e.g. `[auth]` keys) for a test module; they
    are stopped with SIGTERM (SIGKILL fallback) after the module."""
    started: list[LakehoseServer] = []

    def start(config: str) -> LakehoseServer:
        root = tmp_path_factory.mktemp("configured")
        path = root / "lakehose.toml"
        path.write_text(config, encoding="utf-8")
        server = LakehoseServer(root / "data", root / "server.log", extra_args=["--config", str(path)])
        server.start()
        started.append(server)
        _servers.append(server)
        return server

    yield start
    for server in started:
        server.stop()
        _servers.remove(server)


@pytest.fixture(scope="session")
def firehose(lakehose: LakehoseServer):
    return lakehose.client()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _servers:
        for server in _servers:
            report.sections.append((f"lakehose server log ({server.data_dir})", server.log_tail()))
