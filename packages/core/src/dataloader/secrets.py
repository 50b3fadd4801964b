"""Secrets: what counts as one, and the one place that masks them.

A secret is

- any value of a key whose name says so (:func:`is_secret_name`: ``password``, ``token``,
  ``private_key``, ``api_key``, ``credentials`` ...), and every value nested under such a key;
- the password inside a URL (``postgresql://user:PASSWORD@host/db``, also with ``/``, ``@`` or
  ``%`` in it) and the value of a secret-named query parameter (``?password=``, ``?sslpassword=``);
- the value of a secret-named ``key=value`` pair in a connection string (``host=x password=y``);
- any value a template read from an environment variable or ``--var`` of a secret-looking name.

The recipe loader finds them (:func:`find_secrets`) and remembers them (:func:`remember`) before it
validates anything, so that no later error can quote one. Everything that leaves the process masks
them *by value*, whatever the text around them: the CLI wraps stdout and stderr
(:func:`masked_output`), and the run history, the dead-letter files and the hook trace call
:func:`mask` before they write. A value is masked in each spelling a message may quote it in
(as given, percent-encoded or decoded, ``repr``/JSON-escaped) and, for key material, line by line.

Values shorter than :data:`MIN_LENGTH` characters are masked where they stand (``render`` masks the
key) but not searched for in free text: hiding every ``abc`` in every message would hide nothing.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote, unquote

MASK = "********"
MIN_LENGTH = 4

# Words that make a key or variable name secret wherever they appear in it.
_SECRET_WORDS = frozenset(
    {"password", "passwd", "pwd", "passphrase", "secret", "secrets", "token", "tokens", "credential", "credentials", "apikey"}
)
# ``key`` is secret after these words, or alone (S3's ``key``); ``merge_key``, ``primary_key`` are not.
_KEY_QUALIFIERS = frozenset(
    {"private", "api", "access", "secret", "account", "encryption", "signing", "master", "client", "ssh", "sas", "storage", "shared", "auth", "license"}
)
# A name ending in one of these says where a secret is, or something about it, not the secret
# itself (``password_file``, ``token_url``, ``access_key_id``, ``token_count``).
_NOT_SECRET_LAST_WORDS = frozenset(
    {"file", "path", "dir", "directory", "env", "var", "name", "id", "url", "uri", "column", "field", "count", "size", "length", "type", "mode", "ttl", "expiry", "expires"}
)


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def is_secret_name(name: str) -> bool:
    """Whether a key or variable name says its value is a secret.

    ``password``, ``DB_PASSWORD``, ``sslpassword``, ``private_key_passphrase``, ``apiKey``,
    ``GITHUB_TOKEN``, ``key`` (S3) and ``ssh_key`` are; ``KEYSPACE_DIR``, ``merge_keys``,
    ``primary_key``, ``password_file``, ``token_env`` and ``PWD`` (the working directory) are not.
    """
    words = _words(name)
    if not words or words == ["pwd"]:
        return False
    if words[-1] in _NOT_SECRET_LAST_WORDS and len(words) > 1:
        return False
    for index, word in enumerate(words):
        if word in _SECRET_WORDS or (word.endswith("password") and len(word) <= 12):
            return True
        if word == "key" and (len(words) == 1 or (index > 0 and words[index - 1] in _KEY_QUALIFIERS)):
            return True
    return False


# -- finding secrets in recipe values -----------------------------------------------------
_URL_START = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_PAIR = re.compile(r"""(?<![\w.-])([A-Za-z_][\w.-]*)\s*=\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s;&'"]+)""")


def secrets_in_text(text: str) -> list[str]:
    """The passwords spelt inside ``text``: URL user info, secret query parameters, ``k=v`` pairs."""
    found: list[str] = []
    for match in _URL_START.finditer(text):
        rest = re.split(r"[\s'\"<>]", text[match.end() :], maxsplit=1)[0]
        authority = rest.split("?", 1)[0].split("#", 1)[0]
        at = authority.rfind("@")
        if at > 0:
            _user, colon, password = authority[:at].partition(":")
            if colon and password:
                found.append(password)
                # A parser that splits an unencoded password at / @ : (libpq does) quotes a piece
                # of it as a host or a port: each piece is secret too.
                # (A piece that is a port number is left alone: ``http://host:8080/a@b`` has none.)
                pieces = re.split(r"[/@:]", password)
                found.extend(p for p in pieces if p != password and not (p.isdigit() and len(p) <= 5))
    for match in _PAIR.finditer(text):
        if is_secret_name(match.group(1)):
            value = match.group(2)
            if value[:1] in ("'", '"') and value[-1:] == value[:1]:
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            if value:
                found.append(value)
    return found


def find_secrets(tree: Any, *, under_secret: bool = False) -> set[str]:
    """Every secret value in a recipe tree (see the module docstring for what counts)."""
    found: set[str] = set()
    if isinstance(tree, dict):
        for key, value in tree.items():
            found |= find_secrets(value, under_secret=under_secret or is_secret_name(str(key)))
    elif isinstance(tree, (list, tuple)):
        for value in tree:
            found |= find_secrets(value, under_secret=under_secret)
    elif isinstance(tree, str):
        if under_secret and tree:
            found.add(tree)
        found.update(secrets_in_text(tree))
    elif under_secret and isinstance(tree, (int, float)) and not isinstance(tree, bool):
        found.add(str(tree))
    return found


# -- the values this process knows ---------------------------------------------------------
class _Known:
    """The secret values seen so far, and the pattern that finds any spelling of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str]) -> None:
        new = {v for v in values if isinstance(v, str) and v.strip() and set(v) != {"*"}}
        with self._lock:
            if not new <= self.values:
                self.values |= new
                self._pattern = None

    def pattern(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self.values:
                spellings = {s for value in self.values for s in _spellings(value) if len(s) >= MIN_LENGTH}
                if spellings:
                    ordered = sorted(spellings, key=len, reverse=True)
                    self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
            return self._pattern


def _spellings(value: str) -> set[str]:
    """Each way a message may quote ``value``: as given or stripped, percent-encoded or decoded,
    escaped for a libpq string, and each of those again inside a ``repr`` or JSON string."""
    forms = {value, value.strip(), quote(value, safe=""), quote(value)}
    forms.add(value.replace("\\", "\\\\").replace("'", "\\'"))
    if "%" in value:
        forms.add(unquote(value))
    if "\n" in value:  # key material: any one line of it is still secret
        forms.update(line.strip() for line in value.splitlines() if len(line.strip()) >= 8)
    out = set(forms)
    for form in forms:
        out.update((repr(form)[1:-1], json.dumps(form)[1:-1], json.dumps(form, ensure_ascii=False)[1:-1]))
    return out


_known = _Known()


def remember(values: Iterable[str]) -> None:
    """Add secret values to the ones every output of this process masks."""
    _known.add(values)


def known() -> frozenset[str]:
    return frozenset(_known.values)


@contextlib.contextmanager
def session() -> Iterator[None]:
    """Forget, at the end of the block, the secrets learnt inside it (one CLI command, one test)."""
    with _known._lock:
        before = set(_known.values)
    try:
        yield
    finally:
        with _known._lock:
            _known.values = before
            _known._pattern = None


_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s/:@'\"]*:)([^\s'\"]*)@(?=[^\s@'\"]*(?:[/?#\s'\"]|$))")
_PAIR_VALUE = re.compile(r"""(?<![\w.-])([A-Za-z_][\w.-]*\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s;&'"]+)""")


def mask(text: str, *, structural: bool = True) -> str:
    """``text`` with every known secret, in any spelling, replaced by ``********``.

    ``structural`` also masks passwords spelt in URLs and secret ``key=value`` pairs that were never
    remembered (a message built from a connection string this process did not load).
    """
    if not isinstance(text, str) or not text:
        return text
    pattern = _known.pattern()
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if structural:
        if "://" in text:
            text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}@", text)
        if "=" in text:
            text = _PAIR_VALUE.sub(lambda m: m.group(1) + MASK if _pair_is_secret(m) else m.group(0), text)
    return text


# ``--var api_token=VALUE`` in a hint is a placeholder, not a password.
_PLACEHOLDER = re.compile(r"[A-Z][A-Z_]*|\.\.\.|<.*|\*+")


def _pair_is_secret(match: re.Match[str]) -> bool:
    value = match.group(2).rstrip(",.;:)]}") or match.group(2)
    return is_secret_name(match.group(1).rstrip(" =")) and not _PLACEHOLDER.fullmatch(value)


def mask_tree(tree: Any, secret_paths: Iterable[str] = (), _path: str = "") -> Any:
    """A copy of a recipe tree with every secret masked: secret-named keys and paths wholly, the
    rest by value (so ``dsn: host=x password=y`` keeps its host)."""
    paths = secret_paths if isinstance(secret_paths, (set, frozenset)) else set(secret_paths)
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            path = f"{_path}.{key}" if _path else str(key)
            if path in paths or (is_secret_name(str(key)) and _is_scalar(value)):
                out[key] = MASK
            elif is_secret_name(str(key)):
                out[key] = _mask_all(value)
            else:
                out[key] = mask_tree(value, paths, path)
        return out
    if isinstance(tree, list):
        return [MASK if f"{_path}.{i}" in paths else mask_tree(v, paths, f"{_path}.{i}") for i, v in enumerate(tree)]
    if isinstance(tree, str):
        return mask(tree)
    return tree


def _mask_all(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _mask_all(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_mask_all(v) for v in tree]
    return MASK if _is_scalar(tree) else tree


def _is_scalar(value: Any) -> bool:
    return value is not None and not isinstance(value, (dict, list, bool))


# -- the process's own output --------------------------------------------------------------
class MaskedStream:
    """A text stream that masks every write before passing it on.

    It hides the wrapped stream's ``buffer`` on purpose: click writes bytes to a text stream's
    buffer when it distrusts the encoding, which would go around the mask.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if isinstance(text, str):
            self._stream.write(mask(text))
            return len(text)
        return self._stream.write(text)  # bytes: the wrapped stream raises, as click expects

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return bool(getattr(self._stream, "isatty", lambda: False)())

    def fileno(self) -> int:
        return self._stream.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:
        return getattr(self._stream, "errors", None)

    def __getattr__(self, name: str) -> Any:
        if name == "buffer":
            raise AttributeError(name)
        return getattr(self._stream, name)


@contextlib.contextmanager
def masked_output() -> Iterator[None]:
    """Mask stdout and stderr, and forget this block's secrets at its end (one CLI command)."""
    out, err = sys.stdout, sys.stderr
    with session():
        sys.stdout, sys.stderr = MaskedStream(out), MaskedStream(err)
        try:
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            sys.stdout, sys.stderr = out, err


__all__ = [
    "MASK",
    "MIN_LENGTH",
    "MaskedStream",
    "find_secrets",
    "is_secret_name",
    "known",
    "mask",
    "mask_tree",
    "masked_output",
    "remember",
    "secrets_in_text",
    "session",
]
