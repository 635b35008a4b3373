"""HTTP prediction service and its page (needs ``pip install cnnkit[serve]``).

    from cnnkit.serve import create_app, run, running
    app = create_app("model.cnnkit", max_upload_bytes=8 << 20, max_files=16)
    run("model.cnnkit", host="127.0.0.1", port=8000)

FastAPI is imported on first use, so ``cnnkit.serve.images`` works without it.
"""

__all__ = ["create_app", "run", "running"]


def __getattr__(name):
    if name == "create_app":
        from .app import create_app
        return create_app
    if name in ("run", "running"):
        from . import server
        return getattr(server, name)
    raise AttributeError(f"module 'cnnkit.serve' has no attribute {name!r}")
