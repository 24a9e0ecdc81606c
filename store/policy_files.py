"""Load and validate jurisdiction policy files (deploy/policies/*.toml).

A file that does not validate is rejected naming the file, the field and the reason. Loaded
policies are recorded in ``policy_versions`` with their exact text, so the version a case started
under can always be read back even after the file changed.
"""
from __future__ import annotations

import hashlib
import tomllib
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from machines.policy import Policy

from store.db import settings
from store.models import PolicyVersion

SHIPPED_POLICIES = Path(__file__).resolve().parent.parent / "deploy" / "policies"


class PolicyFileError(ValueError):
    pass


def policy_dir() -> Path:
    return settings().policy_dir or SHIPPED_POLICIES


def parse_policy(text: str, *, source: str) -> Policy:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyFileError(f"{source}: not valid TOML: {exc}") from None
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in err['loc']) or '(file)'}': {err['msg']}" for err in exc.errors()
        )
        raise PolicyFileError(f"{source}: {problems}") from None


def read_policy_file(path: Path) -> tuple[Policy, str]:
    text = path.read_text(encoding="utf-8")
    policy = parse_policy(text, source=str(path))
    if policy.name != path.stem:
        raise PolicyFileError(f"{path}: field 'name': '{policy.name}' must match the file name '{path.stem}'")
    return policy, text


def policy_files(directory: Path | None = None) -> list[Path]:
    return sorted((directory or policy_dir()).glob("*.toml"))


def load_policies_into(session: Session, *, directory: Path | None = None, now: datetime) -> list[Policy]:
    """Record every policy file's current version; a changed file must carry a new version number."""
    loaded = []
    for path in policy_files(directory):
        policy, text = read_policy_file(path)
        digest = hashlib.sha256(text.encode()).hexdigest()
        row = session.scalar(
            select(PolicyVersion).where(PolicyVersion.name == policy.name, PolicyVersion.version == policy.version)
        )
        if row is None:
            session.add(PolicyVersion(name=policy.name, version=policy.version, body=text, sha256=digest, loaded_at=now))
        elif row.sha256 != digest:
            raise PolicyFileError(
                f"{path}: field 'version': the file changed but still says version {policy.version}; "
                f"raise the version so cases started under {policy.key} keep their rules"
            )
        loaded.append(policy)
    session.flush()
    return loaded


class PolicyRegistry:
    """Policies by (name, version), read from the store (what cases started under)."""

    def __init__(self, session: Session):
        self._session = session
        self._cache: dict[tuple[str, int], Policy] = {}

    def get(self, name: str, version: int | None = None) -> Policy:
        key = (name, version or self.latest_version(name))
        if key not in self._cache:
            row = self._session.scalar(
                select(PolicyVersion).where(PolicyVersion.name == key[0], PolicyVersion.version == key[1])
            )
            if row is None:
                raise PolicyFileError(f"policy {key[0]}@{key[1]} is not loaded; run `baoxue init`")
            self._cache[key] = _parse_cached(row.body, f"{key[0]}@{key[1]}")
        return self._cache[key]

    def latest_version(self, name: str) -> int:
        rows = self._session.scalars(select(PolicyVersion.version).where(PolicyVersion.name == name)).all()
        if not rows:
            raise PolicyFileError(f"policy '{name}' is not loaded; run `baoxue init`")
        return max(rows)


@lru_cache(maxsize=64)
def _parse_cached(text: str, source: str) -> Policy:
    return parse_policy(text, source=source)
