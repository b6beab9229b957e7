"""The local model registry: round trips, integrity checks, path confinement, champion pointer and numbering."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from pm_assets.core.registry import ARTIFACT, CARD, CHAMPION, GATE, LIBRARIES, LocalRegistry, RegistryError

CARD_FIELDS = {
    "trained_on": "2015-01-01/2015-03-19",
    "metrics": {"average_precision": 0.91, "rows": 1234},
    "horizon_hours": 24,
    "features": ["volt_mean_3h", "age"],
}


@pytest.fixture(scope="module")
def model() -> LogisticRegression:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=200) > 0).astype(int)
    return LogisticRegression().fit(x, y)


@pytest.fixture(scope="module")
def probe() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(50, 3))


@pytest.fixture
def registry(tmp_path) -> LocalRegistry:
    return LocalRegistry(tmp_path / "registry")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tmp_leftovers(root: Path) -> list[str]:
    found = []
    for folder, _, files in os.walk(root):
        found += [os.path.join(folder, f) for f in files if f.endswith(".tmp")]
    return found


def _rewrite_card(registry: LocalRegistry, version: str, **changes) -> None:
    path = registry.root / version / CARD
    card = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            card.pop(key, None)
        else:
            card[key] = value
    path.write_text(json.dumps(card))


# --- round trip ---------------------------------------------------------------------------------------------


def test_empty_registry(registry):
    assert registry.versions() == []
    assert registry.champion() is None
    assert not registry.root.exists()  # reading creates nothing


def test_register_and_load_round_trip(registry, model, probe):
    before = datetime.now(UTC).replace(microsecond=0)
    version = registry.register(model, dict(CARD_FIELDS))
    assert version == "v0001"
    loaded = registry.load(version)
    assert isinstance(loaded, LogisticRegression) and loaded is not model
    np.testing.assert_array_equal(loaded.predict_proba(probe), model.predict_proba(probe))
    np.testing.assert_array_equal(loaded.coef_, model.coef_)

    artifact = registry.root / version / ARTIFACT
    card = registry.card(version)
    assert json.loads((registry.root / version / CARD).read_text()) == card
    assert card["version"] == "v0001"
    assert card["artifact"] == ARTIFACT
    assert card["sha256"] == _sha256(artifact)
    created = datetime.fromisoformat(card["created_utc"])
    assert created.utcoffset() == timedelta(0)
    assert before <= created <= datetime.now(UTC) + timedelta(seconds=1)
    for key, value in CARD_FIELDS.items():
        assert card[key] == value
    assert set(LIBRARIES) <= set(card["libraries"]) and "python" in card["libraries"]
    assert card["libraries"]["scikit-learn"] == importlib_metadata.version("scikit-learn")
    assert card["libraries"]["numpy"] == np.__version__


def test_second_registration_is_the_next_version(registry, model, probe):
    first = registry.register(model, {"n": 1})
    other = {"weights": np.arange(5.0), "name": "plain object"}
    second = registry.register(other, {"n": 2})
    assert (first, second) == ("v0001", "v0002")
    assert registry.versions() == ["v0001", "v0002"]
    assert registry.card("v0002")["n"] == 2 and registry.card("v0001")["n"] == 1
    loaded = registry.load("v0002")
    assert loaded["name"] == "plain object"
    np.testing.assert_array_equal(loaded["weights"], other["weights"])
    np.testing.assert_array_equal(registry.load("v0001").predict(probe), model.predict(probe))
    # each card describes its own artifact
    for v in ("v0001", "v0002"):
        assert registry.card(v)["sha256"] == _sha256(registry.root / v / ARTIFACT)


def test_registry_fields_win_over_card_fields(registry, model, probe):
    """The registry sets version, artifact and sha256 itself, whatever the caller's card says."""
    version = registry.register(
        model, {"version": "v9999", "sha256": "0" * 64, "artifact": "../x.joblib", "libraries": {}, "note": "kept"}
    )
    card = registry.card(version)
    assert card["version"] == version == "v0001"
    assert card["artifact"] == ARTIFACT
    assert card["sha256"] == _sha256(registry.root / version / ARTIFACT)
    assert "scikit-learn" in card["libraries"] and card["note"] == "kept"
    np.testing.assert_array_equal(registry.load(version).predict(probe), model.predict(probe))


def test_versions_sort_numerically_and_skip_other_entries(registry, model):
    for _ in range(3):
        registry.register(model, {})
    (registry.root / "v10000").mkdir()  # five digits, with a card: a version
    (registry.root / "v10000" / CARD).write_text("{}")
    (registry.root / "notes").mkdir()
    (registry.root / "v12").mkdir()  # not a version name
    (registry.root / "v12" / CARD).write_text("{}")
    (registry.root / "v0007").mkdir()  # no card: not (yet) a version
    assert registry.versions() == ["v0001", "v0002", "v0003", "v10000"]


# --- tampering ----------------------------------------------------------------------------------------------


def test_flipped_byte_is_refused(registry, model):
    version = registry.register(model, {})
    artifact = registry.root / version / ARTIFACT
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0x01
    artifact.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match="sha256"):
        registry.load(version)


def test_appended_bytes_are_refused(registry, model):
    version = registry.register(model, {})
    with open(registry.root / version / ARTIFACT, "ab") as handle:
        handle.write(b"\x00")
    with pytest.raises(RegistryError, match="sha256"):
        registry.load(version)


def test_replaced_artifact_is_refused(registry, model):
    """Another valid joblib file (another version's artifact) under the card of the first."""
    first = registry.register(model, {})
    second = registry.register({"something": "else"}, {})
    shutil.copyfile(registry.root / second / ARTIFACT, registry.root / first / ARTIFACT)
    with pytest.raises(RegistryError, match="sha256"):
        registry.load(first)
    assert registry.load(second) == {"something": "else"}


def test_card_with_another_sha_is_refused(registry, model):
    version = registry.register(model, {})
    _rewrite_card(registry, version, sha256=hashlib.sha256(b"something else").hexdigest())
    with pytest.raises(RegistryError, match="sha256"):
        registry.load(version)


def test_card_without_sha_is_refused(registry, model):
    version = registry.register(model, {})
    _rewrite_card(registry, version, sha256=None)
    with pytest.raises(RegistryError, match="sha256"):
        registry.load(version)


def test_missing_artifact_is_refused(registry, model):
    version = registry.register(model, {})
    (registry.root / version / ARTIFACT).unlink()
    with pytest.raises(RegistryError, match="missing"):
        registry.load(version)


# --- confinement --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["../x", "v1", "/etc/passwd", "v0001/../v0001", "v0001/", "./v0001", "", "V0001", "v00a1", None, 1]
)
def test_names_that_are_not_versions_are_refused(registry, model, name):
    registry.register(model, {})
    with pytest.raises(RegistryError):
        registry.load(name)
    with pytest.raises(RegistryError):
        registry.card(name)
    with pytest.raises(RegistryError):
        registry.promote(name)
    assert registry.champion() is None


def test_unknown_version_is_refused(registry, model):
    with pytest.raises(RegistryError):
        registry.load("v0001")  # nothing registered, root absent
    registry.register(model, {})
    with pytest.raises(RegistryError, match="no version"):
        registry.load("v0002")
    with pytest.raises(RegistryError, match="no version"):
        registry.card("v0002")


def test_artifact_path_escaping_the_version_folder_is_refused(registry, model, tmp_path):
    version = registry.register(model, {})
    # a genuine copy with a matching sha: only the location may refuse it
    outside = tmp_path / "other.joblib"
    shutil.copyfile(registry.root / version / ARTIFACT, outside)
    assert outside.resolve() == (registry.root / version / "../../other.joblib").resolve()
    _rewrite_card(registry, version, artifact="../../other.joblib")
    with pytest.raises(RegistryError, match="outside"):
        registry.load(version)
    _rewrite_card(registry, version, artifact=str(outside))  # absolute
    with pytest.raises(RegistryError, match="outside"):
        registry.load(version)
    # another version's artifact is outside this version's folder too
    other = registry.register({"x": 1}, {})
    _rewrite_card(
        registry, version, artifact=f"../{other}/{ARTIFACT}", sha256=_sha256(registry.root / other / ARTIFACT)
    )
    with pytest.raises(RegistryError, match="outside"):
        registry.load(version)


def test_symlinked_artifact_pointing_outside_is_refused(registry, model, tmp_path):
    version = registry.register(model, {})
    artifact = registry.root / version / ARTIFACT
    outside = tmp_path / "elsewhere" / "model.joblib"
    outside.parent.mkdir()
    shutil.copyfile(artifact, outside)  # same bytes: the sha alone would accept it
    artifact.unlink()
    artifact.symlink_to(outside)
    assert registry.card(version)["sha256"] == _sha256(outside)
    with pytest.raises(RegistryError, match="outside"):
        registry.load(version)


def test_symlinked_version_folder_pointing_outside_is_refused(registry, model, tmp_path):
    version = registry.register(model, {})
    foreign = tmp_path / "foreign"
    shutil.copytree(registry.root / version, foreign)  # a complete, consistent version folder
    (registry.root / "v0002").symlink_to(foreign, target_is_directory=True)
    with pytest.raises(RegistryError, match="outside"):
        registry.load("v0002")
    with pytest.raises(RegistryError, match="outside"):
        registry.promote("v0002")
    assert registry.champion() is None


def test_champion_pointer_to_a_path_is_refused(registry, model):
    registry.register(model, {})
    (registry.root / CHAMPION).write_text("../v0001\n")
    with pytest.raises(RegistryError):
        registry.champion()


# --- champion and gate --------------------------------------------------------------------------------------


def test_champion_pointer(registry, model):
    assert registry.champion() is None
    first = registry.register(model, {})
    assert registry.champion() is None  # registering does not promote
    registry.promote(first)
    assert registry.champion() == first
    second = registry.register(model, {})
    assert registry.champion() == first
    registry.promote(second)
    assert registry.champion() == second
    assert (registry.root / CHAMPION).read_text().strip() == second
    assert LocalRegistry(registry.root).champion() == second  # persisted, not held in memory
    with pytest.raises(RegistryError):
        registry.promote("v0003")
    assert registry.champion() == second  # a refused promotion changes nothing
    assert not (registry.root / "v0003").exists()


def test_a_version_is_registered_with_its_gate_decision_and_promoted_when_it_says_so(registry, model):
    first = registry.register(model, {})
    assert registry.gate_decision(first) is None and registry.champion() is None
    kept = {
        "promoted": False,
        "reason": "challenger AP 0.5000 < champion AP 0.7500 - tolerance 0.125",
        "champion_before": "v0001",
        "challenger_average_precision": 0.5,
        "window_rows": 321,
    }
    second = registry.register({"other": 1}, {"n": 2}, gate=kept)
    assert registry.gate_decision(second) == {**kept, "challenger": second}
    assert json.loads((registry.root / second / GATE).read_text()) == {**kept, "challenger": second}
    assert registry.card(second)["gate"] == {**kept, "challenger": second}
    assert registry.champion() is None  # not promoted
    third = registry.register({"other": 2}, {}, gate={**kept, "promoted": True})
    assert registry.champion() == third and registry.load(third) == {"other": 2}
    for name in ("../x", "v1", "/etc/passwd"):
        with pytest.raises(RegistryError):
            registry.gate_decision(name)


def _never():
    raise AssertionError("a reused version is not decided again")


def test_register_or_reuse_decides_and_registers_a_new_training_once(registry, model):
    decisions = []

    def decide():
        decisions.append({"promoted": True, "champion_before": "none", "reason": "no champion yet"})
        return decisions[-1]

    version, decision, reused = registry.register_or_reuse(model, {"fingerprint": "f1"}, decide)
    assert (version, reused, decision) == ("v0001", False, decisions[0]) and registry.champion() == "v0001"
    assert registry.gate_decision("v0001") == {**decisions[0], "challenger": "v0001"}
    # the same training again: its version and stored decision, nothing registered or decided
    version, decision, reused = registry.register_or_reuse({"other": 1}, {"fingerprint": "f1"}, _never)
    assert (version, reused, decision) == ("v0001", True, {**decisions[0], "challenger": "v0001"})
    assert registry.versions() == ["v0001"] and len(decisions) == 1
    version, _, reused = registry.register_or_reuse({"other": 1}, {"fingerprint": "f2"}, lambda: {"promoted": False})
    assert (version, reused) == ("v0002", False) and registry.champion() == "v0001"


def test_a_reused_version_gets_the_champion_pointer_a_crash_lost_and_nothing_else(registry, model):
    registry.register(model, {"fingerprint": "a"}, gate={"promoted": True, "champion_before": "none"})
    registry.register(model, {"fingerprint": "b"}, gate={"promoted": False, "champion_before": "v0001"})
    registry.register(model, {"fingerprint": "c"}, gate={"promoted": True, "champion_before": "v0001"})
    registry.promote("v0001")  # as if the run that registered v0003 died before it moved the pointer
    assert registry.register_or_reuse(model, {"fingerprint": "b"}, _never)[0] == "v0002"
    assert registry.champion() == "v0001"  # b was refused: reusing it promotes nothing
    assert registry.register_or_reuse(model, {"fingerprint": "c"}, _never)[0] == "v0003"
    assert registry.champion() == "v0003"  # its decision promoted it over v0001, the champion still in place
    registry.promote("v0002")  # the champion has moved since c's decision: c does not take it back
    assert registry.register_or_reuse(model, {"fingerprint": "c"}, _never)[0] == "v0003"
    assert registry.champion() == "v0002"
    registry.register(model, {"fingerprint": "d"})  # a version without a decision: reused as it is
    assert registry.register_or_reuse(model, {"fingerprint": "d"}, _never) == ("v0004", {}, True)


def test_no_temporary_files_are_left_behind(registry, model):
    first = registry.register(model, {"a": 1}, gate={"promoted": True, "reason": "first"})
    registry.register({"b": 2}, {"b": 2}, gate={"promoted": True, "reason": "better"})
    registry.promote(first)
    assert _tmp_leftovers(registry.root) == []
    assert sorted(p.name for p in (registry.root / first).iterdir()) == sorted([ARTIFACT, CARD, GATE])
    assert sorted(p.name for p in registry.root.iterdir()) == sorted([CHAMPION, "v0001", "v0002"])


def test_failed_registration_leaves_nothing_behind(registry, model):
    registry.register(model, {})
    with pytest.raises((pickle.PicklingError, AttributeError)):  # a lambda cannot be pickled
        registry.register(lambda x: x, {})
    assert registry.versions() == ["v0001"]
    assert sorted(p.name for p in registry.root.iterdir()) == ["v0001"]
    again = registry.register({"ok": True}, {})
    assert again == "v0002" and registry.versions() == ["v0001", "v0002"]
    assert registry.load(again) == {"ok": True}


def test_a_registration_killed_midway_leaves_no_version_and_the_sweep_removes_its_folder(registry, model):
    registry.register(model, {})
    code = (
        "import os, joblib; from pm_assets.core.registry import LocalRegistry\n"
        "joblib.dump = lambda *a, **k: os.kill(os.getpid(), 9)\n"  # killed while writing the artifact
        f"LocalRegistry({str(registry.root)!r}).register({{'x': 1}}, {{}})"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9
    assert registry.versions() == ["v0001"] and len(_tmp_leftovers(registry.root)) == 1
    (registry.root / "v0007").mkdir()  # a card-less folder, as earlier code left after a kill
    (registry.root / "v0007" / "model.joblib").write_bytes(b"")
    removed = registry.sweep()
    assert len(removed) == 2 and sorted(p.name for p in registry.root.iterdir()) == ["v0001"]
    assert registry.register(model, {}) == "v0002"


# --- numbering ----------------------------------------------------------------------------------------------


def test_registration_skips_a_folder_taken_by_another_registration(registry, model, probe):
    first = registry.register(model, {})
    taken = registry.root / "v0002"
    taken.mkdir()  # another training has claimed v0002 and not yet written its card
    (taken / "marker").write_text("theirs")
    version = registry.register({"mine": True}, {})
    assert version == "v0003"
    assert sorted(p.name for p in taken.iterdir()) == ["marker"]  # untouched
    assert (taken / "marker").read_text() == "theirs"
    assert registry.versions() == [first, "v0003"]
    assert registry.load("v0003") == {"mine": True}
    with pytest.raises(RegistryError):
        registry.load("v0002")


def test_first_registration_skips_a_taken_v0001(registry, model):
    (registry.root / "v0001").mkdir(parents=True)
    assert registry.register(model, {}) == "v0002"
    assert list((registry.root / "v0001").iterdir()) == []


def test_concurrent_registrations_take_distinct_versions(registry):
    results: dict[int, str] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def work(i: int) -> None:
        try:
            start.wait()
            results[i] = registry.register({"worker": i}, {"worker": i})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results.values()) == [f"v{n:04d}" for n in range(1, 7)]
    for i, version in results.items():
        assert registry.load(version) == {"worker": i}
        assert registry.card(version)["worker"] == i
    assert _tmp_leftovers(registry.root) == []
