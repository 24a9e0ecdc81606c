"""A site's own schedules: a TOML file that overrides deployments' crons or intervals.

The default is the crons of :data:`deploy.deployments.DEPLOYMENTS` (Asia/Shanghai). A county that
sweeps at 10:00 instead of 09:30, or a test that needs a sweep every minute, names a file::

    # schedules.toml — one table per deployment to change; the others keep their defaults
    [advance-cases]
    crons = ["0 10 * * *", "0 7-18 * * *"]   # Asia/Shanghai wall-clock time

    [render-documents]
    interval_seconds = 900                   # every 15 minutes instead of the crons

    [quarterly-spot-check]
    crons = []                               # not scheduled here (started by hand)

``baoxue serve --schedules FILE``, or ``BAOXUE_SCHEDULES_FILE=FILE`` for ``baoxue serve`` and
``deploy/production/register.sh``; ``baoxue deployments --schedules FILE`` checks a file and shows
the result. A mistake (unknown deployment, bad cron, both crons and interval) is refused with the
file, the deployment and the reason, before anything starts.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV = "BAOXUE_SCHEDULES_FILE"
MAX_BYTES = 64 * 1024


class ScheduleError(ValueError):
    """A schedules file that cannot be used; the message names the file, the deployment and why."""


class Override(BaseModel):
    """One deployment's schedules: crons (Asia/Shanghai) or a fixed interval, not both."""

    model_config = ConfigDict(extra="forbid")

    crons: list[str] | None = Field(None, max_length=24)
    interval_seconds: int | None = Field(None, ge=10, le=366 * 86400)

    @field_validator("crons")
    @classmethod
    def _valid_crons(cls, crons: list[str] | None) -> list[str] | None:
        from prefect._vendor.croniter import croniter

        for cron in crons or []:
            if len(cron) > 100 or not croniter.is_valid(cron):
                raise ValueError(f"'{cron}' 不是有效的 cron 表达式 (not a valid cron expression, "
                                 "e.g. '30 9 * * *' = 09:30 every day)")
        return crons

    @model_validator(mode="after")
    def _one_kind(self) -> "Override":
        if (self.crons is None) == (self.interval_seconds is None):
            raise ValueError("给出 crons 或 interval_seconds 之一 (give exactly one of crons, interval_seconds)")
        return self


def parse(text: str, *, source: str = "schedules") -> dict[str, Override]:
    """The overrides in ``text`` (TOML), checked against the deployments' names."""
    from deploy.specs import DEPLOYMENTS

    if len(text.encode("utf-8")) > MAX_BYTES:
        raise ScheduleError(f"{source}: 文件过大 (file larger than {MAX_BYTES // 1024} kB)")
    try:
        raw: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScheduleError(f"{source}: 不是有效的 TOML (not valid TOML): {exc}") from None
    known = {s.name for s in DEPLOYMENTS}
    out: dict[str, Override] = {}
    for name, table in raw.items():
        if name not in known:
            raise ScheduleError(f"{source}: [{name}] 不是已知的部署 (unknown deployment; known: {', '.join(sorted(known))})")
        if not isinstance(table, dict):
            raise ScheduleError(f"{source}: {name} 应为一个表 [{name}] (must be a table)")
        try:
            out[name] = Override.model_validate(table)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in (name, *err["loc"]))
            raise ScheduleError(f"{source}: {where}: {err['msg'].removeprefix('Value error, ')}") from None
    return out


def load(path: str | Path | None = None) -> dict[str, Override]:
    """The overrides of ``path``, else of ``BAOXUE_SCHEDULES_FILE``, else none (the defaults)."""
    path = path or os.environ.get(ENV)
    if not path:
        return {}
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScheduleError(f"{path}: 无法读取 (cannot read): {exc.__class__.__name__}") from None
    return parse(text, source=str(path))


def schedules_for(spec, overrides: dict[str, Override]) -> list:
    """The Prefect schedules of deployment ``spec`` (Asia/Shanghai), the site's override first."""
    from prefect.schedules import Cron, Interval

    from deploy.specs import TIMEZONE

    o = overrides.get(spec.name)
    if o is not None and o.interval_seconds is not None:
        return [Interval(o.interval_seconds, timezone=TIMEZONE)]
    crons = o.crons if o is not None else spec.crons
    return [Cron(c, timezone=TIMEZONE) for c in crons]


def describe(spec, overrides: dict[str, Override]) -> list[str]:
    """The schedules as text (for ``baoxue deployments``)."""
    o = overrides.get(spec.name)
    if o is not None and o.interval_seconds is not None:
        return [f"every {o.interval_seconds} s"]
    return list(o.crons if o is not None else spec.crons)
