"""Start the service: ``run`` in the foreground (the CLI), ``running`` in a background thread
(tests, benchmarks, notebooks). Both bind 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager


def run(model_path, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
        **app_options) -> None:
    """Serve ``model_path`` (saved model folder, .onnx / .pt export, or a model) until
    interrupted. ``app_options`` go to ``create_app`` (limits, top_k, batching)."""
    import uvicorn

    from .app import create_app

    app = create_app(model_path, **app_options)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"cnnkit serve: listening on {host}, reachable from other machines")
    uvicorn.run(app, host=host, port=port, log_level=log_level)


@contextmanager
def running(app, host: str = "127.0.0.1", port: int = 0, timeout: float = 30.0,
            log_level: str = "warning"):
    """Serve ``app`` from a background thread; yields its base URL (an ephemeral port by
    default). The server stops when the block ends."""
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="cnnkit-serve")
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
