"""Identity rules: 身份证号 check digit (GB 11643-1999) and masking for logs and artifacts."""
from __future__ import annotations

import re
from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_ID_RE = re.compile(r"^\d{17}[\dX]$")


class InvalidIdNumber(ValueError):
    pass


def id_check_digit(first17: str) -> str:
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _WEIGHTS)) % 11]


def validate_id_number(value: str) -> str:
    """Return the normalised 18-digit number or raise :class:`InvalidIdNumber` saying why."""
    v = (value or "").strip().upper()
    if not _ID_RE.match(v):
        raise InvalidIdNumber(f"身份证号应为18位（末位可为X）: got {len(v)} characters")
    try:
        date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        raise InvalidIdNumber(f"身份证号出生日期无效: {v[6:14]}") from None
    if id_check_digit(v[:17]) != v[17]:
        raise InvalidIdNumber(f"身份证号校验位错误: expected {id_check_digit(v[:17])}, got {v[17]}")
    return v


def birth_date(id_number: str) -> date:
    return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))


def mask_id(value: str | None) -> str:
    """110105********123X → keeps region prefix and the last four."""
    if not value:
        return ""
    return value[:6] + "*" * max(len(value) - 10, 0) + value[-4:] if len(value) > 10 else "*" * len(value)


def mask_name(value: str | None) -> str:
    """张小明 → 张*明, 王芳 → 王*."""
    if not value:
        return ""
    if len(value) <= 2:
        return value[0] + "*"
    return value[0] + "*" * (len(value) - 2) + value[-1]


def mask_phone(value: str | None) -> str:
    if not value:
        return ""
    return value[:3] + "****" + value[-4:] if len(value) >= 11 else "*" * len(value)
