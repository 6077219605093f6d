"""An S3-compatible server on 127.0.0.1 (moto in server mode, a real HTTP server in a thread) and the
environment that points GDAL (``/vsis3/``) and boto3 at it with dummy credentials."""

from __future__ import annotations

from contextlib import contextmanager
from collections.abc import Iterator

SECRET = "dummy-secret-never-logged"


@contextmanager
def s3_server(monkeypatch) -> Iterator[str]:
    """Start moto, set the AWS/GDAL environment for it; yields the endpoint ``127.0.0.1:PORT``."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"{host}:{port}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_REGION": "us-east-1", "AWS_S3_ENDPOINT": endpoint, "AWS_HTTPS": "NO",
           "AWS_VIRTUAL_HOSTING": "FALSE", "SEGXAI_RETRY_DELAY": "0.05"}
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from segxai_cli.cloud import s3

    s3._client.cache_clear()
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"http://{endpoint}/moto-api/reset", method="POST")).read()
    try:
        yield endpoint
    finally:
        s3._client.cache_clear()
        server.stop()


__all__ = ["SECRET", "s3_server"]
