"""The image's single-model server, for the image lane.

In the SageMaker XGBoost image, `serve` puts nginx in front of gunicorn with gevent workers
running sagemaker-containers' Flask `Worker` around a `Transformer(model_fn=...,
transform_fn=...)` built from the user module (SAGEMAKER_PROGRAM). `main` is that WSGI
application: it builds the transformer on a worker's first request, which loads the model
there. Run as a script, this module does what `serve` does before that: set the image's
serving defaults, pip-install the submit directory into this Python (the toolkit's
import_module), then exec gunicorn with the toolkit's own flags, bound to 127.0.0.1 and
without nginx (which only proxies and sets no body limit).
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from typing import Any

from sagemaker_containers import _env
from sagemaker_containers.beta.framework import env, modules, transformer, worker

_app: worker.Worker | None = None


def user_transformer(user_module: ModuleType) -> transformer.Transformer:
    """The transformer the image builds from a user module that has a transform_fn."""
    transform_fn = getattr(user_module, "transform_fn", None)
    others = [n for n in ("input_fn", "predict_fn", "output_fn") if hasattr(user_module, n)]
    if transform_fn is None or others:
        # The image refuses transform_fn together with the other hooks; without transform_fn
        # it would use its own XGBoost defaults, which this lane does not carry.
        raise RuntimeError(f"{user_module.__name__}: needs transform_fn alone, has {others}")
    return transformer.Transformer(model_fn=user_module.model_fn, transform_fn=transform_fn)


def main(environ: dict[str, Any], start_response: Any) -> Any:
    global _app
    if _app is None:
        serving_env = env.ServingEnv()
        user_module = importlib.import_module(serving_env.module_name)
        handler = user_transformer(user_module)
        handler.initialize()  # model_fn(/opt/ml/model)
        _app = worker.Worker(transform_fn=handler.transform, module_name=serving_env.module_name)
    return _app(environ, start_response)


def serve() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the image's serving default
    serving_env = env.ServingEnv()
    modules.import_module(serving_env.module_dir, serving_env.module_name)
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--timeout",
        str(serving_env.model_server_timeout),
        "-k",
        "gevent",
        "--pythonpath",
        ",".join([*sys.path, _env.code_dir]),
        "-b",
        f"127.0.0.1:{serving_env.http_port}",
        "--worker-connections",
        str(1000 * serving_env.model_server_workers),
        "-w",
        str(serving_env.model_server_workers),
        "--log-level",
        "info",
        "image_serving:main",
    ]
    os.execv(argv[0], argv)


if __name__ == "__main__":
    serve()
