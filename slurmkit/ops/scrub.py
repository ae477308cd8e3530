"""Secret scrubbing (pure): every text that goes into a support bundle passes through :func:`scrub`, which
replaces what :data:`SECRET_PATTERNS` matches; a text that still holds the cluster's munge key bytes (raw or
base64) is replaced whole."""

from __future__ import annotations

import base64
import re

REDACTED = "[REDACTED]"
#: (name, pattern, replacement). Applied in order to every text that goes into a support bundle.
SECRET_PATTERNS: list[tuple[str, re.Pattern[str], str]] = [
    ("private key block", re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)",
                                     re.S), "[REDACTED KEY MATERIAL]"),
    ("putty private key", re.compile(r"PuTTY-User-Key-File-\d:.*?(?:Private-MAC:[^\n]*|\Z)", re.S),
     "[REDACTED KEY MATERIAL]"),
    ("credentials in a URL", re.compile(r"(?P<keep>\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+(?=@)", re.I),
     r"\g<keep>" + REDACTED),
    ("bearer token", re.compile(r"(?P<keep>\b(?:Bearer|token)\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\g<keep>" + REDACTED),
    ("key=value secret", re.compile(
        r"(?P<keep>\b[\w.-]*(?:password|passwd|passphrase|secret|token|api[_-]?key|access[_-]?key|credentials?|"
        r"StoragePass)\b\"?\s*[:=]\s*)(?P<q>[\"']?)(?!\[REDACTED)[^\s\"',;]+", re.I), r"\g<keep>\g<q>" + REDACTED),
    ("GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), REDACTED),
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), REDACTED),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
    ("Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"), REDACTED),
    ("JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b"), REDACTED),
]


def scrub(text: str, munge_key: bytes | None = None) -> str:
    """``text`` with every SECRET_PATTERNS match replaced; a text holding the munge key is replaced whole."""
    if munge_key and (munge_key.decode("latin-1") in text or base64.b64encode(munge_key).decode() in text):
        return "[REDACTED: this text contained the cluster's munge key]\n"
    for _, pattern, repl in SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    return text
