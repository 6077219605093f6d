"""S3 objects through boto3 (the ``s3`` extra): reading small documents, uploading finished files.

Credentials and region come from boto3's usual chain (environment, ``AWS_PROFILE``/``~/.aws``,
instance roles); segxai never logs or records them. The endpoint is boto3's (``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_S3``) or, when only GDAL's variables are set, the same server GDAL uses:
``AWS_S3_ENDPOINT`` with ``AWS_HTTPS=NO`` for plain HTTP and ``AWS_VIRTUAL_HOSTING=FALSE`` for
path-style addressing — so reads (GDAL) and writes (boto3) go to one place.

Uploads use boto3's managed transfer: one PUT, or a multipart upload for files over 64 MiB, whose
object appears only when the upload completes — a key never holds a partial object.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Optional

from segxai_cli.cloud.redact import redact
from segxai_cli.cloud.retry import http_status, is_transient, with_retries
from segxai_cli.errors import InputError, OutputError

MULTIPART_THRESHOLD = 64 * 1024 * 1024


def split(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` → (bucket, key)."""
    rest = uri[len("s3://"):] if uri.lower().startswith("s3://") else uri
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise InputError(f"{uri}: no bucket in the S3 location (expected s3://bucket/key)")
    return bucket, key


def endpoint_url() -> Optional[str]:
    """boto3's endpoint: its own variables, else GDAL's (see the module docstring)."""
    for var in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if os.environ.get(var):
            return os.environ[var]
    host = os.environ.get("AWS_S3_ENDPOINT")
    if not host:
        return None
    if "://" in host:
        return host
    scheme = "http" if os.environ.get("AWS_HTTPS", "YES").upper() in ("NO", "FALSE", "OFF", "0") else "https"
    return f"{scheme}://{host}"


@functools.lru_cache(maxsize=4)
def _client(endpoint: Optional[str], path_style: bool) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise OutputError("s3:// locations need boto3: pip install 'segxai[s3]'") from None
    cfg = Config(retries={"max_attempts": 5, "mode": "standard"},
                 s3={"addressing_style": "path" if path_style else "auto"})
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=cfg)


def client() -> Any:
    path_style = os.environ.get("AWS_VIRTUAL_HOSTING", "TRUE").upper() in ("NO", "FALSE", "OFF", "0")
    return _client(endpoint_url(), path_style)


def _errors() -> tuple[type[BaseException], ...]:
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError, Boto3Error)


def _message(uri: str, exc: BaseException, action: str) -> str:
    status = http_status(exc)
    if status in (401, 403):
        return f"{uri}: access denied (HTTP {status}); check the AWS credentials"
    if status == 404 or "NoSuchKey" in str(exc) or "NoSuchBucket" in str(exc):
        return f"{uri}: not found" + (" (no such bucket)" if "NoSuchBucket" in str(exc) else "")
    return f"{uri}: {action} ({redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)})"


def get_bytes(uri: str) -> bytes:
    bucket, key = split(uri)
    try:
        return with_retries(lambda _: client().get_object(Bucket=bucket, Key=key)["Body"].read(), uri, _errors())
    except _errors() as exc:
        raise InputError(_message(uri, exc, "cannot read")) from None


def exists(uri: str) -> bool:
    """Whether the object exists (a 404 is False; other failures raise :class:`OutputError`)."""
    bucket, key = split(uri)
    try:
        with_retries(lambda _: client().head_object(Bucket=bucket, Key=key), uri, _errors())
        return True
    except _errors() as exc:
        if http_status(exc) == 404 or "Not Found" in str(exc):
            return False
        raise OutputError(_message(uri, exc, "cannot check")) from None


def list_keys(uri_prefix: str) -> list[str]:
    """Keys under ``s3://bucket/prefix`` (not recursive past ``/``), as ``s3://`` URIs."""
    bucket, prefix = split(uri_prefix)
    out: list[str] = []
    try:
        pages = client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
        for page in pages:
            out += [f"s3://{bucket}/{o['Key']}" for o in page.get("Contents", [])]
    except _errors() as exc:
        raise OutputError(_message(uri_prefix, exc, "cannot list")) from None
    return out


def upload(path: Path, uri: str, content_type: Optional[str] = None) -> None:
    """Upload a finished local file (see the module docstring: never a partial object)."""
    from boto3.s3.transfer import TransferConfig

    bucket, key = split(uri)
    cfg = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD)
    extra = {"ContentType": content_type} if content_type else None
    try:
        with_retries(lambda _: client().upload_file(str(path), bucket, key, ExtraArgs=extra, Config=cfg), uri,
                     _errors() + (OSError,))
    except _errors() + (OSError,) as exc:
        raise OutputError(_message(uri, exc, "cannot write")) from None


def delete(uri: str) -> None:
    bucket, key = split(uri)
    try:
        with_retries(lambda _: client().delete_object(Bucket=bucket, Key=key), uri, _errors())
    except _errors() as exc:
        raise OutputError(_message(uri, exc, "cannot delete")) from None


__all__ = ["client", "delete", "endpoint_url", "exists", "get_bytes", "is_transient", "list_keys", "split", "upload"]
