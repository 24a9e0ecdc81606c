"""Short forms of place names used in 发文字号 and in the names of outside bodies (pure text rules)."""
from __future__ import annotations


def short_township(name: str) -> str:
    """城关镇 → 城关镇 (the 发文字号 prefix keeps 镇/乡: 城关镇政发〔2026〕3号)."""
    return name.removesuffix("人民政府").removesuffix("街道办事处").removesuffix("办事处")


def short_school(name: str, township: str | None = None) -> str:
    """城关镇石门小学 → 石门小学; the school's 发文字号 prefix (石门小学校发〔2026〕3号 reads 石门校发…)."""
    base = name
    if township and base.startswith(township) and len(base) > len(township) + 2:
        base = base[len(township):]
    for suffix in ("九年一贯制学校", "九年制学校", "中心小学", "中心学校", "小学", "中学", "学校"):
        if base.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)]
    return base
