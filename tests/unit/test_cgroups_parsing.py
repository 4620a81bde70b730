"""The parts of helpers.serving.local.cgroups / cgroup_exporter that need no privileges: layout
detection, the unlimited marker, argument parsing, the /proc fallback. They run everywhere."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from helpers.serving.local import cgroup_removal, cgroup_stats, cgroups
from helpers.serving.local import exporter as cgroup_exporter


def mounts(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "mounts"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_v1_with_separate_cpu_and_cpuacct_mounts_is_detected(tmp_path: Path) -> None:
    unified = tmp_path / "unified"
    unified.mkdir()
    (unified / "cgroup.controllers").write_text("\n")  # hybrid: v2 mounted, no controllers
    layout = cgroups.detect_layout(
        mounts(
            tmp_path,
            [
                "cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0",
                "cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0",
                "cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0",
                f"cgroup2 {unified} cgroup2 rw,relatime 0 0",
            ],
        )
    )
    assert layout is not None and layout.version == "v1"
    assert layout.roots["cpuacct"] == Path("/sys/fs/cgroup/cpuacct")
    assert layout.dirs("onnx-study/r/s")["memory"] == Path("/sys/fs/cgroup/memory/onnx-study/r/s")


def test_comounted_cpu_cpuacct_share_one_directory(tmp_path: Path) -> None:
    layout = cgroups.detect_layout(
        mounts(
            tmp_path,
            [
                "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0",
                "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0",
            ],
        )
    )
    assert layout is not None
    assert layout.roots["cpu"] == layout.roots["cpuacct"] == Path("/sys/fs/cgroup/cpu,cpuacct")


def test_v2_with_cpu_and_memory_controllers_wins(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    layout = cgroups.detect_layout(mounts(tmp_path, [f"cgroup2 {tmp_path} cgroup2 rw 0 0"]))
    assert layout == cgroups.Layout("v2", {"unified": tmp_path})


def test_no_usable_hierarchy_is_none(tmp_path: Path) -> None:
    assert cgroups.detect_layout(mounts(tmp_path, ["proc /proc proc rw 0 0"])) is None


def test_unwritable_hierarchy_gives_the_unlimited_marker_with_a_reason(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    layout = cgroups.Layout("v1", {c: not_a_dir for c in cgroups.V1_CONTROLLERS})
    group = cgroups.create_cgroup("run-1", "svc", layout=layout)
    assert not group.enforced
    assert "cannot write cgroup" in group.reason
    assert cgroup_stats.read_limits(group).cpu_cores is None
    cgroups.join_before_exec(group)()  # a no-op, not an error
    cgroup_removal.remove_cgroup(group)


@pytest.mark.parametrize(
    ("run_id", "name", "kwargs"),
    [
        ("../escape", "svc", {}),
        ("run", "a/b", {}),
        ("run", "svc", {"cpu_cores": 0}),
        ("run", "svc", {"memory_bytes": 1024}),
    ],
)
def test_bad_arguments_are_rejected(run_id: str, name: str, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        cgroups.create_cgroup(run_id, name, **kwargs)  # type: ignore[arg-type]


def test_exporter_arguments_from_pairs_and_json(tmp_path: Path) -> None:
    config = tmp_path / "groups.json"
    config.write_text(json.dumps({"a": "onnx-study/r/a"}))
    mapping = cgroup_exporter.parse_cgroup_args(["b=onnx-study/r/b"], config)
    assert mapping == {"a": "onnx-study/r/a", "b": "onnx-study/r/b"}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        cgroup_exporter.parse_cgroup_args(["no-equals-sign"], None)


def test_exporter_without_anything_to_export_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cgroup_exporter.main(["--port", "1"]) == 2
    assert "nothing to export" in capsys.readouterr().err


def test_process_fallback_publishes_cpu_and_memory_of_a_pid() -> None:
    text = generate_latest(cgroup_exporter.build_registry([], {"me": os.getpid()})).decode()
    assert 'container_cpu_usage_seconds_total{name="me"}' in text
    assert 'container_memory_working_set_bytes{name="me"}' in text
    assert 'container_spec_memory_limit_bytes{name="me"}' not in text  # no limit, no spec


def test_gone_pid_is_skipped_not_an_error() -> None:
    text = generate_latest(cgroup_exporter.build_registry([], {"gone": 2**22 + 1})).decode()
    assert 'name="gone"' not in text
