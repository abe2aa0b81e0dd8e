"""Sticky sessions during a canary, without the drift of Flagger #1532.

Pinning a client to the release it first got is easy; the trap is that the share of requests then
follows whoever happens to be pinned, not the weight (Flagger's sticky canaries drifted until the
canary took everything). Here the share is measured and corrected, per routing table:
- a request without a pin (no cookie, or a header value not seen yet) goes to the release furthest
  below its weight in the requests counted so far under this table (largest deficit first), and is
  pinned there: `Set-Cookie` for a cookie, a remembered header value for a header;
- a pinned request goes where it is pinned, unless that release already holds more than its weight
  plus `TOLERANCE_POINTS` of this table's requests; then that client is moved (re-pinned) to the
  release furthest below its weight. Stickiness gives way before the share does.
A pin to a release without weight now (an aborted canary, a promoted one's predecessor) is ignored and
replaced. Every new table (each canary step) counts afresh, so the share tracks each step's weight.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["MAX_REMEMBERED", "TOLERANCE_POINTS", "Pin", "StickyRule", "StickyTable"]

TOLERANCE_POINTS = 2.0
"""How far above its weight (in points of this table's requests) a release may be before pinned
clients are moved off it."""
_WARMUP = 50
"""Requests counted under a table before pinned clients may be moved: a few requests say little."""
MAX_REMEMBERED = 100_000
"""Header values remembered (least recently seen forgotten first): a header's pins cost memory."""


@dataclass(frozen=True, slots=True)
class StickyRule:
    """Pin by a cookie the proxy sets, or by the value of a request header the client sends."""

    cookie: str | None = None
    header: str | None = None

    @classmethod
    def from_dict(cls, doc: Mapping[str, str | None] | None) -> StickyRule | None:
        if not doc:
            return None
        return cls(doc.get("cookie"), doc.get("header"))

    def to_dict(self) -> dict[str, str | None]:
        return {"cookie": self.cookie, "header": self.header}


@dataclass(frozen=True, slots=True)
class Pin:
    """Where one request goes, and the header line to add to its answer (b"" when none)."""

    version: str
    set_cookie: bytes = b""


class StickyTable:
    """One routing table's sticky choices and counts (used on the data plane's thread only)."""

    __slots__ = ("_cookie", "_counts", "_header", "_remembered", "_shares", "_total")

    def __init__(self, weights: Mapping[str, int], rule: StickyRule) -> None:
        total = sum(w for w in weights.values() if w > 0)
        self._shares = {v: w / total for v, w in weights.items() if w > 0} if total else {}
        self._counts = dict.fromkeys(self._shares, 0)
        self._total = 0
        self._cookie = rule.cookie.encode() if rule.cookie else None
        self._header = rule.header.lower().encode() if rule.header else None
        self._remembered: OrderedDict[bytes, str] = OrderedDict()

    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    def carry_pins(self, previous: StickyTable | None) -> None:
        """Keep the header values the table before remembered (their releases may still have weight)."""
        if previous is not None:
            self._remembered = previous._remembered

    def choose(self, headers: Sequence[tuple[bytes, bytes]]) -> Pin | None:
        """The release for a request with `headers`; None when no release has weight."""
        if not self._shares:
            return None
        key = self._key(headers)
        pinned = self._pinned(headers, key)
        if pinned in self._shares and not self._over(pinned):
            self._count(pinned)
            return Pin(pinned)
        version = max(self._shares, key=self._deficit)
        self._count(version)
        if self._cookie is not None:
            return Pin(
                version, b"Set-Cookie: %s=%s; Path=/; HttpOnly; SameSite=Lax\r\n" % (self._cookie, version.encode())
            )
        if key is not None:
            self._remember(key, version)
        return Pin(version)

    def _key(self, headers: Sequence[tuple[bytes, bytes]]) -> bytes | None:
        if self._header is None:
            return None
        for name, value in headers:
            if name.lower() == self._header:
                return value
        return None

    def _pinned(self, headers: Sequence[tuple[bytes, bytes]], key: bytes | None) -> str | None:
        if key is not None:
            version = self._remembered.get(key)
            if version is not None:
                self._remembered.move_to_end(key)
            return version
        if self._cookie is None:
            return None
        prefix = self._cookie + b"="
        for name, value in headers:
            if name.lower() != b"cookie":
                continue
            for part in value.split(b";"):
                part = part.strip()
                if part.startswith(prefix):
                    return part[len(prefix) :].decode("ascii", "replace")
        return None

    def _over(self, version: str) -> bool:
        if self._total < _WARMUP:
            return False
        return 100 * (self._counts[version] + 1) / (self._total + 1) > 100 * self._shares[version] + TOLERANCE_POINTS

    def _deficit(self, version: str) -> float:
        return self._shares[version] * (self._total + 1) - self._counts[version]

    def _count(self, version: str) -> None:
        self._counts[version] += 1
        self._total += 1

    def _remember(self, key: bytes, version: str) -> None:
        self._remembered[key] = version
        self._remembered.move_to_end(key)
        while len(self._remembered) > MAX_REMEMBERED:
            self._remembered.popitem(last=False)
