"""The desired model: what a user's specs say, normalised, immutable.

Produced by ``engine.spec.load_workspace`` (loading + validation) and read by the plan (diff against
the deployed model) and by the sync engine. Every object carries the ``Mark`` of the YAML node it
came from, so that later errors point at the user's source. Collections are tuples.

Normalisation done by the loader (so that consumers never repeat it):
- defaults filled in: ``direction`` two-way, ``conflict`` latest, ``on_delete`` unlink on both sides,
  ``initial_sync.created_within`` 365 days, ``enabled`` true, ``paused`` false;
- ``defaults: true`` expanded into explicit ``FieldMap``s from the catalog's standard pairs
  (``FieldMap.default`` is True for those), user entries override a default on the same target;
- a field's own ``direction`` is None when it inherits the module's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Direction = Literal["two-way", "left-to-right", "right-to-left"]
Conflict = Literal["latest", "left-wins", "right-wins", "skip"]
DeletePref = Literal["delete", "delete-if-no-associates", "unlink"]
Side = Literal["left", "right"]

DIRECTIONS: tuple[str, ...] = ("two-way", "left-to-right", "right-to-left")
CONFLICTS: tuple[str, ...] = ("latest", "left-wins", "right-wins", "skip")
DELETE_PREFS: tuple[str, ...] = ("delete", "delete-if-no-associates", "unlink")
API_VERSIONS: tuple[str, ...] = ("syncform/v1",)


@dataclass(frozen=True, slots=True, order=True)
class Mark:
    """Where a value came from in the user's source (1-based line and column)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NO_MARK = Mark("<unknown>", 0, 0)


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A reference to a secret, never its value: ``{env: NAME}`` or ``{file: PATH}``."""

    kind: Literal["env", "file"]
    ref: str

    def describe(self) -> str:
        return f"{{{self.kind}: {self.ref}}}"


@dataclass(frozen=True, slots=True)
class SandboxOptions:
    seed: int = 0  # demo records per module created on first use; 0 = start empty


@dataclass(frozen=True, slots=True)
class Connection:
    name: str
    app: str
    sandbox: SandboxOptions | None = None
    datacenter: str = "us"
    base_url: str | None = None
    org_id: str | None = None
    auth: tuple[tuple[str, SecretRef], ...] = ()  # (client_id|client_secret|refresh_token, ref)
    max_concurrency: int = 10
    description: str = ""
    mark: Mark = field(default=NO_MARK, compare=False)


@dataclass(frozen=True, slots=True)
class IntegrationSide:
    app: str
    connection: str
    mark: Mark = field(default=NO_MARK, compare=False)


@dataclass(frozen=True, slots=True)
class FieldMap:
    """One field mapping.

    ``left``/``right`` are tuples of field api names: one name normally, two for a name split
    (``left: name, right: [First_Name, Last_Name]``) or join (the other way round).
    A constant (``value:``) or a template (``template:``, sandboxed Jinja2 over the source record)
    replaces the source side: then the source tuple is empty and ``direction`` says which side
    receives it.
    ``values`` maps picklist values (left value → right value).
    """

    left: tuple[str, ...]
    right: tuple[str, ...]
    direction: Direction | None = None
    values: tuple[tuple[str, str], ...] = ()
    value: Any = None  # constant
    template: str | None = None
    default: bool = False  # came from the catalog's standard pairs (defaults: true)
    mark: Mark = field(default=NO_MARK, compare=False)

    @property
    def key(self) -> str:
        """Stable address part: the receiving field(s) of the right side, else the left."""
        target = self.right or self.left
        return "+".join(target)


@dataclass(frozen=True, slots=True)
class MatchKey:
    left: str
    right: str
    mark: Mark = field(default=NO_MARK, compare=False)


@dataclass(frozen=True, slots=True)
class ModuleFilter:
    view: str | None = None  # CRM/Bigin custom view name
    departments: tuple[str, ...] = ()  # Desk products
    mark: Mark = field(default=NO_MARK, compare=False)


@dataclass(frozen=True, slots=True)
class Calendar:
    add_bookings: bool = True
    send_invites: bool = False
    check_conflicts: bool = True


@dataclass(frozen=True, slots=True)
class Module:
    name: str
    left: str  # the left app's module api name
    right: str
    direction: Direction = "two-way"
    match: tuple[MatchKey, ...] = ()
    conflict: Conflict = "latest"
    on_delete_left: DeletePref = "unlink"  # what a delete on the left does to the right
    on_delete_right: DeletePref = "unlink"  # what a delete on the right does to the left
    created_within_days: int = 365
    defaults: bool = False
    fields: tuple[FieldMap, ...] = ()
    filter: ModuleFilter | None = None
    parent: str | None = None  # name of the parent module in the same integration
    enabled: bool = True
    services: tuple[tuple[str, tuple[FieldMap, ...]], ...] = ()  # Bookings: per-service custom fields
    calendar: Calendar | None = None
    mark: Mark = field(default=NO_MARK, compare=False)


@dataclass(frozen=True, slots=True)
class Integration:
    name: str
    left: IntegrationSide
    right: IntegrationSide
    modules: tuple[Module, ...]
    description: str = ""
    owner: str | None = None
    paused: bool = False
    max_deletes: int | None = None
    history_days: int = 7
    mark: Mark = field(default=NO_MARK, compare=False)

    def module(self, name: str) -> Module | None:
        for m in self.modules:
            if m.name == name:
                return m
        return None


@dataclass(frozen=True, slots=True)
class Workspace:
    """Every spec of a repository, validated."""

    integrations: tuple[Integration, ...]
    connections: tuple[Connection, ...]
    root: str = "."
    files: tuple[str, ...] = ()

    def integration(self, name: str) -> Integration | None:
        return next((i for i in self.integrations if i.name == name), None)

    def connection(self, name: str) -> Connection | None:
        return next((c for c in self.connections if c.name == name), None)
