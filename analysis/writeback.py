"""Put a calibrated threshold where the pipeline reads it: a config's match.threshold or a gallery.

The config is edited as text so that its comments and layout survive; the result is parsed back
and must differ from the original in match.threshold only, else it is rewritten from the data.
"""

from __future__ import annotations

import copy
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from bus.config import parse_config
from bus.errors import FacestreamError
from match.gallery import Gallery

_MATCH = re.compile(r"^match\s*:\s*(#.*)?$")
_CHILD = re.compile(r"^(\s+)\S")


def _format(value: float) -> str:
    return repr(float(value))  # shortest text that reads back as exactly this float


def _edit_text(text: str, value: float) -> str | None:
    """The text with match.threshold set, or None when the layout is not a plain block mapping."""
    lines = text.splitlines(keepends=True)
    start = next((n for n, ln in enumerate(lines) if _MATCH.match(ln.rstrip("\r\n"))), None)
    if start is None:
        return None
    indent: str | None = None
    end = start + 1
    while end < len(lines):
        ln = lines[end].rstrip("\r\n")
        if ln.strip() and not ln.lstrip().startswith("#"):
            m = _CHILD.match(ln)
            if m is None:
                break  # the next top-level key
            indent = indent or m.group(1)
        end += 1
    if indent is None:
        return None
    key = re.compile(rf"^{re.escape(indent)}threshold\s*:[^#\r\n]*?(\s+#[^\r\n]*)?(\r?\n)?$")
    for n in range(start + 1, end):
        m = key.match(lines[n])
        if m:
            lines[n] = f"{indent}threshold: {_format(value)}{m.group(1) or ''}{m.group(2) or ''}"
            return "".join(lines)
    newline = "\r\n" if lines[start].endswith("\r\n") else "\n"
    if not lines[start].endswith(("\n", "\r")):
        lines[start] += newline
    lines.insert(start + 1, f"{indent}threshold: {_format(value)}{newline}")
    return "".join(lines)


def _atomic_write(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise FacestreamError(f"cannot write {path}: {exc.strerror or exc}") from exc


def check_config_target(path: Path) -> None:
    """Refuse, before any work, a config that a threshold could not be written into."""
    _config_with(Path(path), 0.5)


def check_gallery_target(path: Path) -> None:
    """Refuse, before any work, a gallery that is missing or not a gallery."""
    Gallery.load(Path(path))


def _config_with(path: Path, value: float) -> tuple[str, dict[str, Any]]:
    """The config's text and its data with match.threshold set, checked as the pipeline would."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise FacestreamError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FacestreamError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("match"), dict):
        raise FacestreamError(f"{path} has no 'match:' section to hold the threshold")
    wanted: dict[str, Any] = copy.deepcopy(data)
    wanted["match"]["threshold"] = float(value)
    parse_config(wanted, str(path))  # refuse to write a config the pipeline would reject
    return text, wanted


def write_config_threshold(path: Path, value: float) -> bool:
    """Set match.threshold in a YAML config, leaving every other key as it was.

    Returns True when the comments and layout were kept (text edit), False when the file had to
    be rewritten from its data (e.g. a flow-style `match: {...}`).
    """
    path = Path(path)
    text, wanted = _config_with(path, value)
    edited = _edit_text(text, value)
    kept = False
    if edited is not None:
        try:
            kept = yaml.safe_load(edited) == wanted
        except yaml.YAMLError:
            kept = False
    _atomic_write(path, edited if kept and edited is not None else yaml.safe_dump(wanted, sort_keys=False))
    return kept


def write_gallery_threshold(path: Path, value: float, model_id: str) -> Gallery:
    """Store the threshold in a gallery built with the same model as the calibration."""
    gallery = Gallery.load(Path(path), expect_model_id=model_id)
    gallery.set_threshold(value)
    gallery.save(Path(path))
    return gallery
