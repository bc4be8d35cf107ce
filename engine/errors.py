"""The exception tree of syncform.

Whether an error may be retried is part of its type, never parsed from a message::

    SyncformError                     base of everything syncform raises on purpose
    ├── UsageError                    bad command-line input (exit 1)
    ├── SpecError                     specs failed to load or validate; carries Diagnostics
    ├── StateError                    the state store refused or is inconsistent
    │   ├── LockedError               another process holds the lock (names the holder)
    │   ├── StalePlanError            a saved plan was made against another state serial / lineage
    │   ├── MigrationError            the state schema is newer than this syncform
    │   └── TransientStateError       the state server is unreachable or a transaction collided: retry
    ├── SecretError                   a secret reference cannot be resolved (never shows the value)
    ├── AppError                      an app answered with an error
    │   ├── TransientAppError         worth retrying: 429, 5xx, timeouts, connection resets
    │   │   └── RateLimitedError      429; carries retry_after when the app sent one
    │   └── TerminalAppError          retrying will not help: 4xx, malformed answers, bad credentials
    │       ├── AuthError             the token endpoint refused the refresh token
    │       └── ProtocolError         the app's answer did not have the documented shape
    └── SyncError                     a sync run stopped before the end
        └── GuardError                a guard (max_deletes, empty read) halted the run

Errors raised by libraries (httpx, sqlite3, yaml) are translated once, at the edge that calls them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class SyncformError(Exception):
    """Base of every error syncform raises on purpose. ``str(err)`` is safe to show a user."""

    transient: bool = False


class UsageError(SyncformError):
    pass


@dataclass(frozen=True, slots=True, order=True)
class Diagnostic:
    """One problem in a user's spec, pointing at the offending token."""

    file: str
    line: int
    col: int
    severity: str  # "error" | "warning"
    message: str
    code: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }


class SpecError(SyncformError):
    """Specs failed to load or validate. ``diagnostics`` holds every problem, sorted."""

    def __init__(self, diagnostics: "list[Diagnostic] | tuple[Diagnostic, ...]"):
        self.diagnostics = tuple(sorted(diagnostics))
        errors = [d for d in self.diagnostics if d.severity == "error"]
        super().__init__("\n".join(str(d) for d in self.diagnostics) or "invalid spec")
        self.error_count = len(errors)


class StateError(SyncformError):
    pass


class LockedError(StateError):
    transient = True

    def __init__(self, message: str, holder: dict[str, Any] | None = None):
        super().__init__(message)
        self.holder = holder or {}


class StalePlanError(StateError):
    pass


class MigrationError(StateError):
    pass


class TransientStateError(StateError):
    """The state's server could not be reached, the connection dropped, or a transaction collided
    (serialization failure, deadlock): running the operation again may succeed."""

    transient = True


class SecretError(SyncformError):
    pass


class AppError(SyncformError):
    """An app answered with an error. ``code`` is the app's own code (INVALID_DATA, ...)."""

    def __init__(self, message: str, *, app: str = "", code: str = "", status: int | None = None,
                 details: dict[str, Any] | None = None):
        super().__init__(message)
        self.app = app
        self.code = code
        self.status = status
        self.details = details or {}


class TransientAppError(AppError):
    transient = True


class RateLimitedError(TransientAppError):
    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class TerminalAppError(AppError):
    pass


class AuthError(TerminalAppError):
    pass


class ProtocolError(TerminalAppError):
    pass


class SyncError(SyncformError):
    pass


class GuardError(SyncError):
    pass


def did_you_mean(name: str, choices: "list[str] | tuple[str, ...] | set[str]") -> str:
    """`` (did you mean "x"?)`` for the closest choice, else the list of valid choices."""
    import difflib

    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    if close:
        return f'; did you mean "{close[0]}"?'
    if not choices:
        return ""
    shown = ", ".join(choices[:12]) + (", …" if len(choices) > 12 else "")
    return f"; valid: {shown}"
