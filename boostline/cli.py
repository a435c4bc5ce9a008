"""The `boostline` command line (also `python -m boostline`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from boostline.config import (
    CONFIG_ENV,
    BoostlineConfig,
    ConfigError,
    default_config_path,
    load_config,
    write_default_config,
)
from boostline.local.workdir import DEFAULT_WORKDIR, Workdir
from boostline.naming import names_for
from boostline.progress import Progress
from training_scripts.dataset_schema import SchemaError, load_schema

Handler = Callable[[argparse.Namespace], int]


WORKDIR_ENV = "BOOSTLINE_WORKDIR"


def _global_options(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: a value given before the subcommand is not overwritten by the
    # subcommand's default; main() fills in what was not given anywhere.
    parser.add_argument(
        "--workdir",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"where the local buckets, registry and endpoints live (default: ${WORKDIR_ENV} "
        f"or {DEFAULT_WORKDIR})",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"the Boostline configuration file (default: ${CONFIG_ENV}, else the checkout's "
        "config/boostline.yaml or the default embedded in the package)",
    )
    parser.add_argument(
        "--quiet", action="store_true", default=argparse.SUPPRESS, help="print only the result"
    )


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common)
    return common


def _defaults(args: argparse.Namespace) -> argparse.Namespace:
    """The global options' defaults, for those given neither before nor after the command."""
    if not hasattr(args, "workdir"):
        args.workdir = Path(os.environ.get(WORKDIR_ENV) or DEFAULT_WORKDIR)
    if not hasattr(args, "config"):
        args.config = default_config_path()
    if not hasattr(args, "quiet"):
        args.quiet = False
    return args


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _add_assembly_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--assembly",
        type=Path,
        help="cloud assembly (a cdk.out folder) to execute (default: the stage, "
        "synthesized offline and cached in the workdir)",
    )


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="boostline",
        description="Train, register, serve and monitor an XGBoost classifier, locally or on "
        "SageMaker.",
    )
    _global_options(parser)
    from boostline import __version__

    parser.add_argument("--version", action="version", version=f"boostline {__version__}")
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    data = groups.add_parser("data", help="generate datasets")
    data_cmds = data.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    gen = data_cmds.add_parser(
        "generate",
        parents=[common],
        help="write a synthetic loan book as CSV",
        description="Write a synthetic consumer-loan book (with PII columns, missing values "
        "and a 10-20%% default rate) as CSV files, with its schema beside the generator.",
    )
    gen.add_argument("--rows", type=int, required=True, help="number of applications")
    gen.add_argument("--out", type=Path, required=True, help="output folder")
    gen.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    gen.add_argument(
        "--drift", type=float, default=0.0, help="economic drift, 0 (none) to 1 (strong)"
    )
    gen.add_argument("--shards", type=int, default=1, help="number of CSV files")
    gen.set_defaults(handler=cmd_data_generate)

    pipeline = groups.add_parser("pipeline", help="run the training pipeline")
    pipe_cmds = pipeline.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    run = pipe_cmds.add_parser(
        "run",
        parents=[common],
        help="preprocess, tune and train on a CSV file or folder",
        description="Run the training pipeline locally, each step the same script and "
        "contract as on SageMaker.",
    )
    run.add_argument("--data", type=Path, required=True, help="CSV file or folder of CSV files")
    run.add_argument("--schema", type=Path, help="dataset schema (default: from the config)")
    run.add_argument(
        "--instance-count", type=int, help="training hosts (the TrainingInstanceCount parameter)"
    )
    run.add_argument(
        "--processing-instance-count",
        type=int,
        help="hosts of each preprocessing step, each with its share of the raw files "
        "(the ProcessingInstanceCount parameter; default: preprocess.instance_count)",
    )
    run.add_argument(
        "--max-trials",
        type=int,
        help="at most this many tuning trials: lowers the definition's budget (the config's "
        "tuning.max_jobs), never raises it",
    )
    run.add_argument("--stage", default="dev", help="stage whose pipeline definition runs")
    _add_assembly_argument(run)
    _json_flag(run)
    run.set_defaults(handler=cmd_pipeline_run)

    models = groups.add_parser("models", help="the model registry")
    model_cmds = models.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    listing = model_cmds.add_parser("list", parents=[common], help="list model versions")
    listing.add_argument(
        "--stage",
        help="list the stage's model package group on AWS, with the serving stack's live "
        "version (uses your AWS credentials); without it: the local registry",
    )
    _json_flag(listing)
    listing.set_defaults(handler=cmd_models_list)
    describe = model_cmds.add_parser(
        "describe", parents=[common], help="show one version (or latest-approved)"
    )
    describe.add_argument("version", help="version number or 'latest-approved'")
    _json_flag(describe)
    describe.set_defaults(handler=cmd_models_describe)
    for verb, status in (("approve", "Approved"), ("reject", "Rejected")):
        cmd = model_cmds.add_parser(verb, parents=[common], help=f"mark a version {status}")
        cmd.add_argument("version", help="version number")
        cmd.add_argument("--reason", default="", help="why (kept in the approval history)")
        cmd.add_argument(
            "--by", default=None, help="who decides (default: the OS user running the command)"
        )
        cmd.set_defaults(handler=cmd_models_set_status, status=status)

    serve = groups.add_parser(
        "serve",
        parents=[common],
        help="serve a registered model over HTTP",
        description="Serve a model version with the SageMaker container contract "
        "(GET /ping, POST /invocations) on gunicorn, with data capture if asked.",
    )
    serve.add_argument(
        "--model",
        default="live",
        help="version number, 'latest-approved', or 'live' (default: the version deployed "
        "last; the latest approved one if none was ever deployed)",
    )
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    serve.add_argument("--workers", type=int, help="worker processes (default: one per CPU)")
    serve.add_argument(
        "--capture",
        action="store_true",
        help="write data capture where the stage's endpoint does (<workdir>/buckets/capture/"
        "capture/<endpoint>/<variant>/), for `boostline monitor run`",
    )
    serve.add_argument("--stage", default="dev", help="stage whose endpoint this stands for")
    serve.add_argument(
        "--sampling-percentage",
        type=int,
        default=100,
        help="share of requests captured (default 100)",
    )
    serve.set_defaults(handler=cmd_serve)

    monitor = groups.add_parser("monitor", help="run the endpoint's monitors")
    monitor_cmds = monitor.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    monitor_run = monitor_cmds.add_parser(
        "run",
        parents=[common],
        help="one scheduled monitoring run, on the local capture",
        description="Run the monitoring stack's pipeline (data quality and model quality) "
        "for one window of the local endpoint's capture, as its schedule would, against "
        "the baselines of the model being monitored; evaluates the stack's alarms.",
    )
    monitor_run.add_argument(
        "--model", default="live", help="the monitored version (default: the live one)"
    )
    monitor_run.add_argument("--stage", default="dev", help="stage whose monitors run")
    monitor_run.add_argument(
        "--window-start", help="ISO time (default: the start of the last --hours)"
    )
    monitor_run.add_argument("--window-end", help="ISO time (default: now)")
    monitor_run.add_argument(
        "--hours", type=float, default=1.0, help="window length before now (default 1)"
    )
    monitor_run.add_argument("--json", action="store_true", help="print the run as JSON")
    _add_assembly_argument(monitor_run)
    monitor_run.set_defaults(handler=cmd_monitor_run)

    predict = groups.add_parser(
        "predict",
        parents=[common],
        help="batch inference on a file, like a batch transform",
        description="Score a file line by line in mini-batches of at most 6 MB, as a "
        "SageMaker batch transform job with SplitType=Line does.",
    )
    predict.add_argument("--input", type=Path, required=True, help="input file")
    predict.add_argument("--output", type=Path, required=True, help="output file")
    predict.add_argument(
        "--model",
        default="live",
        help="version number, 'latest-approved', or 'live' (default: the version deployed "
        "last; the latest approved one if none was ever deployed)",
    )
    predict.add_argument(
        "--content-type",
        default="text/csv",
        help="text/csv: a data owner's CSV with its header (the id column passes "
        "through, a header is written) or encoded, headerless features; "
        "application/jsonlines: raw records",
    )
    predict.add_argument("--accept", default="text/csv", help="text/csv or application/json")
    predict.add_argument("--explain", action="store_true", help="add the top reason codes")
    predict.set_defaults(handler=cmd_predict)

    batch = groups.add_parser("batch", help="score data owners' CSVs with the live model")
    batch_cmds = batch.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    batch_run = batch_cmds.add_parser(
        "run",
        parents=[common],
        help="run the serving stack's batch pipeline, here or on AWS",
        description="Score CSVs with their header (a data owner's files: id, PII and "
        "target columns may be present) into <id column>,probability,decision, with the "
        "live model, by the serving stack's batch pipeline. A local file or folder runs the "
        "pipeline here; an s3:// --input starts it on AWS (your AWS credentials) and "
        "prints the execution ARN and where the scores land.",
    )
    batch_run.add_argument(
        "--input",
        required=True,
        help="a CSV file or folder; or s3://<raw bucket>/batch/input/... (on AWS)",
    )
    batch_run.add_argument(
        "--output",
        help="folder for the scores (required here); on AWS an s3://<raw bucket>/"
        "batch/output/... prefix (default: the pipeline's); each run writes under its "
        "execution id",
    )
    batch_run.add_argument(
        "--model",
        default="live",
        help="here: the version scoring (default: the live one); on AWS the pipeline always "
        "scores with the serving stack's live model",
    )
    batch_run.add_argument("--stage", default="dev", help="stage whose batch pipeline runs")
    _add_assembly_argument(batch_run)
    _json_flag(batch_run)
    batch_run.set_defaults(handler=cmd_batch_run)

    rollback = groups.add_parser(
        "rollback",
        parents=[common],
        help="serve an earlier approved version on AWS",
        description="Point a stage's serving stack at an earlier Approved model version "
        "through CloudFormation, as the deployer function does on a rejection. Uses your "
        "AWS credentials; 'none' removes the endpoint.",
    )
    rollback.add_argument("--stage", required=True, help="stage name from the config")
    rollback.add_argument(
        "--to", required=True, dest="to_version", help="an Approved version number, or 'none'"
    )
    rollback.add_argument("--wait", action="store_true", help="wait for UPDATE_COMPLETE")
    rollback.set_defaults(handler=cmd_rollback)

    cost = groups.add_parser(
        "cost",
        parents=[common],
        help="estimate what a stage costs per day on AWS",
        description="Instance-hours from the config times published on-demand prices: "
        "idle, and per pipeline run. With --rows, each step of a run on a book of that "
        "many rows is sized from measured throughput.",
    )
    cost.add_argument("--stage", default="dev", help="stage name from the config")
    cost.add_argument(
        "--runs-per-day", type=float, default=1.0, help="pipeline runs per day (default 1)"
    )
    cost.add_argument(
        "--rows",
        type=_positive_int,
        help="size the run for a book of this many rows (default: fixed assumed hours "
        "and the tuning budget's upper bound)",
    )
    _json_flag(cost)
    cost.set_defaults(handler=cmd_cost)

    config = groups.add_parser("config", help="check the configuration, or write a copy to edit")
    cfg_cmds = config.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    check = cfg_cmds.add_parser(
        "check", parents=[common], help="validate the config and the dataset schema"
    )
    _json_flag(check)
    check.set_defaults(handler=cmd_config_check)
    init = cfg_cmds.add_parser(
        "init",
        parents=[common],
        help="write an editable copy of the default config and its dataset schema",
    )
    init.add_argument("directory", type=Path, help="where to write boostline.yaml and its schema")
    init.set_defaults(handler=cmd_config_init)

    demo = groups.add_parser(
        "demo",
        parents=[common],
        help="run the whole system on generated data",
        description="Train, deploy, serve, detect drift, retrain and redeploy on this "
        "machine: the Lambda handlers decide against an AWS API emulator on 127.0.0.1, the "
        "local runtime runs the jobs and the endpoint. Starts clean in <workdir>/demo/.",
    )
    demo.add_argument(
        "--rows",
        type=int,
        default=20_000,
        help="applications in the initial loan book (default 20000)",
    )
    demo.add_argument(
        "--stream",
        type=int,
        default=300,
        help="applications sent to the endpoint per phase (default 300)",
    )
    demo.add_argument(
        "--drift", type=float, default=1.0, help="how far the economy drifts, 0-1+ (default 1.0)"
    )
    demo.add_argument("--instance-count", type=int, default=2, help="local training workers")
    demo.add_argument("--max-trials", type=int, default=4, help="tuning trials per run")
    demo.add_argument("--stage", default="dev", help="stage whose pipeline definition runs")
    _add_assembly_argument(demo)
    demo.add_argument(
        "--break-candidate",
        action="store_true",
        help="corrupt the retrained model's artifact to show the health check "
        "keeping the serving version live",
    )
    _json_flag(demo)
    demo.set_defaults(handler=cmd_demo)
    return parser


def cmd_data_generate(args: argparse.Namespace) -> int:
    from boostline.data.generator import SCHEMA_PATH, generate_to_dir

    progress = Progress(quiet=args.quiet)
    with progress.step(f"generate {args.rows} rows"):
        files = generate_to_dir(
            args.rows, args.out, seed=args.seed, drift=args.drift, shards=args.shards
        )
    print(f"wrote {len(files)} file(s) to {args.out}; schema: {SCHEMA_PATH}")
    return 0


def cmd_pipeline_run(args: argparse.Namespace) -> int:
    from boostline.local.pipeline import resolve_assembly

    config = load_config(args.config)
    if args.schema is not None:
        # The schema reaches the jobs as an asset of the assembly: synthesize with this one.
        config = config.model_copy(update={"dataset_schema": args.schema.resolve()})
    load_schema(config.schema_path())  # report a bad schema before anything runs
    workdir = Workdir.at(args.workdir)
    progress = Progress(quiet=args.quiet)
    assembly = resolve_assembly(config, args.stage, workdir.root, args.assembly, progress)
    # One run at a time per workdir, as the retrain trigger allows one execution at a
    # time on AWS: the champion is read, gated against and registered after under the
    # same lock, so a concurrent run can never register without comparing with a
    # version approved meanwhile.
    with pipeline_lock(workdir, progress):
        return _run_pipeline_locked(args, config, workdir, progress, assembly)


@contextmanager
def pipeline_lock(workdir: Workdir, progress: Progress) -> Iterator[None]:
    from filelock import FileLock, Timeout

    lock = FileLock(str(workdir.root / ".pipeline-run.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        progress.say("another pipeline run holds this workdir; waiting for it to end")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _run_pipeline_locked(
    args: argparse.Namespace,
    config: BoostlineConfig,
    workdir: Workdir,
    progress: Progress,
    assembly: Any,
) -> int:
    from boostline.local.pipeline import (
        champion_model_data_url,
        local_s3,
        new_execution_id,
        run_pipeline,
    )
    from boostline.registry import Registry

    s3 = local_s3(workdir, config, args.stage, assembly)
    execution_id = new_execution_id()
    # What StartPipelineExecution would be given: the data as an S3 prefix of the raw
    # bucket, and the newest approved model as the champion (as the retrain trigger does).
    parameters: dict[str, object] = {
        "InputDataPrefix": _raw_prefix(args.data, workdir, config, args.stage, execution_id),
        "ChampionModelDataUrl": champion_model_data_url(Registry(workdir.root), s3),
    }
    if args.instance_count is not None:
        parameters["TrainingInstanceCount"] = args.instance_count
    if args.processing_instance_count is not None:
        parameters["ProcessingInstanceCount"] = args.processing_instance_count
    run = run_pipeline(
        workdir,
        config,
        stage=args.stage,
        parameters=parameters,
        assembly=assembly,
        execution_id=execution_id,
        max_trials=args.max_trials,
        progress=progress,
    )
    if args.json:
        import json
        from dataclasses import asdict

        print(json.dumps(asdict(run), indent=2, default=str))
        return 0
    print(
        f"run {run.run_id} {run.status.lower()}: model version "
        f"{run.model_package_version} ({run.model_approval_status})"
    )
    print(f"assembly: {run.assembly}")
    for role, counted in run.access_checks.items():
        print(
            f"  {role}: {counted['checked']} accesses checked against its synthesized "
            f"policy, {counted['allowed']} allowed"
        )
    print(f"report: {run.report}")
    return 0


def _raw_prefix(
    data: Path, workdir: Workdir, config: BoostlineConfig, stage: str, execution_id: str
) -> str:
    """The s3:// prefix of --data in the raw bucket; files from elsewhere are copied in."""
    import shutil

    from boostline.local.emulator import ACCOUNT
    from boostline.naming import names_for

    names = names_for(config, stage)
    bucket = names.bucket("raw", ACCOUNT, names.region)
    raw = workdir.bucket("raw")
    data = data.resolve()
    if not data.exists():
        raise ValueError(f"--data {data} does not exist")
    if data.is_relative_to(raw):
        key = data.relative_to(raw).as_posix()
        return f"s3://{bucket}/{key}" + ("/" if data.is_dir() else "")
    key = f"uploads/{execution_id}/"
    target = raw / key
    files = [data] if data.is_file() else sorted(p for p in data.rglob("*.csv") if p.is_file())
    if not files:
        raise ValueError(f"--data {data} holds no CSV files")
    for file in files:
        rel = file.name if data.is_file() else file.relative_to(data).as_posix()
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target / rel)
    return f"s3://{bucket}/{key}"


def cmd_models_list(args: argparse.Namespace) -> int:
    """Every version with what is live; a damaged one is listed with its file and reason."""
    import json

    from boostline.registry import DamagedVersion, Registry, archive_problem

    if args.stage:
        rows = _aws_versions(load_config(args.config), args.stage)
        damaged: list[DamagedVersion] = []
    else:
        registry = Registry(Workdir.at(args.workdir).root)
        packages, damaged = registry.scan()
        rows = []
        live = registry.deployments()["live"]
        failed = {
            d["version"]: d.get("reason", "")
            for d in registry.deployments()["history"]
            if d["outcome"] == "failed"
        }
        for p in packages:
            problem = archive_problem(p.model_tar)
            if problem is not None:
                damaged.append(DamagedVersion(p.version, p.model_tar, problem))
                continue
            meta = p.data.get("CustomerMetadataProperties", {})
            where = [
                f"{e} since {d['since'][:19]}" for e, d in live.items() if d["version"] == p.version
            ]
            rows.append(
                {
                    "version": p.version,
                    "status": p.status,
                    "auc": p.auc,
                    "threshold": p.threshold,
                    "created": p.data["CreationTime"][:19],
                    "trigger": meta.get("trigger_reason", "-"),
                    "live": "; ".join(where)
                    or (
                        f"failed to deploy: {failed[p.version].splitlines()[0][:100]}"
                        if p.version in failed
                        else ""
                    ),
                }
            )
    rows += [
        {"version": d.version, "status": "DAMAGED", "file": str(d.file), "reason": d.reason}
        for d in damaged
    ]
    rows.sort(key=lambda r: r["version"])
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no model versions registered yet")
        return 0
    print(
        f"{'version':>7}  {'status':<22} {'auc':>6}  {'threshold':>9}  {'created':<20} "
        f"{'trigger':<28} live"
    )
    for r in rows:
        if r["status"] == "DAMAGED":
            print(f"{r['version']:>7}  {'DAMAGED':<22} {r['file']}: {r['reason']}")
            continue
        auc = f"{r['auc']:.4f}" if r["auc"] is not None else "-"
        thr = f"{r['threshold']:.3f}" if r["threshold"] is not None else "-"
        print(
            f"{r['version']:>7}  {r['status']:<22} {auc:>6}  {thr:>9}  {r['created']:<20} "
            f"{str(r['trigger'])[:28]:<28} {r['live']}"
        )
    if damaged:
        print(
            f"{len(damaged)} damaged version(s) cannot be served; the others are usable",
            file=sys.stderr,
        )
    return 0


def _aws_versions(config: BoostlineConfig, stage: str) -> list[dict[str, Any]]:
    """The stage's model package group on AWS, with the serving stack's live version."""
    import boto3

    from boostline.local.handlers import LAMBDA_DIR, load_module

    names = names_for(config, stage)
    deploy = load_module(LAMBDA_DIR / "deployer" / "deploy.py")
    session = boto3.Session(region_name=config.stage(stage).region)
    cfn, sagemaker = session.client("cloudformation"), session.client("sagemaker")
    live_arn = deploy.live_model_package_arn(cfn, names.stack("serving"))
    rows = []
    pages = sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=names.model_package_group
    )
    for summary in (s for page in pages for s in page.get("ModelPackageSummaryList", [])):
        arn = summary["ModelPackageArn"]
        rows.append(
            {
                "version": int(summary["ModelPackageVersion"]),
                "status": summary["ModelApprovalStatus"],
                "auc": None,
                "threshold": None,
                "created": str(summary.get("CreationTime", ""))[:19],
                "trigger": "-",
                "live": f"{names.endpoint} (serving stack)" if arn == live_arn else "",
            }
        )
    return rows


def cmd_models_describe(args: argparse.Namespace) -> int:
    import json

    from boostline.registry import Registry

    package = Registry(Workdir.at(args.workdir).root).describe(args.version)
    print(json.dumps(package.data, indent=2, sort_keys=True))
    return 0


def deciding_user() -> str:
    """Who approves when --by is not given: the OS account, however the shell is set up."""
    import getpass

    try:
        return getpass.getuser()  # LOGNAME, USER, LNAME, USERNAME, then the password database
    except (KeyError, OSError):  # a container user with no passwd entry
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown user"


def cmd_models_set_status(args: argparse.Namespace) -> int:
    from boostline.registry import Registry

    registry = Registry(Workdir.at(args.workdir).root)
    by = args.by or deciding_user()
    package = registry.set_status(args.version, args.status, by=by, reason=args.reason)
    print(f"model version {package.version} is now {package.status}")
    return 0


def _model(args: argparse.Namespace) -> tuple[Path, float | None, int]:
    from boostline.local.model_store import unpacked_model
    from boostline.registry import DamagedVersion, DamagedVersionError, Registry, archive_problem

    workdir = Workdir.at(args.workdir)
    package = Registry(workdir.root).describe(args.model)  # a damaged record raises
    problem = archive_problem(package.model_tar)
    if problem is not None:
        raise DamagedVersionError(DamagedVersion(package.version, package.model_tar, problem))
    return unpacked_model(package, workdir.root), package.threshold, package.version


def cmd_serve(args: argparse.Namespace) -> int:
    from boostline.serving.server import serve

    model_dir, threshold, version = _model(args)
    config = load_config(args.config)
    names = names_for(config, args.stage)
    variant = config.stage(args.stage).serving.variant_name
    # The capture bucket's capture/ prefix, as the stage's EndpointConfig writes it.
    capture = Workdir.at(args.workdir).bucket("capture") / "capture" if args.capture else None
    print(
        f"serving model version {version} on http://{args.host}:{args.port} "
        f"(threshold {threshold}); Ctrl-C stops",
        file=sys.stderr,
    )
    serve(
        model_dir,
        port=args.port,
        host=args.host,
        workers=args.workers,
        capture_dir=capture,
        threshold=threshold,
        sampling_percentage=args.sampling_percentage,
        endpoint_name=names.endpoint,
        variant_name=variant,
    )
    return 0


def cmd_monitor_run(args: argparse.Namespace) -> int:
    import json
    from datetime import datetime, timedelta, timezone

    from boostline.local.monitoring_run import live_parameters, run_monitoring
    from boostline.local.pipeline import resolve_assembly
    from boostline.registry import Registry
    from training_scripts.data_quality import parse_utc_time

    config = load_config(args.config)
    workdir = Workdir.at(args.workdir)
    progress = Progress(quiet=args.quiet or args.json)
    package = Registry(workdir.root).describe(args.model)
    # What the deployer would give the monitoring stack for this version.
    live = live_parameters(package, config, args.stage)
    end = parse_utc_time(args.window_end) if args.window_end else datetime.now(timezone.utc)
    start = (
        parse_utc_time(args.window_start)
        if args.window_start
        else end - timedelta(hours=args.hours)
    )
    assembly = resolve_assembly(config, args.stage, workdir.root, args.assembly, progress)
    from boostline.local.access_checks import StageAccess
    from boostline.local.emulator import ACCOUNT

    # Every access the jobs make, checked against their role's synthesized policy.
    with StageAccess(assembly, account=ACCOUNT, region=config.stage(args.stage).region) as access:
        run = run_monitoring(
            workdir,
            config,
            args.stage,
            assembly=assembly,
            live=live,
            window_start=start,
            window_end=end,
            progress=progress,
            access=access,
        )
        checked = access.counts()
    if args.json:
        print(json.dumps(run.as_dict(), indent=2))
    else:
        for check, detail in sorted(run.results.items()):
            print(
                f"{check}: {detail['status']}, {detail['violations']} violation(s), "
                f"{detail['rows']} row(s); report {detail['reportUri']}"
            )
        for name, alarm in sorted(run.alarms.items()):
            value = "no data" if alarm.value is None else f"{alarm.value:g}"
            print(f"alarm {name}: {alarm.state} ({value}; threshold {alarm.threshold:g})")
        for event, rule, _ in run.routes:
            print(f"event {event['detail-type']!r} matched rule {rule}")
        _print_checked(checked)
        if run.failure:
            print(f"error: {run.failure}", file=sys.stderr)
    return 0 if run.status == "Succeeded" else 1


def _print_checked(checked: dict[str, tuple[int, int]]) -> None:
    """Per role: the accesses checked against its synthesized policy, and how many passed."""
    for role, (count, allowed) in checked.items():
        print(f"{role}: {count} accesses checked against its synthesized policy, {allowed} allowed")


# What the workdir keeps for itself: an output there would overwrite the registry,
# a job's files or a record the other commands read.
WORKDIR_INTERNALS = (
    "registry",
    "models",
    "endpoints",
    "jobs",
    "runs",
    "buckets",
    "secrets",
    "checkpoints",
    "logs",
    "monitoring",
    "summary.json",
    ".pipeline-run.lock",
)


def output_problem(workdir: Path, input_file: Path, output_file: Path) -> str | None:
    """Why predict must not write output_file, or None when it may."""
    output = output_file.resolve()
    if output == input_file.resolve() or (
        output.exists() and input_file.exists() and os.path.samefile(output, input_file)
    ):
        return f"--output {output_file} is the input file; choose another output file"
    root = workdir.resolve()
    for name in WORKDIR_INTERNALS:
        internal = root / name
        if output == internal or output.is_relative_to(internal):
            return (
                f"--output {output_file} is inside the workdir's {name} "
                f"({internal}); choose a file outside it"
            )
    if output.is_dir():
        return f"--output {output_file} is a directory; name a file"
    return None


def cmd_predict(args: argparse.Namespace) -> int:
    from boostline.serving.batch import predict_file

    problem = output_problem(Workdir.at(args.workdir).root, args.input, args.output)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    model_dir, threshold, version = _model(args)
    from boostline.serving.scoring import is_raw_csv, score_raw_csv

    schema = load_schema(load_config(args.config).schema_path())
    if args.content_type == "text/csv" and is_raw_csv(args.input, schema):
        # A data owner's file with its header: ids pass through, PII is never sent.
        result = score_raw_csv(model_dir, args.input, args.output, schema, threshold=threshold)
    else:
        result = predict_file(
            model_dir,
            args.input,
            args.output,
            content_type=args.content_type,
            accept=args.accept,
            threshold=threshold,
            explain=args.explain,
        )
    print(
        f"model version {version}: {result.records} record(s) in {result.batches} "
        f"mini-batch(es), {result.seconds:.2f}s -> {args.output}"
    )
    return 0


def cmd_batch_run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    names = names_for(config, args.stage)
    if str(args.input).startswith("s3://"):
        return _batch_on_aws(args, config, names)
    return _batch_here(args, config)


def _batch_prefix_problem(uri: str, names: Any, prefix: str, what: str) -> str | None:
    """Why the batch job's role could not use `uri` (it reads and writes only these)."""
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not (
        bucket.startswith(f"{names.prefix}-raw-")
        and bucket.endswith(f"-{names.region}")
        and (key == prefix or key.startswith(f"{prefix}/"))
    ):
        return (
            f"{what} {uri}: the batch job reads and writes only "
            f"s3://{names.bucket('raw', '<account>', names.region)}/{prefix}/..."
        )
    return None


def _batch_on_aws(args: argparse.Namespace, config: BoostlineConfig, names: Any) -> int:
    import json

    import boto3
    from botocore.exceptions import ClientError

    if args.model != "live":
        print(
            "error: on AWS the batch pipeline scores with the serving stack's live model; "
            "leave out --model",
            file=sys.stderr,
        )
        return 2
    problems = [_batch_prefix_problem(args.input, names, "batch/input", "--input")]
    if args.output:
        problems.append(_batch_prefix_problem(args.output, names, "batch/output", "--output"))
    for problem in (p for p in problems if p):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    pipeline = f"{names.prefix}-batch"
    sagemaker = boto3.Session(region_name=names.region).client("sagemaker")
    parameters = [{"Name": "InputUri", "Value": args.input}]
    if args.output:
        parameters.append({"Name": "OutputUri", "Value": args.output.rstrip("/")})
    try:
        definition = json.loads(
            sagemaker.describe_pipeline(PipelineName=pipeline)["PipelineDefinition"]
        )
        started = sagemaker.start_pipeline_execution(
            PipelineName=pipeline,
            PipelineParameters=parameters,
            PipelineExecutionDescription=f"boostline batch run --input {args.input}"[:3072],
        )
    except ClientError as exc:
        error = exc.response.get("Error", {})
        # AWS says ResourceNotFound; some emulators a ValidationException naming the pipeline.
        missing = error.get("Code") == "ResourceNotFound" or (
            error.get("Code") == "ValidationException"
            and "could not find pipeline" in str(error.get("Message", "")).lower()
        )
        if not missing:
            raise
        print(
            f"error: stage {args.stage} has no pipeline {pipeline}: the serving stack holds it "
            "only while a model is live",
            file=sys.stderr,
        )
        return 1
    arn = started["PipelineExecutionArn"]
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition.get("Parameters", [])}
    output = (args.output or str(defaults.get("OutputUri", ""))).rstrip("/")
    result = {
        "pipeline": pipeline,
        "execution_arn": arn,
        "input_uri": args.input,
        "output_uri": f"{output}/{arn.rsplit('/', 1)[-1]}/",
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"started {arn}")
        print(f"scores: {result['output_uri']} (when the execution succeeds)")
    return 0


def _batch_here(args: argparse.Namespace, config: BoostlineConfig) -> int:
    import json

    from boostline.local.access_checks import StageAccess
    from boostline.local.batch_run import BatchUnavailable, output_conflicts, run_batch
    from boostline.local.emulator import ACCOUNT
    from boostline.local.monitoring_run import live_parameters
    from boostline.local.pipeline import resolve_assembly
    from boostline.registry import Registry
    from training_scripts.batch_score import ScoringError

    source = Path(args.input)
    if args.output is None:
        print("error: --output DIR is needed for a local --input", file=sys.stderr)
        return 2
    output = Path(args.output)
    workdir = Workdir.at(args.workdir)
    problem = None
    if not source.exists():
        problem = f"--input {source} does not exist"
    elif output.exists() and not output.is_dir():
        problem = f"--output {output} is a file; name a folder"
    else:
        root = workdir.root.resolve()
        for name in WORKDIR_INTERNALS:
            if output.resolve().is_relative_to(root / name):
                problem = f"--output {output} is inside the workdir's {name}; choose another"
    conflicts: list[Path] = []
    try:
        conflicts = [] if problem else output_conflicts(source, output)
    except ScoringError as exc:
        problem = str(exc)
    if conflicts:
        problem = f"--output {output} already holds {conflicts[0]}; choose an empty folder"
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    progress = Progress(quiet=args.quiet or args.json)
    package = Registry(workdir.root).describe(args.model)
    live = live_parameters(package, config, args.stage)
    assembly = resolve_assembly(config, args.stage, workdir.root, args.assembly, progress)
    region = config.stage(args.stage).region
    with StageAccess(assembly, account=ACCOUNT, region=region) as access:
        try:
            run = run_batch(
                workdir,
                config,
                args.stage,
                assembly=assembly,
                live=live,
                source=source,
                output_dir=output,
                access=access,
                progress=progress,
            )
        except (BatchUnavailable, ScoringError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        checked = access.counts()
    if args.json:
        print(json.dumps({**run.as_dict(), "model_version": package.version}, indent=2))
    else:
        for path, rows in run.files.items():
            print(f"{path}: {rows} row(s)")
        print(
            f"batch execution {run.execution_id} ({run.status}) with model version "
            f"{package.version}: {sum(run.files.values())} row(s) in {len(run.files)} file(s)"
        )
        _print_checked(checked)
    if run.failure:
        print(f"error: {run.failure}", file=sys.stderr)
    return 0 if run.status == "Succeeded" else 1


def cmd_rollback(args: argparse.Namespace) -> int:
    import boto3

    from boostline.local.handlers import LAMBDA_DIR, load_module

    config = load_config(args.config)
    stage = config.stage(args.stage)
    prefix = f"{config.project}-{args.stage}"
    deploy = load_module(LAMBDA_DIR / "deployer" / "deploy.py")
    session = boto3.Session(region_name=stage.region)
    try:
        result = deploy.rollback_to(
            session.client("cloudformation"),
            session.client("sagemaker"),
            f"{prefix}-serving",
            f"{prefix}-models",
            args.to_version,
            wait=args.wait,
        )
    except deploy.DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{result.stack_name}: {result.status} "
        f"({result.previous_model_package_arn} -> {result.model_package_arn})"
    )
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def cmd_cost(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        return _print_cost(args, config)
    except KeyError as exc:  # an instance type with no price or vCPU count
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2


def _print_cost(args: argparse.Namespace, config: BoostlineConfig) -> int:
    from boostline.cost import estimate

    if args.json:
        import json
        from dataclasses import asdict

        from boostline.cost import idle_lines, run_lines, serving_lines, sized_run_lines

        run = (
            run_lines(config, args.stage)
            if args.rows is None
            else sized_run_lines(config, args.stage, args.rows)
        )
        sections = {
            "idle_per_day": idle_lines(config, args.stage),
            "per_pipeline_run": run,
            "live_model_per_day": serving_lines(config, args.stage),
        }
        out = {
            "stage": args.stage,
            "currency": "USD",
            "runs_per_day": args.runs_per_day,
            "rows": args.rows,
        }
        out.update({k: [asdict(line) for line in v] for k, v in sections.items()})
        print(json.dumps(out, indent=2))
        return 0
    print(estimate(config, args.stage, runs_per_day=args.runs_per_day, rows=args.rows))
    return 0


def cmd_config_init(args: argparse.Namespace) -> int:
    written = write_default_config(args.directory)
    print(f"wrote {written} and its dataset schema beside it")
    print(f"use it with --config {written}, or: export {CONFIG_ENV}={written.resolve()}")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    schema = load_schema(config.schema_path())
    if args.json:
        import json

        checked = {
            "config": str(args.config),
            "stages": list(config.stages),
            "schema": str(schema.source),
            "features": list(schema.feature_names),
            "target": schema.target_column,
            "ok": True,
        }
        print(json.dumps(checked, indent=2))
        return 0
    print(f"{args.config}: ok ({len(config.stages)} stage(s): {', '.join(config.stages)})")
    print(
        f"{schema.source}: ok ({len(schema.feature_names)} features, target "
        f"{schema.target_column!r})"
    )
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM, taken as Ctrl-C: every `finally` runs and stops what the command started."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a CI timeout, `kill`) stops the command as Ctrl-C does.

    The first SIGTERM raises Terminated in the main thread; later ones are noted and
    ignored, so they do not cut the clean-up short. The previous handler comes back
    on exit.
    """
    import signal
    from types import FrameType

    received: list[int] = []

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        if len(received) == 1:
            raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_demo(args: argparse.Namespace) -> int:
    from boostline.local.demo import DemoOptions, print_summary, run_demo

    config = load_config(args.config)
    load_schema(config.schema_path())  # report a bad schema before anything runs
    options = DemoOptions(
        rows=args.rows,
        stream=args.stream,
        drift=args.drift,
        instance_count=args.instance_count,
        max_trials=args.max_trials,
        stage=args.stage,
        break_candidate=args.break_candidate,
        assembly=args.assembly,
    )
    with sigterm_as_interrupt():
        result = run_demo(
            Workdir.at(args.workdir).root,
            config,
            options,
            progress=Progress(quiet=args.quiet or args.json),
        )
    if args.json:
        import json

        from boostline.local.demo import summary_dict

        print(json.dumps(summary_dict(result), indent=2, default=str))
    else:
        print_summary(result)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = _defaults(parser.parse_args(argv))
    try:
        return args.handler(args)
    except (ConfigError, SchemaError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Terminated) else 2  # SIGINT
        name = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"{name}; every process this command started has been stopped", file=sys.stderr)
        return 128 + signum
    except Exception as exc:  # noqa: BLE001 - a clear line, not a traceback, for users
        from boostline.checkout import CheckoutRequired
        from boostline.local.iam import EvaluatorUnavailable
        from boostline.local.monitoring_run import MonitoringUnavailable
        from boostline.local.pipeline import PipelineFailed
        from boostline.registry import RegistryError
        from boostline.serving.batch import BatchError

        if isinstance(exc, RegistryError | EvaluatorUnavailable | CheckoutRequired):
            # Each says what to install or where to run it.
            print(f"error: {exc}", file=sys.stderr)
            return 2
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, BotoCoreError | ClientError) and not os.environ.get("BOOSTLINE_DEBUG"):
            # No credentials, no network, AccessDenied: AWS's own words, no traceback.
            print(f"error: AWS: {exc}", file=sys.stderr)
            return 1
        if isinstance(
            exc, PipelineFailed | BatchError | MonitoringUnavailable | ValueError | OSError
        ) and not os.environ.get("BOOSTLINE_DEBUG"):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
