"""Endpoint overrides (``--endpoint``, tests, local simulators) and URL text that is safe to log."""

from __future__ import annotations

from yarl import URL

__all__ = ["loggable_url", "with_endpoint"]


def with_endpoint(url: str, endpoint: str | None) -> str:
    """``url`` with its scheme, host and port taken from ``endpoint``.

    An endpoint without a path (``ws://127.0.0.1:8765``) keeps ``url``'s path and query, so a local
    simulator serves the venue's own paths; an endpoint with a path replaces the whole URL.
    """
    if not endpoint:
        return url
    target = URL(endpoint)
    if not target.scheme or not target.host:
        raise ValueError(f"endpoint override must be an absolute URL like ws://127.0.0.1:8765, got {endpoint!r}")
    if target.path not in ("", "/") or target.query_string:
        return endpoint
    source = URL(url)
    return str(source.with_scheme(target.scheme).with_host(target.host).with_port(target.explicit_port))


def loggable_url(url: str) -> str:
    """Scheme, host and port only: paths and queries can hold listen keys, tokens and signatures."""
    parsed = URL(url)
    if not parsed.host:
        return "<relative url>"
    port = f":{parsed.explicit_port}" if parsed.explicit_port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"
