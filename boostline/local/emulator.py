"""A local AWS API emulator (moto's server on 127.0.0.1) for the handlers.

The Lambda handlers run unchanged: their boto3 clients reach the emulator
through the standard AWS_ENDPOINT_URL setting, with throw-away credentials.
Nothing here ever talks to AWS.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

EMULATOR_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
}
ACCOUNT = "123456789012"  # the emulator's account


@dataclass(frozen=True)
class Emulator:
    url: str
    region: str

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=self.region, endpoint_url=self.url)


@contextmanager
def running_emulator(region: str) -> Iterator[Emulator]:
    """Start moto's server on a free loopback port; point AWS_* at it until exit."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    # moto keeps its state per process: start from an empty account every time
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"))
    saved = {
        k: os.environ.get(k)
        for k in [*EMULATOR_ENV, "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_REGION"]
    }
    os.environ.update(
        EMULATOR_ENV, AWS_ENDPOINT_URL=url, AWS_DEFAULT_REGION=region, AWS_REGION=region
    )
    try:
        yield Emulator(url=url, region=region)
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
