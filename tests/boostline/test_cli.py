"""The command line: help everywhere, clear errors before anything runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from boostline.cli import build_parser, main
from boostline.config import CONFIG_ENV, DEFAULT_CONFIG, load_config


def _leaf_commands() -> list[list[str]]:
    parser = build_parser()
    out = []
    for group, sub in parser._subparsers._group_actions[0].choices.items():  # noqa: SLF001
        inner = [a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction"]
        if inner:
            out.extend([group, name] for name in inner[0].choices)
        else:
            out.append([group])
    return out


@pytest.mark.parametrize("command", _leaf_commands(), ids=" ".join)
def test_every_command_has_help_and_a_workdir(command: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    assert "--workdir" in capsys.readouterr().out


def test_python_dash_m_works() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "boostline", "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and "pipeline" in proc.stdout


def test_bad_config_is_reported_with_file_key_and_reason(tmp_path: Path, capsys) -> None:
    text = DEFAULT_CONFIG.read_text().replace("max_parallel_jobs: 2", "max_parallel_jobs: 0")
    assert "dataset_schema: loan_schema.yaml\n" in text
    text = text.replace(
        "dataset_schema: loan_schema.yaml\n",
        f"dataset_schema: {load_config().schema_path()}\n",
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert main(["config", "check", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: tuning.max_parallel_jobs:" in err and "greater than or equal to 1" in err


def test_bad_schema_stops_the_pipeline_before_it_runs(tmp_path: Path, capsys) -> None:
    schema = tmp_path / "schema.yaml"
    schema.write_text("target: {column: y}\nfeatures: {numerical: [a]}\n")
    data = tmp_path / "data.csv"
    data.write_text("a,y\n1,0\n")
    code = main(
        [
            "pipeline",
            "run",
            "--data",
            str(data),
            "--schema",
            str(schema),
            "--workdir",
            str(tmp_path / "wd"),
        ]
    )
    assert code == 2
    assert f"{schema}: target.positive_value: is required" in capsys.readouterr().err
    assert not (tmp_path / "wd" / "runs").exists() or not any((tmp_path / "wd" / "runs").iterdir())


def test_models_commands_on_an_empty_registry(tmp_path: Path, capsys) -> None:
    assert main(["models", "list", "--workdir", str(tmp_path)]) == 0
    assert "no model versions" in capsys.readouterr().out
    assert main(["models", "approve", "3", "--workdir", str(tmp_path)]) == 2
    assert "no version 3" in capsys.readouterr().err


def test_cost_prints_an_estimate(capsys) -> None:
    assert main(["cost", "--stage", "prod"]) == 0
    assert "USD" in capsys.readouterr().out


# --------------------------------------------------------------------------- damaged registry


@pytest.fixture(scope="module")
def damaged_registry(tmp_path_factory, make_loan_book) -> dict:
    """Versions 1 and 5 usable; 2: model.tar.gz not gzip; 3: package.json without a key;
    4: package.json cut short."""
    import json
    import tarfile

    from boostline.registry import Registry

    root = tmp_path_factory.mktemp("damaged")
    book = make_loan_book(root / "book", rows=600, seed=3)
    model_dir = book.model_dir("model")
    tar_path = root / "model.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for item in sorted(model_dir.rglob("*")):
            tar.add(item, arcname=str(item.relative_to(model_dir)), recursive=False)
    evaluation = root / "evaluation.json"
    evaluation.write_text(json.dumps({"decision_threshold": 0.4}))
    workdir = root / "work"
    registry = Registry(workdir)
    for _ in range(5):
        registry.register(
            model_tar=tar_path,
            evaluation=evaluation,
            baseline_dir=None,
            report_dir=None,
            status="Approved",
            approved_by="test",
            metadata={},
        )
    (registry.dir / "2" / "model.tar.gz").write_bytes(b"this is not gzip\n")
    record = json.loads((registry.dir / "3" / "package.json").read_text())
    del record["ModelPackageGroupName"]
    (registry.dir / "3" / "package.json").write_text(json.dumps(record))
    truncated = registry.dir / "4" / "package.json"
    truncated.write_bytes(truncated.read_bytes()[:300])
    rows = root / "rows.csv"
    rows.write_text("\n".join(line.split(",", 1)[1] for line in book.test_lines()[:20]) + "\n")
    return {"workdir": workdir, "dir": registry.dir, "rows": rows}


DAMAGE = {
    2: ("model.tar.gz", "not a gzip"),
    3: ("package.json", "lacks ModelPackageGroupName"),
    4: ("package.json", "truncated"),
}


def test_models_list_sets_damaged_versions_apart(damaged_registry, capsys) -> None:
    assert main(["models", "list", "--workdir", str(damaged_registry["workdir"])]) == 0
    captured = capsys.readouterr()
    lines = {int(line.split()[0]): line for line in captured.out.splitlines()[1:]}
    assert sorted(lines) == [1, 2, 3, 4, 5]
    for version in (1, 5):
        assert "Approved" in lines[version] and "0.400" in lines[version]
    for version, (name, reason) in DAMAGE.items():
        line = lines[version]
        assert "DAMAGED" in line and reason in line, line
        assert str(damaged_registry["dir"] / str(version) / name) in line
    assert "3 damaged version(s)" in captured.err


def test_predict_and_serve_on_a_damaged_version_say_why(damaged_registry, capsys) -> None:
    workdir = str(damaged_registry["workdir"])
    out = damaged_registry["rows"].parent / "out.csv"
    for version, (name, reason) in DAMAGE.items():
        common = ["--workdir", workdir, "--model", str(version)]
        predict = ["predict", *common, "--input", str(damaged_registry["rows"]), "--output"]
        for argv in ([*predict, str(out)], ["serve", *common, "--port", "1"]):
            assert main(argv) == 2, argv
            err = capsys.readouterr().err
            assert f"model version {version} is damaged" in err and reason in err, err
            assert str(damaged_registry["dir"] / str(version) / name) in err
            assert "Traceback" not in err
    assert not out.exists()


def test_predict_on_the_usable_versions_works(damaged_registry, capsys) -> None:
    workdir = str(damaged_registry["workdir"])
    for version in ("1", "5", "latest-approved"):
        out = damaged_registry["rows"].parent / f"out-{version}.csv"
        argv = ["predict", "--workdir", workdir, "--model", version]
        argv += ["--input", str(damaged_registry["rows"]), "--output", str(out)]
        assert main(argv) == 0, capsys.readouterr().err
        assert len(out.read_text().splitlines()) == 20
        assert f"model version {version if version != 'latest-approved' else 5}:" in (
            capsys.readouterr().out
        )


def test_serve_on_a_usable_version_answers(damaged_registry) -> None:
    import signal
    import time
    import urllib.request

    from boostline.serving.server import free_port

    port = free_port()
    argv = [sys.executable, "-m", "boostline", "serve", "--model", "1", "--workers", "1"]
    argv += ["--workdir", str(damaged_registry["workdir"]), "--port", str(port)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, status = time.monotonic() + 60, None
        while time.monotonic() < deadline and process.poll() is None and status is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as r:
                    status = r.status
            except OSError:
                time.sleep(0.1)
        assert status == 200, process.stderr.read1().decode() if process.poll() else "no ping"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stderr.close()


def test_predict_refuses_outputs_in_the_registry_workdir_and_over_its_input(
    damaged_registry, capsys
) -> None:
    workdir = damaged_registry["workdir"]
    rows = damaged_registry["rows"]
    package = damaged_registry["dir"] / "1" / "package.json"
    link = rows.parent / "innocent.csv"
    link.unlink(missing_ok=True)
    link.symlink_to(package)
    targets = [
        package,
        damaged_registry["dir"] / "1" / "new.csv",
        link,
        workdir / "models" / "out.csv",
        workdir / "runs" / "out.csv",
        workdir / "secrets" / "pii-salt",
        rows,
        rows.parent / "." / rows.name,
    ]
    before = {path: path.read_bytes() for path in (package, rows)}
    for target in targets:
        argv = ["predict", "--workdir", str(workdir), "--model", "1"]
        argv += ["--input", str(rows), "--output", str(target)]
        assert main(argv) == 2, target
        err = capsys.readouterr().err
        assert err.startswith("error: --output ") and err.count("\n") == 1, err
        assert "Traceback" not in err
    assert {path: path.read_bytes() for path in (package, rows)} == before
    assert not (damaged_registry["dir"] / "1" / "new.csv").exists()
    assert main(["models", "list", "--workdir", str(workdir)]) == 0
    assert "Approved" in capsys.readouterr().out


# ---------------------------------------------------------------- scripting


def test_global_options_work_before_the_command_and_the_env_names_the_workdir(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    from boostline.cli import _defaults

    parser = build_parser()
    before = _defaults(parser.parse_args(["--workdir", str(tmp_path), "models", "list"]))
    after = _defaults(parser.parse_args(["models", "list", "--workdir", str(tmp_path)]))
    assert before.workdir == after.workdir == tmp_path
    monkeypatch.setenv("BOOSTLINE_WORKDIR", str(tmp_path / "env"))
    assert _defaults(parser.parse_args(["models", "list"])).workdir == tmp_path / "env"
    assert _defaults(parser.parse_args(["models", "list"])).config == DEFAULT_CONFIG


def test_config_init_then_boostline_config_picks_the_copy(tmp_path: Path, monkeypatch, capsys):
    assert main(["config", "init", str(tmp_path / "mine")]) == 0
    written = tmp_path / "mine" / "boostline.yaml"
    assert f"wrote {written}" in capsys.readouterr().out
    written.write_text(written.read_text().replace("project: boostline", "project: lender"))
    monkeypatch.setenv(CONFIG_ENV, str(written))
    assert main(["config", "check", "--json"]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert checked["config"] == str(written)
    assert checked["schema"] == str((tmp_path / "mine" / "loan_schema.yaml").resolve())
    # A second init would overwrite the edited copy: refused, exit 2, the copy kept.
    assert main(["config", "init", str(tmp_path / "mine")]) == 2
    assert "already exists, not overwritten" in capsys.readouterr().err
    assert "project: lender" in written.read_text()


def test_a_command_that_needs_the_checkout_exits_2_without_a_traceback(monkeypatch, capsys):
    from boostline import checkout

    def missing(what, parts, hint="", root=None):
        raise checkout.CheckoutRequired(f"{what} needs the Boostline repository's stacks")

    monkeypatch.setattr(checkout, "require", missing)
    assert main(["pipeline", "run", "--data", str(DEFAULT_CONFIG)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: synthesizing stage dev needs the Boostline repository's stacks")
    assert "Traceback" not in err


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("boostline ")


def test_json_outputs_parse(tmp_path: Path, capsys) -> None:
    import json

    assert main(["--workdir", str(tmp_path), "models", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["cost", "--stage", "prod", "--json"]) == 0
    cost = json.loads(capsys.readouterr().out)
    assert {"idle_per_day", "per_pipeline_run", "live_model_per_day"} <= set(cost)
    assert any(line["item"] == "Monitoring" for line in cost["live_model_per_day"])
    assert main(["config", "check", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_aws_commands_without_credentials_say_so_without_a_traceback(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for argv in (["rollback", "--stage", "dev", "--to", "1"], ["models", "list", "--stage", "dev"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: AWS:") and "credentials" in err
        assert "Traceback" not in err


def test_models_list_on_aws_marks_the_serving_stacks_version_live(monkeypatch, capsys) -> None:
    import json

    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        sm = boto3.client("sagemaker", region_name="eu-west-1")
        sm.create_model_package_group(ModelPackageGroupName="boostline-dev-models")
        arns = [
            sm.create_model_package(
                ModelPackageGroupName="boostline-dev-models", ModelApprovalStatus="Approved"
            )["ModelPackageArn"]
            for _ in range(2)
        ]
        boto3.client("cloudformation", region_name="eu-west-1").create_stack(
            StackName="boostline-dev-serving",
            TemplateBody=json.dumps(
                {
                    "Parameters": {"ModelPackageArn": {"Type": "String"}},
                    "Resources": {
                        "R": {
                            "Type": "AWS::SSM::Parameter",
                            "Properties": {
                                "Name": "/test/live",
                                "Type": "String",
                                "Value": {"Ref": "ModelPackageArn"},
                            },
                        }
                    },
                }
            ),
            Parameters=[{"ParameterKey": "ModelPackageArn", "ParameterValue": arns[0]}],
        )
        assert main(["models", "list", "--stage", "dev", "--json"]) == 0
    rows = {r["version"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[1]["live"].startswith("boostline-dev-endpoint") and rows[2]["live"] == ""


def test_approvals_name_the_os_user_when_by_is_not_given(monkeypatch) -> None:
    from boostline.cli import deciding_user

    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOGNAME", "risk-analyst")
    assert deciding_user() == "risk-analyst"
    monkeypatch.delenv("LOGNAME")
    # No variable set: the password database's name for this uid, or the uid itself.
    assert deciding_user()


# ---------------------------------------------------------------- boostline batch run


@pytest.fixture(scope="module")
def batch_workdir(tmp_path_factory, make_loan_book) -> dict:
    """A registry whose live version's model sits in the local artifacts bucket, as the
    pipeline registers it, and a data owner's files (header, ids, PII columns)."""
    import tarfile

    from boostline.data.generator import generate_to_dir
    from boostline.local.emulator import ACCOUNT
    from boostline.local.workdir import Workdir
    from boostline.registry import Registry

    root = tmp_path_factory.mktemp("batch")
    model_dir = make_loan_book(root / "book", rows=600, seed=7).model_dir("model")
    workdir = Workdir.at(root / "work")
    key = "models/pipelines-test-Train/output/model.tar.gz"
    tar_path = workdir.bucket("artifacts") / key
    tar_path.parent.mkdir(parents=True)
    with tarfile.open(tar_path, "w:gz") as tar:
        for item in sorted(model_dir.rglob("*")):
            tar.add(item, arcname=str(item.relative_to(model_dir)), recursive=False)
    bucket = f"boostline-dev-artifacts-{ACCOUNT}-eu-west-1"
    Registry(workdir.root).register_request(
        {
            "ModelPackageGroupName": "boostline-dev-models",
            "ModelApprovalStatus": "Approved",
            "InferenceSpecification": {
                "Containers": [{"Image": "xgboost", "ModelDataUrl": f"s3://{bucket}/{key}"}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            "CustomerMetadataProperties": {"decision_threshold": "0.3"},
        },
        {"model.tar.gz": tar_path},
        by="test",
    )
    inputs = root / "inputs"
    generate_to_dir(40, inputs, seed=11, shards=2)
    return {"workdir": workdir.root, "inputs": inputs, "root": root}


@pytest.mark.slow
def test_batch_run_here_executes_the_serving_stacks_pipeline(
    batch_workdir, dev_assembly, tmp_path: Path, capsys
) -> None:
    import csv
    import io
    import json

    from training_scripts.dataset_schema import load_schema

    schema = load_schema(Path("boostline/data/loan_schema.yaml"))
    out = tmp_path / "scores"
    base = ["--workdir", str(batch_workdir["workdir"]), "batch", "run"]
    argv = [*base, "--input", str(batch_workdir["inputs"]), "--output", str(out)]
    assert main([*argv, "--assembly", str(dev_assembly.dir), "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["status"] == "Succeeded" and run["pipeline"] == "boostline-dev-batch"
    assert run["output_uri"].endswith(f"/batch/output/{run['execution_id']}/")
    for source in sorted(batch_workdir["inputs"].glob("*.csv")):
        raw = list(csv.DictReader(io.StringIO(source.read_text())))
        rows = list(csv.DictReader(io.StringIO((out / source.name).read_text())))
        assert list(rows[0]) == [schema.id_column, "probability", "decision"]
        assert [r[schema.id_column] for r in rows] == [r[schema.id_column] for r in raw]
        # The live version's threshold, through the serving stack's DecisionThreshold.
        assert all((r["decision"] == "reject") == (float(r["probability"]) >= 0.3) for r in rows)
    assert run["rows"] == 40
    # A second run never overwrites the first's scores.
    assert main([*argv, "--assembly", str(dev_assembly.dir)]) == 2
    assert "already holds" in capsys.readouterr().err


@pytest.mark.slow
def test_batch_run_here_names_a_bad_line_without_its_value(
    batch_workdir, dev_assembly, tmp_path: Path, capsys
) -> None:
    lines = next(batch_workdir["inputs"].glob("*.csv")).read_text().splitlines()
    header = lines[0].split(",")
    values = lines[3].split(",")
    values[header.index("fico_score")] = "n0t-a-sc0re"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([*lines[:3], ",".join(values), *lines[4:]]) + "\n")
    argv = ["--workdir", str(batch_workdir["workdir"]), "batch", "run", "--input", str(bad)]
    out = tmp_path / "scores"
    assert main([*argv, "--output", str(out), "--assembly", str(dev_assembly.dir)]) == 1
    err = capsys.readouterr().err
    assert "bad.csv:4: field 'fico_score': the value is not a number" in err
    assert "n0t-a-sc0re" not in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_batch_run_refuses_bad_arguments_before_anything_runs(tmp_path: Path, capsys) -> None:
    base = ["--workdir", str(tmp_path / "work"), "batch", "run"]
    assert main([*base, "--input", str(tmp_path / "missing.csv"), "--output", "o"]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "in").mkdir()
    assert main([*base, "--input", str(tmp_path / "in"), "--output", str(tmp_path / "o")]) == 2
    assert "no CSV files" in capsys.readouterr().err
    assert main([*base, "--input", str(tmp_path / "in")]) == 2
    assert "--output DIR" in capsys.readouterr().err
    outside = "s3://boostline-dev-raw-123456789012-eu-west-1/raw/2026/"
    assert main([*base, "--input", outside]) == 2
    assert "reads and writes only" in capsys.readouterr().err
    inside = "s3://boostline-dev-raw-123456789012-eu-west-1/batch/input/x/"
    assert main([*base, "--input", inside, "--model", "3"]) == 2
    assert "live model" in capsys.readouterr().err


def test_batch_run_on_aws_starts_the_pipeline_and_says_where_scores_land(
    monkeypatch, capsys
) -> None:
    import json

    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    bucket = "boostline-prod-raw-123456789012-eu-west-1"
    source = f"s3://{bucket}/batch/input/2026-12/"
    argv = ["batch", "run", "--stage", "prod", "--input", source, "--json"]
    with mock_aws():
        sm = boto3.client("sagemaker", region_name="eu-west-1")
        assert main(argv) == 1  # no model live: the serving stack holds no batch pipeline
        assert "only while a model is live" in capsys.readouterr().err
        definition = {
            "Version": "2020-12-01",
            "Parameters": [
                {
                    "Name": "InputUri",
                    "Type": "String",
                    "DefaultValue": f"s3://{bucket}/batch/input/",
                },
                {
                    "Name": "OutputUri",
                    "Type": "String",
                    "DefaultValue": f"s3://{bucket}/batch/output",
                },
            ],
            "Steps": [],
        }
        sm.create_pipeline(
            PipelineName="boostline-prod-batch",
            PipelineDefinition=json.dumps(definition),
            RoleArn="arn:aws:iam::123456789012:role/boostline-prod-batch-pipeline",
        )
        assert main(argv) == 0
        started = json.loads(capsys.readouterr().out)
        executions = sm.list_pipeline_executions(PipelineName="boostline-prod-batch")
        (execution,) = executions["PipelineExecutionSummaries"]
        assert started["execution_arn"] == execution["PipelineExecutionArn"]
        given = sm.list_pipeline_parameters_for_execution(
            PipelineExecutionArn=started["execution_arn"]
        )["PipelineParameters"]
    assert {p["Name"]: p["Value"] for p in given} == {"InputUri": source}
    execution_id = started["execution_arn"].rsplit("/", 1)[-1]
    assert started["output_uri"] == f"s3://{bucket}/batch/output/{execution_id}/"


@pytest.mark.slow
def test_batch_run_here_checks_the_scripts_own_calls_against_the_job_role(
    batch_workdir, dev_assembly, tmp_path: Path
) -> None:
    """A package outside the stage's group: DescribeModelPackage is denied, nothing is copied."""
    from boostline.config import load_config
    from boostline.local.access_checks import StageAccess
    from boostline.local.batch_run import run_batch
    from boostline.local.emulator import ACCOUNT
    from boostline.local.workdir import Workdir
    from boostline.progress import Progress

    other = f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:model-package/someone-elses-models/1"
    out = tmp_path / "scores"
    with StageAccess(dev_assembly, account=ACCOUNT, region="eu-west-1") as access:
        run = run_batch(
            Workdir.at(batch_workdir["workdir"]),
            load_config(),
            "dev",
            assembly=dev_assembly,
            live={"ModelPackageArn": other, "DecisionThreshold": "0.5"},
            source=batch_workdir["inputs"],
            output_dir=out,
            access=access,
            progress=Progress(quiet=True),
        )
    assert run.status == "Failed"
    assert "boostline-dev-batch-job" in run.failure
    assert "sagemaker:DescribeModelPackage" in run.failure
    assert not out.exists() and run.files == {}


@pytest.mark.slow
def test_pipeline_run_sets_the_processing_and_training_instance_counts(
    tmp_path: Path, light, capsys
) -> None:
    import json

    from boostline.data.generator import generate_to_dir

    book = tmp_path / "book"
    generate_to_dir(6000, book, seed=0, shards=3)
    arguments = ["pipeline", "run", "--data", str(book), "--assembly", str(light.assembly.dir)]
    arguments += ["--config", str(light.file), "--max-trials", "2", "--json", "--quiet"]
    counts = ["--processing-instance-count", "3", "--instance-count", "1"]
    assert main([*arguments, *counts, "--workdir", str(tmp_path / "three")]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["status"] == "Succeeded"
    assert run["parameters"]["ProcessingInstanceCount"] == 3
    assert run["parameters"]["TrainingInstanceCount"] == 1
    for step in ("PreprocessFit", "Preprocess"):
        assert run["steps"][step]["instance_count"] == 3, step
    # without the option: the config's preprocess.instance_count (no champion to beat)
    assert main([*arguments, "--workdir", str(tmp_path / "default")]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["parameters"]["ProcessingInstanceCount"] == load_config().preprocess.instance_count
    assert run["steps"]["Preprocess"]["instance_count"] == 1
