"""A tiny AWS Lambda Invoke API server for end-to-end tests of Lakehose's Lambda processor.

It serves `POST /2015-03-31/functions/{FunctionName}/invocations` and runs handlers written
like Firehose data-transformation functions (base64 in, base64 out). Map a stream's LambdaArn
to it in lakehose.toml:

    [lambdas]
    "arn:aws:lambda:us-east-1:123456789012:function:upper" = "http://127.0.0.1:PORT"

Use it from pytest:

    with LambdaServer() as server:
        ... server.url ...; server.calls["upper"]; server.events["upper"]

or run it by hand: `python3 tests/python/lambda_server.py [--port N]`.

Functions (the name in the invoke path):
- upper: every record `Ok`, data upper-cased.
- echo: every record `Ok`, data unchanged.
- mixed: data starting with `drop` -> `Dropped`, with `fail` -> `ProcessingFailed`, else upper.
- partition: `Ok` unchanged, `metadata.partitionKeys` = the record's top-level string/number
  fields (the record must be a JSON object).
- raise: answers 200 with `X-Amz-Function-Error: Unhandled` (a crashed function).
Unknown names answer 404 (ResourceNotFoundException), as Lambda does.
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

Result = tuple[str, bytes | None, dict[str, Any] | None]


def _transform(event: dict[str, Any], fn: Callable[[bytes], Result]) -> dict[str, Any]:
    """Applies `fn` to each record the way a Firehose transformation Lambda does."""
    out = []
    for record in event["records"]:
        result, data, metadata = fn(base64.b64decode(record["data"]))
        item: dict[str, Any] = {"recordId": record["recordId"], "result": result}
        if data is not None:
            item["data"] = base64.b64encode(data).decode()
        if metadata is not None:
            item["metadata"] = metadata
        out.append(item)
    return {"records": out}


def _mixed(data: bytes) -> Result:
    if data.startswith(b"drop"):
        return "Dropped", None, None
    if data.startswith(b"fail"):
        return "ProcessingFailed", data, None
    return "Ok", data.upper(), None


def _partition(data: bytes) -> Result:
    doc = json.loads(data)
    keys = {k: str(v) for k, v in doc.items() if isinstance(v, (str, int, float))}
    return "Ok", data, {"partitionKeys": keys}


HANDLERS: dict[str, Callable[[bytes], Result]] = {
    "upper": lambda d: ("Ok", d.upper(), None),
    "echo": lambda d: ("Ok", d, None),
    "mixed": _mixed,
    "partition": _partition,
}


class LambdaServer:
    """Runs the server on 127.0.0.1 in a background thread (a context manager)."""

    def __init__(self, port: int = 0) -> None:
        self.calls: Counter[str] = Counter()
        self.events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) != 4 or parts[:2] != ["2015-03-31", "functions"] or parts[3] != "invocations":
                    self._send(404, {"message": "no such route"})
                    return
                name = parts[2]
                event = json.loads(body)
                with owner._lock:
                    owner.calls[name] += 1
                    owner.events[name].append(event)
                if name == "raise":
                    self._send(
                        200,
                        {"errorMessage": "boom", "errorType": "RuntimeError"},
                        {"X-Amz-Function-Error": "Unhandled"},
                    )
                elif name in HANDLERS:
                    self._send(200, _transform(event, HANDLERS[name]))
                else:
                    self._send(404, {"Type": "User", "message": f"Function not found: {name}"})

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        host, bound = self._server.server_address[:2]
        self.url = f"http://{host}:{bound}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "LambdaServer":
        self._thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with LambdaServer(args.port) as server:
        print(f"lambda server listening on {server.url}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
