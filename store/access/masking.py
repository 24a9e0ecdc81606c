"""Who reads pupils' and guardians' personal data unmasked, and how everything else is masked.

The one rule, per role (the lists, the case page and its history, the API and document previews
all ask here):

- **head teacher, school office, township** read names, guardian phones and event payloads in
  full: they work the case (the school issues its papers, the township serves its notices).
- **county** (the bureau supervises): pupil and guardian names masked (张*明), guardian phones
  withheld, ID numbers masked, and the same values masked wherever they occur in an event's
  payload (``"contact": "江天佑（母亲）"`` → ``江*佑（母亲）``), plus anything shaped like a mobile
  number or a 身份证号.
- **operator**: reads no pupil data at all (the routes refuse it).

Documents of a case: the roles that read unmasked read every document of their cases in full.
The county reads in full only the papers addressed or copied to the county bureau
(:data:`COUNTY_RECEIVES`: the written report to the bureau, and the return and legal notices and
the report to the township that are copied to it, as on paper); of every other case document it
gets a masked HTML preview (:func:`mask_document`) and no PDF/XLSX file. Reports (monthly
figures, spot checks) carry no names and are read as before.

The list identity (ID numbers in lists are always masked, names masked for the county) uses
:func:`machines.identity.mask_name` / ``mask_id`` with :func:`masked_for` deciding.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

from machines.identity import mask_id, mask_name, mask_phone

from store.models.accounts import User

UNMASKED_ROLES = frozenset({"head_teacher", "school_staff", "township"})
COUNTY_RECEIVES = frozenset({"report_to_bureau", "return_notice", "legal_notice", "report_to_township"})

_PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")


def masked_for(user: User | None) -> bool:
    """True unless the user's role reads personal data unmasked."""
    role = getattr(user, "role", None)
    return getattr(role, "value", role) not in UNMASKED_ROLES


def full_document_for(user: User | None, kind: str) -> bool:
    """May ``user`` read the issued file of a case document of ``kind`` (not only a masked preview)?"""
    return not masked_for(user) or kind in COUNTY_RECEIVES


class Masker:
    """Replaces the given private values (names, phones, ID numbers) and anything shaped like a
    phone or ID number, in any JSON-like value."""

    def __init__(self, names: Iterable[str | None] = (), phones: Iterable[str | None] = (),
                 ids: Iterable[str | None] = ()):
        pairs = {n: mask_name(n) for n in names if n and len(n) >= 2}
        pairs |= {p: mask_phone(p) for p in phones if p and len(p) >= 5}
        pairs |= {i: mask_id(i) for i in ids if i and len(i) >= 8}
        self._pairs = sorted(pairs.items(), key=lambda kv: -len(kv[0]))  # longest first: 江天佑 before 江天

    def text(self, value: str) -> str:
        if value.startswith(("data:", "archive:")):  # an embedded image or a stored photo's path: no personal text
            return value
        for secret, masked in self._pairs:
            if secret in value:
                value = value.replace(secret, masked)
        value = _ID_NUMBER.sub(lambda m: mask_id(m.group()), value)
        return _PHONE.sub(lambda m: mask_phone(m.group()), value)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self(v) for v in value]
        return value


def mask_case_detail(detail: dict[str, Any], masker: Masker) -> dict[str, Any]:
    """A case's detail (``store.reporting.queries.case_detail``) as the county reads it: guardians masked,
    phones withheld, every event's reason and payload masked."""
    for g in detail.get("guardians", []):
        g["name"], g["phone"] = mask_name(g["name"]), None
    for e in detail.get("events", []):
        e["reason"] = masker(e.get("reason"))
        e["payload"] = masker(e.get("payload"))
    return detail


def mask_document(data: dict[str, Any]) -> dict[str, Any]:
    """The archived data of a case document with the pupil's and guardians' names, phones and ID
    numbers masked throughout (the county's preview)."""
    pupil = data.get("pupil") or {}
    guardians = [g for g in data.get("guardians") or [] if isinstance(g, dict)]
    masker = Masker(names=[pupil.get("name"), *(g.get("name") for g in guardians)],
                    phones=[g.get("phone") for g in guardians], ids=[pupil.get("id_number")])
    return masker(data)
