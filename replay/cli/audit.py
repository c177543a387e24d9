"""The checks of `replay verify`, one store file at a time (no click here).

Owns walking the store root (every file, so stray ones are seen: only interaction files in
`<namespace>/<fp[:2]>/`, `*.dict` at the root and dot-named files belong), and, per file:
Git LFS pointers, decoding (corrupt files, unknown format versions), the name against the
content (fingerprint, occurrence), the fingerprint recomputed from the stored request, and
the credential scan. The scan runs `replay.redact.scan` over the raw file, every string of
the decompressed document (so a finding names its field), base64 fields decoded, and
content-encoded response bodies decoded; the rules file's own redaction patterns are
searched too, and its `verify_allow` patterns excuse a finding whose secret they match.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replay.canonical import decode_content
from replay.codec import decompress, from_document
from replay.errors import CorruptEntry, FormatVersionError
from replay.fingerprint import FINGERPRINT_VERSION, FingerprintPolicy, fingerprint
from replay.models import Interaction
from replay.redact import USER_PLACEHOLDER, SecretFinding, scan, unescape_ascii
from replay.rules_schema import RuleSettings
from replay.store import parse_entry_name

LFS_POINTER = b"version https://git-lfs.github.com/spec/"
_SHARD = re.compile(r"[0-9a-f]{2}")
_BASE64ISH = re.compile(r"[A-Za-z0-9+/_-]{24,}={0,2}")


@dataclass(frozen=True, slots=True)
class Finding:
    path: Path
    kind: str
    """corrupt, format-version, lfs-pointer, stray-file, name-mismatch, fingerprint-version,
    fingerprint-mismatch, or a secret's kind (openai-key, aws-key-id, user-pattern, ...)."""
    field: str
    message: str
    secret: bool = False


def store_files(root: Path, start: Path | None = None) -> Iterator[tuple[Path, bool]]:
    """Every file under `start` (default: `root`), sorted, lazily, and whether it is an
    interaction file; dot-named files and directories and root-level `*.dict` are left out."""
    for top, dirs, files in os.walk(start or root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        here = Path(top)
        for name in sorted(files):
            if name.startswith(".") or (here == root and name.endswith(".dict")):
                continue
            yield here / name, _is_interaction(root, here, name)


def _is_interaction(root: Path, here: Path, name: str) -> bool:
    parsed = parse_entry_name(name)
    return (
        parsed is not None
        and here.parent != root
        and here != root
        and _SHARD.fullmatch(here.name) is not None
        and parsed[0].startswith(here.name)
    )


class Auditor:
    """Checks files against one set of settings (the rules file's, or the defaults)."""

    def __init__(self, settings: RuleSettings | None = None) -> None:
        self.settings = settings or RuleSettings()

    def check(self, path: Path, is_interaction: bool) -> list[Finding]:
        try:
            data = path.read_bytes() if not path.is_symlink() else None
        except OSError as e:
            return [Finding(path, "corrupt", "", f"cannot read: {e.strerror or e}")]
        if data is None:
            return [Finding(path, "corrupt", "", "a symlink, never read as a cassette")]
        if data.startswith(LFS_POINTER):
            return [Finding(path, "lfs-pointer", "", "a Git LFS pointer: run `git lfs pull`")]
        if not is_interaction:
            stray = Finding(path, "stray-file", "", "not a cassette file, a *.dict or a dotfile")
            return [stray, *self._secrets(path, data, "(file)")]
        return self._interaction(path, data)

    def _interaction(self, path: Path, data: bytes) -> list[Finding]:
        found = self._interaction_checks(path, data)
        # A secret stored verbatim also shows in the compressed bytes: name its field only.
        named = {(f.kind, f.message) for f in found}
        raw = [
            f
            for f in self._secrets(path, data, "(compressed file)")
            if (f.kind, f.message) not in named
        ]
        return raw + found

    def _interaction_checks(self, path: Path, data: bytes) -> list[Finding]:
        findings: list[Finding] = []
        try:
            raw = decompress(data, str(path))
            document = json.loads(raw)
        except CorruptEntry as e:
            return [*findings, Finding(path, "corrupt", "", e.reason)]
        except ValueError as e:
            return [*findings, Finding(path, "corrupt", "", f"not JSON: {e}")]
        if self._suspect(path, raw, document):  # most files are clean: one pass decides
            findings += self._document_secrets(path, document)
        try:
            interaction = from_document(document, str(path))
        except FormatVersionError as e:
            return [*findings, Finding(path, "format-version", "version", e.reason)]
        except CorruptEntry as e:
            return [*findings, Finding(path, "corrupt", "", e.reason)]
        findings += self._body_secrets(path, interaction)
        return findings + self._names(path, interaction)

    def _names(self, path: Path, i: Interaction) -> list[Finding]:
        parsed = parse_entry_name(path.name)
        assert parsed is not None
        fp, occurrence = parsed
        out = []
        if i.key.fingerprint != fp:
            msg = f"the file holds fingerprint {i.key.fingerprint[:12]}…, its name says {fp[:12]}…"
            out.append(Finding(path, "name-mismatch", "key.fingerprint", msg))
        if i.key.occurrence != occurrence:
            msg = f"the file holds occurrence {i.key.occurrence}, its name says {occurrence}"
            out.append(Finding(path, "name-mismatch", "key.occurrence", msg))
        if i.fingerprint_version != FINGERPRINT_VERSION:
            msg = (
                f"fingerprint version {i.fingerprint_version}; this release computes "
                f"{FINGERPRINT_VERSION} (record it again)"
            )
            out.append(Finding(path, "fingerprint-version", "fingerprint.version", msg))
        else:
            s = self.settings
            policy = FingerprintPolicy(ignore=i.ignore, normalize=s.normalize, redact=s.redact)
            actual = fingerprint(i.request, policy).hex
            if actual != i.key.fingerprint:
                msg = f"the stored request hashes to {actual[:12]}…, not {i.key.fingerprint[:12]}…"
                out.append(Finding(path, "fingerprint-mismatch", "request", msg))
        return out

    # --- secrets --------------------------------------------------------------------------

    def _secrets(self, path: Path, data: bytes, where: str) -> list[Finding]:
        out = []
        for finding in scan(data):
            if not self._allowed(_secret_of(data, finding)):
                msg = f"{finding.kind} {finding.excerpt}"
                out.append(Finding(path, finding.kind, where, msg, secret=True))
        text = data.decode("utf-8", "replace")
        for pattern in self.settings.redact:
            for match in pattern.finditer(text):
                if match.group() != USER_PLACEHOLDER and not self._allowed(match.group()):
                    shown = f"{match.group()[:4]}…({len(match.group())} chars)"
                    msg = f"matches the rules file's redact pattern {pattern.pattern!r}: {shown}"
                    out.append(Finding(path, "user-pattern", where, msg, secret=True))
        return out

    def _allowed(self, secret: str) -> bool:
        return any(p.search(secret) for p in self.settings.verify_allow)

    def _suspect(self, path: Path, raw: bytes, document: object) -> bool:
        """Whether the document may hold a secret: the whole text, its base64 fields and
        base64-looking tokens scanned at once (the per-field walk then names the fields)."""
        if self._secrets(path, raw, ""):
            return True
        for value in _base64_fields(document):
            decoded = _b64(value)
            if decoded is not None and self._secrets(path, decoded, ""):
                return True
        text = raw.decode("utf-8", "replace")
        for token in _BASE64ISH.findall(text):
            decoded = _b64(token)
            if decoded is not None and self._secrets(path, decoded, ""):
                return True
        return False

    def _document_secrets(self, path: Path, document: object) -> list[Finding]:
        out: list[Finding] = []
        for where, value in _strings(document, ""):
            out += self._secrets(path, value.encode("utf-8", "surrogateescape"), where)
            if where.endswith(".base64"):
                decoded = _b64(value)
                if decoded is not None:
                    out += self._secrets(path, decoded, where + " (decoded)")
            else:
                for token in _BASE64ISH.findall(value):
                    decoded = _b64(token)
                    if decoded is not None:
                        out += self._secrets(path, decoded, where + " (base64-decoded)")
        return _unique(out)

    def _body_secrets(self, path: Path, i: Interaction) -> list[Finding]:
        coding = i.response.header("content-encoding")
        if not coding or coding.strip().lower() == "identity" or not i.chunks:
            return []
        try:
            body = decode_content(i.body, coding)
        except Exception:
            return []
        return self._secrets(path, body, f"response.body ({coding}-decoded)")


def _views(data: bytes) -> Iterator[bytes]:
    """The views `scan` may have found a secret in: raw, content-decoded, unescaped."""
    yield data
    yield unescape_ascii(data)
    coding = {b"\x1f\x8b": "gzip", b"\x28\xb5": "zstd"}.get(data[:2])
    if coding:
        try:
            decoded = decode_content(data, coding)
        except Exception:
            return
        yield decoded
        yield unescape_ascii(decoded)


def _secret_of(data: bytes, finding: SecretFinding) -> str:
    """The secret text of a finding (for the allow-list only; never printed), found again in
    the view that `scan` names by its offset and checked against its hash."""
    for view in _views(data):
        candidate = view[finding.offset : finding.offset + finding.length]
        if hashlib.sha256(candidate).hexdigest()[:16] == finding.secret_hash:
            return candidate.decode("ascii", "replace")
    return ""


def _base64_fields(document: object) -> Iterator[str]:
    """The `base64` values of a version 1 document: the request body and response chunks."""
    if not isinstance(document, dict):
        return
    request, response = document.get("request"), document.get("response")
    parts = [request.get("body")] if isinstance(request, dict) else []
    if isinstance(response, dict) and isinstance(response.get("chunks"), list):
        parts += response["chunks"]
    for part in parts:
        if isinstance(part, dict) and isinstance(part.get("base64"), str):
            yield part["base64"]


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _strings(item, f"{where}[{n}]")


def _b64(text: str) -> bytes | None:
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def _unique(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for f in findings:
        key = (f.kind, f.field, f.message)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out
