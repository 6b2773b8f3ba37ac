"""Tracking URIs that carry a user and password (``http://user:password@host:port``): usable, never shown."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit


def redact(uri: str) -> str:
    """``http://user:password@host:port/path`` as ``http://***@host:port/path``; other URIs unchanged."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def split_credentials(uri: str) -> tuple[str, tuple[str, str] | None]:
    """(the URI without its user and password, (user, password) or None)."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), (unquote(user), unquote(password))
