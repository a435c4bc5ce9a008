"""preprocess_stats.py: partial statistics, their merge, and the host list."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from training_scripts import preprocess_stats as stats


def _partial(host: str, files: list[str], **kw) -> stats.Partial:
    partial = stats.Partial(host=host, settings={"schema": "s", "test_fraction": 0.15})
    partial.files = files
    partial.columns = ["a", "b"]
    for key, value in kw.items():
        setattr(partial, key, value)
    return partial


def test_counts_add_and_numbers_merge_exactly() -> None:
    one = stats.NumericStats()
    one.add([0.1] * 10, 0.1, 0.1, missing=2)
    two = stats.NumericStats()
    two.add([0.2, 5.0], 0.2, 5.0, missing=0)
    a = _partial(
        "algo-1",
        ["/in/a.csv"],
        rows_read=12,
        rows_rejected=1,
        rejection_reasons=Counter({"x: missing": 1}),
        categories={"c": Counter({"u": 3, "v": 1})},
        numerical={"n": one},
    )
    b = _partial(
        "algo-2",
        ["/in/b.csv"],
        rows_read=2,
        rejection_reasons=Counter({"x: missing": 1, "y: missing": 1}),
        categories={"c": Counter({"v": 2})},
        numerical={"n": two},
    )
    merged = stats.merge([b, a])
    assert merged.hosts == ["algo-1", "algo-2"]
    assert merged.rows_read == 14 and merged.rows_rejected == 1
    assert merged.rejection_reasons == {"x: missing": 2, "y: missing": 1}
    assert merged.categories["c"] == Counter({"u": 3, "v": 3})
    n = merged.numerical["n"]
    assert (n.count, n.missing, n.minimum, n.maximum) == (12, 2, 0.1, 5.0)
    assert n.total == 6.2  # fsum: 10 x 0.1 is exactly 1.0 here, not 0.9999999999999999


def test_partials_round_trip_through_their_files(tmp_path: Path) -> None:
    numbers = stats.NumericStats()
    numbers.add([1.0, 2.5], 1.0, 2.5, missing=1)
    partial = _partial(
        "algo-2", ["/x/a.csv"], categories={"c": Counter({"u": 2})}, numerical={"n": numbers}
    )
    path = stats.write_partial(tmp_path, partial)
    assert path.name == "fit-algo-2.json"
    (back,) = stats.read_partials(tmp_path)
    assert back == partial


def test_partials_keep_each_files_size_and_digest_per_host(tmp_path: Path) -> None:
    a = _partial("algo-1", ["a.csv"], inputs=[stats.InputFile("a.csv", 10, "blake2b:00")])
    b = _partial("algo-2", ["b.csv"], inputs=[stats.InputFile("b.csv", 7, "blake2b:11")])
    stats.write_partial(tmp_path, a)
    stats.write_partial(tmp_path, b)
    data = json.loads((tmp_path / "fit-algo-1.json").read_text())
    assert data["inputs"] == [{"key": "a.csv", "bytes": 10, "digest": "blake2b:00"}]
    merged = stats.merge(stats.read_partials(tmp_path))
    assert merged.partial("algo-2").inputs == b.inputs
    assert merged.file_hosts == {"a.csv": "algo-1", "b.csv": "algo-2"}
    data["inputs"][0]["key"] = "other.csv"  # records that do not describe `files`
    (tmp_path / "fit-algo-1.json").write_text(json.dumps(data))
    with pytest.raises(stats.StatsError, match="inputs do not match files"):
        stats.read_partials(tmp_path)
    data["inputs"][0].update(key="a.csv", bytes=-1)
    (tmp_path / "fit-algo-1.json").write_text(json.dumps(data))
    with pytest.raises(stats.StatsError, match="malformed fit partial"):
        stats.read_partials(tmp_path)


def test_a_malformed_or_foreign_partial_is_refused(tmp_path: Path) -> None:
    (tmp_path / "fit-algo-1.json").write_text('{"format": "other"}')
    with pytest.raises(stats.StatsError, match="not a fit partial"):
        stats.read_partials(tmp_path)
    (tmp_path / "fit-algo-1.json").write_text(json.dumps({"format": stats.PARTIAL_FORMAT}))
    with pytest.raises(stats.StatsError, match="malformed fit partial"):
        stats.read_partials(tmp_path)
    (tmp_path / "fit-algo-1.json").write_text("{")
    with pytest.raises(stats.StatsError, match="cannot be read as JSON"):
        stats.read_partials(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(stats.StatsError, match="run --pass fit first"):
        stats.read_partials(tmp_path / "empty")
    with pytest.raises(stats.StatsError, match="does not exist"):
        stats.read_partials(tmp_path / "absent")


def test_partials_that_disagree_do_not_merge() -> None:
    a = _partial("algo-1", ["a.csv", "2024/b.csv"])
    stats.merge([a, _partial("algo-2", ["b.csv", "2025/b.csv"])])  # keys, not names
    with pytest.raises(stats.StatsError, match="read by both algo-1 and algo-2"):
        stats.merge([a, _partial("algo-2", ["2024/b.csv"])])
    other = _partial("algo-2", ["b.csv"])
    other.settings = {"schema": "s", "test_fraction": 0.2}
    with pytest.raises(stats.StatsError, match="different settings"):
        stats.merge([a, other])
    columns = _partial("algo-2", ["b.csv"], columns=["a"])
    with pytest.raises(stats.StatsError, match="other columns"):
        stats.merge([a, columns])
    with pytest.raises(stats.StatsError, match="same host"):
        stats.merge([a, _partial("algo-1", ["c.csv"])])


def test_hosts_come_from_the_environment_then_the_resource_config(tmp_path: Path) -> None:
    missing = tmp_path / "none.json"
    env = {"SM_HOSTS": '["algo-2", "algo-1"]', "SM_CURRENT_HOST": "algo-2"}
    assert stats.job_hosts(env, missing) == (["algo-1", "algo-2"], "algo-2")
    assert stats.job_hosts({}, missing) == (["algo-1"], "algo-1")
    config = tmp_path / "resourceconfig.json"
    config.write_text(json.dumps({"current_host": "algo-3", "hosts": ["algo-3", "algo-1"]}))
    assert stats.job_hosts({}, config) == (["algo-1", "algo-3"], "algo-3")
    assert stats.job_hosts({stats.RESOURCE_CONFIG_ENV: str(config)}) == (
        ["algo-1", "algo-3"],
        "algo-3",
    )
    with pytest.raises(stats.StatsError, match="not in the host list"):
        stats.job_hosts({"SM_HOSTS": '["algo-1"]', "SM_CURRENT_HOST": "algo-9"}, missing)
    with pytest.raises(stats.StatsError, match="a host is named twice"):
        stats.job_hosts({"SM_HOSTS": '["algo-1", "algo-1"]'}, missing)
    config.write_text("{}")
    with pytest.raises(stats.StatsError, match="unreadable"):
        stats.job_hosts({}, config)
