"""A local, versioned model registry: one folder per version, a model card, a champion pointer. No Dagster import.

Layout under the root::

    v0001/model.joblib   the artifact (joblib)
    v0001/card.json      the model card, including the artifact's sha256
    v0001/gate.json      the champion/challenger decision about this version, once taken
    champion             the champion's version name

A joblib file runs code when loaded, so :meth:`LocalRegistry.load` only opens artifacts of this registry whose
sha256 matches their card, and refuses anything else with a :class:`RegistryError` saying why.

The root is a folder or a URL (``az://container/models``, see :mod:`pm_assets.core.locations`). On an object store,
where a folder cannot be renamed into place, a registration first claims its version name with a create-only blob
``<version>/.claim`` (two trainings at once take distinct numbers), then uploads the artifact and the decision, and
the card last: a version exists once its card does, so an interrupted one is never listed (its number is skipped).
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import shutil
import sys
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path

import joblib

from pm_assets.core.atomic import atomic_path, sweep_orphans, temporary_dir, write_bytes_atomic, write_new
from pm_assets.core.json_safe import to_json_safe
from pm_assets.core.locations import as_path, is_remote, sha256_of

VERSION_PATTERN = re.compile(r"v[0-9]{4,}")
ARTIFACT = "model.joblib"
CARD = "card.json"
GATE = "gate.json"
CHAMPION = "champion"
CLAIM = ".claim"
#: Libraries whose versions every card records.
LIBRARIES = ("scikit-learn", "pandas", "numpy", "joblib", "pyarrow", "scipy")


class RegistryError(RuntimeError):
    """A registry operation refused: unknown version, a path outside the registry, or a tampered artifact."""


def library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _json_bytes(obj) -> bytes:
    return (json.dumps(to_json_safe(obj), indent=2, sort_keys=True, default=str, allow_nan=False) + "\n").encode()


def _full_card(card: dict, sha256: str) -> dict:
    """``card`` with what registration adds: when, the artifact and its sha256, the library versions."""
    return {
        **card,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "artifact": ARTIFACT,
        "sha256": sha256,
        "libraries": library_versions(),
    }


def _card_bytes(full_card: dict, name: str, decision: dict | None) -> bytes:
    return _json_bytes({**full_card, "version": name} | ({"gate": decision} if decision else {}))


class LocalRegistry:
    def __init__(self, root: str | Path):
        self.remote = is_remote(root)
        self.root = as_path(root) if self.remote else Path(root).resolve()

    # --- versions ---------------------------------------------------------------------------------------
    def versions(self) -> list[str]:
        if not self.root.exists():
            return []
        found = [p.name for p in self.root.iterdir() if VERSION_PATTERN.fullmatch(p.name) and (p / CARD).exists()]
        return sorted(found, key=lambda v: int(v[1:]))

    def _folder(self, version: str) -> Path:
        if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version):
            raise RegistryError(f"{version!r} is not a version of this registry (expected e.g. 'v0001')")
        folder = self.root / version if self.remote else (self.root / version).resolve()
        if folder.parent != self.root:
            raise RegistryError(f"{folder} is outside the registry {self.root}")
        return folder

    def register(self, model, card: dict, gate: dict | None = None) -> str:
        """Save ``model`` as a new version with ``card`` (plus version, created time, sha256, library versions) and,
        when given, the gate's ``decision`` (``gate.json``, and ``gate`` in the card); promote it if the decision
        says so.

        The version folder is written under a temporary name and renamed into place when complete, so a version
        exists whole (artifact, card, decision) or not at all: a kill or a failure leaves only a temporary folder,
        which :meth:`sweep` removes. The rename is also what makes two trainings at once take distinct numbers."""
        if self.remote:
            return self._register_remote(model, card, gate)
        self.root.mkdir(parents=True, exist_ok=True)
        with temporary_dir(self.root / "version") as tmp:
            with atomic_path(tmp / ARTIFACT) as artifact:
                joblib.dump(model, artifact)
            full_card = _full_card(card, sha256_of(tmp / ARTIFACT))
            number = self._next_number()
            while True:
                name = f"v{number:04d}"
                if (self.root / name).exists():  # taken (an empty folder would not stop the rename below)
                    number += 1
                    continue
                decision = None if gate is None else {**gate, "challenger": name}
                write_bytes_atomic(tmp / CARD, _card_bytes(full_card, name, decision))
                if decision is not None:
                    write_bytes_atomic(tmp / GATE, _json_bytes(decision))
                try:
                    os.rename(tmp, self.root / name)  # fails when the name is taken (a folder with files)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
                    number += 1
        if decision is not None and decision.get("promoted"):
            self.promote(name)
        return name

    def _next_number(self) -> int:
        versions = self.versions()  # one listing
        return int(versions[-1][1:]) + 1 if versions else 1

    def _register_remote(self, model, card: dict, gate: dict | None) -> str:
        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        data = buffer.getvalue()
        full_card = _full_card(card, hashlib.sha256(data).hexdigest())
        number = self._next_number()
        while not write_new(self.root / f"v{number:04d}" / CLAIM, full_card["created_utc"].encode()):
            number += 1  # taken by another registration (finished or not)
        name = f"v{number:04d}"
        decision = None if gate is None else {**gate, "challenger": name}
        write_bytes_atomic(self.root / name / ARTIFACT, data)
        if decision is not None:
            write_bytes_atomic(self.root / name / GATE, _json_bytes(decision))
        write_bytes_atomic(self.root / name / CARD, _card_bytes(full_card, name, decision))
        if decision is not None and decision.get("promoted"):
            self.promote(name)
        return name

    def sweep(self) -> list[Path]:
        """Remove what interrupted registrations left: temporary folders of processes no longer running, and version
        folders without a card (written by versions of this code before registration became one rename). On an
        object store nothing is left to remove: an interrupted version has no card and is never listed."""
        if self.remote:
            return []
        removed = sweep_orphans(self.root)
        if self.root.exists():
            for folder in self.root.iterdir():
                if VERSION_PATTERN.fullmatch(folder.name) and folder.is_dir() and not (folder / CARD).exists():
                    shutil.rmtree(folder)
                    removed.append(folder)
        return removed

    def find(self, fingerprint: str) -> str | None:
        """The version whose card has this ``fingerprint`` (same training rows, parameters and code), if any."""
        for version in reversed(self.versions()):
            if self.card(version).get("fingerprint") == fingerprint:
                return version
        return None

    def card(self, version: str) -> dict:
        path = self._folder(version) / CARD
        if not path.exists():
            raise RegistryError(f"no version {version} in {self.root}")
        return json.loads(path.read_text())

    def load(self, version: str):
        """The model of ``version``, after checking its artifact is this registry's and matches the card's sha256."""
        folder = self._folder(version)
        card = self.card(version)
        name = str(card.get("artifact", ARTIFACT))
        artifact = folder / name if self.remote else (folder / name).resolve()
        if artifact.parent != folder or name in (".", ".."):
            raise RegistryError(f"{version}: artifact {artifact} is outside its version folder; refusing to load")
        if not artifact.is_file():
            raise RegistryError(f"{version}: artifact {artifact} is missing")
        data = artifact.read_bytes() if self.remote else None  # read once: the bytes checked are the bytes loaded
        actual = hashlib.sha256(data).hexdigest() if self.remote else sha256_of(artifact)
        expected = card.get("sha256")  # a card without one is refused like a mismatch, not with a KeyError
        if actual != expected:
            raise RegistryError(
                f"{version}: sha256 of {artifact} is {actual}, the model card says {expected}; the artifact "
                "was changed after registration and is not loaded (a joblib file runs code when loaded)"
            )
        return joblib.load(io.BytesIO(data) if self.remote else artifact)

    # --- champion and gate --------------------------------------------------------------------------------
    def champion(self) -> str | None:
        path = self.root / CHAMPION
        if not path.exists():
            return None
        version = path.read_text().strip()
        self._folder(version)
        return version

    def promote(self, version: str) -> None:
        self.card(version)  # must exist
        write_bytes_atomic(self.root / CHAMPION, (version + "\n").encode())

    def gate_decision(self, version: str) -> dict | None:
        path = self._folder(version) / GATE
        return json.loads(path.read_text()) if path.exists() else None

    def register_or_reuse(self, model, card: dict, decide) -> tuple[str, dict, bool]:
        """(version, its gate decision, reused): the version whose card has ``card["fingerprint"]`` (the same
        training: the same model), promoted again if its decision promoted it but a crash came between its
        registration and the champion pointer; else ``model`` registered (:meth:`register`) with the decision
        ``decide()`` returns, taken before anything is written."""
        version = self.find(card["fingerprint"])
        if version is None:
            decision = decide()
            return self.register(model, card, gate=decision), decision, False
        decision = self.gate_decision(version) or {}
        before = None if decision.get("champion_before") in (None, "none") else decision["champion_before"]
        if decision.get("promoted") and self.champion() == before:
            self.promote(version)
        return version, decision, True
