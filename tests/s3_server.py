"""A local S3 store for the remote tests: moto's S3 API served on 127.0.0.1, a user whose keys
it can check, and a way to take it down in the middle of an upload.

moto keeps its buckets in this process, not in the server, so they survive `stop()` and
`start()`; a restart binds the same port, so a remote's `endpointurl` stays valid.
"""
from __future__ import annotations

import json
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterable

import boto3
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

REGION = "us-east-1"
# The store's one user may do anything on S3 (checked while IAM authentication is on).
S3_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: object) -> None:
        """One line per request would bury a failing test's output."""


class S3Store:
    """moto's S3 on 127.0.0.1 at a port the OS picks, serving one bucket.

    This is `moto.server.ThreadedMotoServer` plus what the tests need from a store going down:
    `stop()` refuses connections at once, and `fail_after_uploads(n)` stores ``n`` uploaded
    objects, then drops the next upload's connection and stops (a push cut off half-way).
    """

    def __init__(self, bucket: str = "results") -> None:
        self.bucket = bucket
        self.port = 0
        self._uploads = 0
        self._fail_after: int | None = None
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._app = DomainDispatcherApplication(create_backend_app)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        self.fail_after_uploads(None)
        self._server = make_server("127.0.0.1", self.port, self._serve, threaded=True,
                                   request_handler=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()   # serve_forever closes the listening socket on its way out
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def fail_after_uploads(self, count: int | None) -> None:
        """Go down at the upload after the next ``count`` ones (``None``: never)."""
        with self._lock:
            self._uploads, self._fail_after = 0, count

    def client(self, key_id: str = "setup", secret: str = "setup"):
        """A boto3 S3 client for this store."""
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=key_id, aws_secret_access_key=secret)

    def objects(self, prefix: str) -> set[str]:
        """The keys stored under ``prefix`` in the bucket."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                        Prefix=prefix)
        return {item["Key"] for page in pages for item in page.get("Contents", [])}

    def create_bucket_and_user(self) -> tuple[str, str]:
        """The bucket, and a user allowed everything on S3; returns the user's (key id, secret).

        Call it before `moto.core.authorization.enable_iam_authentication()`: moto lets any
        request through until then.
        """
        # moto's accounts live in this process, not in the server: start from none, whatever
        # store of this test process ran before
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset",
                                                      method="POST"), timeout=30).close()
        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name=REGION,
                           aws_access_key_id="setup", aws_secret_access_key="setup")
        iam.create_user(UserName="pipeline")
        iam.put_user_policy(UserName="pipeline", PolicyName="s3", PolicyDocument=S3_POLICY)
        key = iam.create_access_key(UserName="pipeline")["AccessKey"]
        self.client().create_bucket(Bucket=self.bucket)
        return key["AccessKeyId"], key["SecretAccessKey"]

    def _serve(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "").strip("/")
        if environ["REQUEST_METHOD"] == "PUT" and "/" in path:   # an object, not a bucket
            with self._lock:
                self._uploads += 1
                cut = self._fail_after is not None and self._uploads > self._fail_after
            if cut:
                # what the client of a store that dies mid-request sees: a dropped connection,
                # then nobody listening
                environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
                self.stop()
                start_response("503 Service Unavailable", [])
                return [b""]
        return self._app(environ, start_response)
