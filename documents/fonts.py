"""Fonts for official documents: one fontconfig setup per process, and a start-up check.

GB/T 9704-2012 asks for 方正小标宋简体 (titles) and 仿宋_GB2312 (body). Debian ships neither
(and no simplified 仿宋 at all), so the shipped ``documents/fonts.conf`` aliases the standard
names to Noto Serif CJK SC (titles, used bold) and AR PL UMing CN (body). A bureau that owns the
licensed fonts drops them into its font folder; the aliases prefer them as soon as they are there.

``configure()`` must run before WeasyPrint is imported (WeasyPrint reads fontconfig on import):
``documents.render`` calls it at import time, before its lazy ``import weasyprint``.
"""
from __future__ import annotations

import ctypes.util
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
FONTS_CONF = PACKAGE_DIR / "fonts.conf"
DEPLOY_FONTS = PACKAGE_DIR.parent / "deploy" / "fonts"
FONT_SUFFIXES = {".ttf", ".otf", ".ttc", ".otc", ".woff", ".woff2"}

# The standard names the stylesheet uses, what each is for, and the licensed family it stands for.
STANDARD_FAMILIES = {
    "title": ("方正小标宋简体", "标题、发文机关标志 (2号小标宋)"),
    "body": ("仿宋_GB2312", "正文 (3号仿宋)"),
    "heading": ("黑体", "一级标题、表头 (黑体)"),
    "kai": ("楷体_GB2312", "二级标题、签名 (楷体)"),
    "song": ("宋体", "页码 (4号宋体)"),
}
# Families that only stand in for the licensed fonts.
SUBSTITUTES = {"Noto Serif CJK SC", "AR PL UMing CN", "Noto Sans CJK SC", "AR PL UKai CN"}
CJK_PROBE = "控辍保学返校通知书〔〕"


def font_dir() -> Path | None:
    """The bureau's font folder: BAOXUE_FONT_DIR / settings().font_dir, else deploy/fonts/ if it has fonts."""
    raw = os.environ.get("BAOXUE_FONT_DIR")
    if not raw:
        try:
            from store.db import settings

            configured = settings().font_dir
        except Exception:  # settings unreadable: fall back to the shipped folder
            configured = None
        raw = str(configured) if configured else ""
    if raw:
        return Path(raw).expanduser().resolve()
    return DEPLOY_FONTS if _font_files(DEPLOY_FONTS) else None


def _font_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in FONT_SUFFIXES)


@lru_cache(maxsize=1)
def configure() -> Path:
    """Point FONTCONFIG_FILE at Baoxue's configuration (plus the font folder, if any). Once per process."""
    folder = font_dir()
    conf = FONTS_CONF
    if folder is not None:
        text = (
            '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">\n'
            "<fontconfig>\n"
            f"  <dir>{_xml(str(folder))}</dir>\n"
            f"  <include>{_xml(str(FONTS_CONF))}</include>\n"
            "</fontconfig>\n"
        )
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        conf = Path(tempfile.gettempdir()) / f"baoxue-fonts-{os.getuid() if hasattr(os, 'getuid') else 0}-{digest}.conf"
        if not conf.exists() or conf.read_text(encoding="utf-8") != text:
            tmp = conf.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(conf)
    os.environ["FONTCONFIG_FILE"] = str(conf)
    return conf


def _xml(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class Resolved:
    role: str
    requested: str
    family: str
    file: str
    licensed: bool


def resolve(requested: str, *, bold: bool = False) -> tuple[str, str] | None:
    """(family, file) fontconfig picks for ``requested`` under our configuration, or None if fc-match is missing."""
    fc_match = shutil.which("fc-match")
    if fc_match is None:
        return None
    pattern = f"{requested}:weight=bold" if bold else requested
    env = {**os.environ, "FONTCONFIG_FILE": str(configure())}
    try:
        out = subprocess.run(
            [fc_match, "-f", "%{family[0]}\t%{file}", f"{pattern}:lang=zh-cn"],
            capture_output=True, text=True, env=env, timeout=20, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    family, _, file = out.partition("\t")
    return family, file


@lru_cache(maxsize=1)
def font_plan() -> dict[str, Resolved]:
    """What each standard family resolves to here; ``licensed`` is False for the free substitutes."""
    plan = {}
    for role, (name, _) in STANDARD_FAMILIES.items():
        got = resolve(name)
        family, file = got if got else ("", "")
        plan[role] = Resolved(role, name, family, file, licensed=bool(family) and family not in SUBSTITUTES)
    return plan


def title_weight() -> int:
    """方正小标宋 is drawn heavy at weight 400; its Noto substitute needs its Bold face."""
    plan = font_plan().get("title")
    return 400 if plan is not None and plan.licensed else 700


def harfbuzz_subset_available() -> bool:
    """WeasyPrint subsets fonts with libharfbuzz-subset; without it, fontTools is ~40× slower on CJK."""
    if ctypes.util.find_library("harfbuzz-subset"):
        return True
    for name in ("libharfbuzz-subset.so.0", "libharfbuzz-subset.0.dylib", "libharfbuzz-subset-0.dll"):
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def check() -> list[str]:
    """Start-up check: a list of human-readable warnings (empty when all is well)."""
    warnings: list[str] = []
    if not harfbuzz_subset_available():
        warnings.append(
            "libharfbuzz-subset is missing: WeasyPrint falls back to fontTools to subset CJK fonts, "
            "about 40× slower per PDF (Debian: apt-get install libharfbuzz-subset0)"
        )
    conf = configure()
    if "weasyprint" in sys.modules and os.environ.get("FONTCONFIG_FILE") != str(conf):
        warnings.append("weasyprint was imported before documents.fonts.configure(): the font aliases are not active")
    folder = font_dir()
    explicit = os.environ.get("BAOXUE_FONT_DIR")
    if folder is not None and not folder.is_dir():
        warnings.append(f"font folder {folder} does not exist (BAOXUE_FONT_DIR / settings().font_dir)")
    elif folder is not None and explicit and not _font_files(folder):
        warnings.append(f"font folder {folder} holds no font files (.ttf/.otf/.ttc)")
    if shutil.which("fc-match") is None:
        warnings.append("fc-match not found (Debian: fontconfig): cannot verify which fonts the documents use")
        return warnings
    for role, resolved in font_plan().items():
        name, purpose = STANDARD_FAMILIES[role]
        if not resolved.family or not _covers_cjk(resolved.file):
            warnings.append(
                f"{name} ({purpose}) resolves to '{resolved.family or '?'}', which has no Chinese glyphs: "
                "install fonts-noto-cjk and fonts-arphic-uming, or put the licensed font into the font folder"
            )
    return warnings


def describe() -> list[str]:
    """One line per standard family: what it resolves to (for `baoxue doc fonts`)."""
    lines = []
    for role, r in font_plan().items():
        name, purpose = STANDARD_FAMILIES[role]
        kind = "licensed" if r.licensed else "substitute"
        lines.append(f"{name:<10} {purpose:<24} → {r.family or '?'} ({kind}) {r.file}")
    return lines


@lru_cache(maxsize=32)
def _covers_cjk(path: str) -> bool:
    if not path:
        return False
    try:
        cmap = font_cmap(path)
    except Exception:
        return False
    return all(ord(ch) in cmap for ch in CJK_PROBE)


@lru_cache(maxsize=32)
def font_cmap(path: str, family: str | None = None) -> frozenset[int]:
    """Code points a font file maps (for a collection: the face named ``family``, else the first)."""
    from fontTools.ttLib import TTCollection, TTFont

    if path.lower().endswith((".ttc", ".otc")):
        fonts = TTCollection(path, lazy=True).fonts
        chosen = fonts[0]
        if family:
            for f in fonts:
                names = {n.toUnicode() for n in f["name"].names if n.nameID in (1, 4, 16)}
                if family in names or any(family.replace("-", " ") == n for n in names):
                    chosen = f
                    break
        return frozenset(chosen.getBestCmap())
    return frozenset(TTFont(path, lazy=True).getBestCmap())
