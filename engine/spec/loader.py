"""Reading spec files: discovery, Jinja2 rendering (sandboxed), YAML composing with marks, bounds.

Every value of a document keeps the ``Mark`` (file, 1-based line and column) of the YAML node it came
from, so that schema and semantic errors point into the user's source. Templates are rendered with
newlines kept (no trimming), so a line of the rendered text is the same line of the user's file as
long as the template itself does not add or remove lines (``{% for %}`` over several lines does).

Hostile input is bounded, never trusted: file size, rendered size, nesting depth, alias expansion,
invalid UTF-8, template code reaching outside the sandbox. Each bound gives a Diagnostic, never a
traceback.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import Diagnostic
from engine.spec.model import Mark

MAX_FILE_BYTES = 1024 * 1024  # a spec file larger than this is refused before it is parsed
MAX_RENDERED_CHARS = 4 * 1024 * 1024  # the text a template may render to
MAX_DEPTH = 64  # nesting of mappings and sequences
MAX_ALIAS_NODES = 10_000  # nodes reached through aliases (an alias bomb expands exponentially)
MAX_TEMPLATE_SEQ = 100_000  # longest string/list a template may build with * or **

SPEC_SUFFIXES = (".yaml", ".yml")
Path_ = tuple[Any, ...]


@dataclass(eq=False, slots=True)
class Document:
    """One YAML document of a spec file: its plain value and where every node of it was written.

    Positions are kept as the parser's own marks (no allocation per node) and become ``Mark`` values
    (file, 1-based line and column, mapped back through a template's rendering) only when asked for.
    """

    file: str
    index: int  # 0-based position of the document in its file
    value: Any
    mark: Mark  # where the document starts
    positions: dict[Path_, Any] = field(default_factory=dict)  # path -> parser mark of the value node
    key_positions: dict[Path_, Any] = field(default_factory=dict)  # path of a mapping entry -> of its key
    templated: bool = False
    columns: "ColumnMap | None" = None

    def _mark(self, pos: Any) -> Mark:
        return _to_mark(self.file, pos, self.columns)

    @property
    def marks(self) -> dict[Path_, Mark]:
        """path -> mark of the value node (every node; built on each call)."""
        return {p: self._mark(m) for p, m in self.positions.items()}

    @property
    def key_marks(self) -> dict[Path_, Mark]:
        """path of a mapping entry -> mark of its key (built on each call)."""
        return {p: self._mark(m) for p, m in self.key_positions.items()}

    def at(self, path: Path_) -> Mark:
        """The mark of the value at ``path``, else of its nearest ancestor that has one."""
        path = tuple(path)
        positions = self.positions
        while path:
            m = positions.get(path)
            if m is not None:
                return self._mark(m)
            path = path[:-1]
        m = positions.get(())
        return self.mark if m is None else self._mark(m)

    def key_at(self, path: Path_) -> Mark:
        """The mark of the key of the mapping entry at ``path`` (falls back to its value)."""
        path = tuple(path)
        m = self.key_positions.get(path)
        return self._mark(m) if m is not None else self.at(path)

    def get(self, path: Path_, default: Any = None) -> Any:
        cur = self.value
        for p in path:
            try:
                cur = cur[p]
            except (KeyError, IndexError, TypeError):
                return default
        return cur


def _to_mark(file: str, pos: Any, columns: "ColumnMap | None") -> Mark:
    """A ``Mark`` from a parser mark (0-based line and column of the rendered text)."""
    line, col = pos.line + 1, pos.column + 1
    if columns is not None:
        col = columns(line, col)
    return Mark(file, line, col)


def _diag(file: str, line: int, col: int, message: str, code: str) -> Diagnostic:
    return Diagnostic(file, max(line, 1), max(col, 1), "error", message, code)


# --------------------------------------------------------------------------------------- discovery
def display_path(path: Path, root: Path, *, resolved_root: Path | None = None, resolved: Path | None = None) -> str:
    """``path`` relative to ``root``, both resolved (``resolved_root``, ``resolved``: already resolved);
    ``path`` as given when it is not under ``root``."""
    full = str(resolved or path.resolve())
    base = str(resolved_root or root.resolve())
    if full == base:
        return "."
    prefix = base if base.endswith(os.sep) else base + os.sep  # resolved paths are normalised: a prefix test
    return full[len(prefix):] if full.startswith(prefix) else str(path)


def _resolver() -> Any:
    """``Path.resolve`` for many files: each folder is resolved once, and a file name only when the
    file is itself a symlink (resolving a path costs a system call per component)."""
    folders: dict[Path, str] = {}

    def resolve(f: Path) -> Path:
        if os.path.islink(f):
            return f.resolve()
        parent = f.parent
        real = folders.get(parent)
        if real is None:
            real = folders[parent] = os.path.realpath(parent)
        return Path(real, f.name)

    return resolve


def discover(paths: tuple[str | os.PathLike[str], ...], root: Path, *, resolved: dict[Path, Path] | None = None,
             ) -> tuple[list[Path], list[Diagnostic]]:
    """The spec files under ``paths`` (files or folders; default ``integrations/``), sorted.

    Folders are searched recursively for ``*.yaml``/``*.yml``, skipping ``vars/`` folders directly
    under a searched folder (``integrations/vars/`` holds template variables, not specs) and hidden
    folders. A file reached twice (a symlink, or a folder given twice) is listed once. ``resolved``,
    when given, receives each listed file's resolved path.
    """
    diags: list[Diagnostic] = []
    files: list[Path] = []
    given = [Path(p) for p in paths] or [Path("integrations")]
    for p in given:
        full = p if p.is_absolute() else root / p
        if full.is_file():
            files.append(full)
        elif full.is_dir():
            found = []
            for dirpath, dirnames, filenames in os.walk(full):
                here = Path(dirpath)
                dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                                     and not (here == full and d == "vars"))
                found += [here / f for f in filenames if f.endswith(SPEC_SUFFIXES) and not f.startswith(".")]
            if not found:
                diags.append(_diag(str(p), 1, 1, f"no spec files (*.yaml, *.yml) in {p}/", "no-specs"))
            files += sorted(found)
        else:
            hint = " (run in your repository, or pass the folder of your specs)" if not paths else ""
            diags.append(_diag(str(p), 1, 1, f"no such file or folder: {p}{hint}", "no-such-path"))
    seen: set[Path] = set()
    unique = []
    resolve = _resolver()
    for f in files:
        r = resolve(f)
        if r not in seen:
            seen.add(r)
            unique.append(f)
            if resolved is not None:
                resolved[f] = r
    return unique, diags


# --------------------------------------------------------------------------------------- bytes
def _line_col_of_offset(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    start = data.rfind(b"\n", 0, offset) + 1
    return line, offset - start + 1


def read_text(path: Path, display: str) -> tuple[str | None, list[Diagnostic]]:
    """The file's text, or a Diagnostic when it is too large, unreadable or not UTF-8."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))  # plain system calls: no file object
        try:
            size = os.fstat(fd).st_size
            if size > MAX_FILE_BYTES:
                return None, [_diag(display, 1, 1, f"file is too large ({size / 1048576:.1f} MiB; the limit is "
                                    f"{MAX_FILE_BYTES // 1048576} MiB): split it into several files",
                                    "file-too-large")]
            chunks = []
            got = 0
            while got <= MAX_FILE_BYTES:
                chunk = os.read(fd, MAX_FILE_BYTES + 1 - got)
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
            data = b"".join(chunks)
        finally:
            os.close(fd)
    except OSError as exc:
        return None, [_diag(display, 1, 1, f"cannot read the file: {exc.strerror or exc}", "unreadable")]
    if len(data) > MAX_FILE_BYTES:
        return None, [_diag(display, 1, 1, f"file is too large (more than {MAX_FILE_BYTES // 1048576} MiB): "
                            "split it into several files", "file-too-large")]
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _line_col_of_offset(data, exc.start)
        return None, [_diag(display, line, col, f"invalid UTF-8 (byte 0x{data[exc.start]:02x} at offset "
                            f"{exc.start}): save the file as UTF-8", "invalid-utf8")]
    if "\x00" in text:
        line, col = _line_col_of_offset(data, data.index(b"\x00"))
        return None, [_diag(display, line, col, "the file contains a NUL byte: it is not a text file",
                            "binary-file")]
    return text, []


# --------------------------------------------------------------------------------------- Jinja2
_MARKERS = ("{{", "{%", "{#")


def uses_template(text: str) -> bool:
    """Whether the file is a Jinja2 template to render before reading it as YAML.

    Field templates (``template: "{{ record.First_Name }}"``) are Jinja2 too, but they are evaluated
    per record at sync time, not when the file is loaded: a file whose only template syntax sits in
    ``template:`` values is plain YAML. A file that also uses file-level templating writes its field
    templates inside ``{% raw %}…{% endraw %}``.
    """
    if not any(m in text for m in _MARKERS):
        return False
    docs, problems = compose_documents(text, "")
    if problems:
        return True
    for doc in docs:
        for path, value in _scalars(doc.value, ()):
            if isinstance(value, str) and any(m in value for m in _MARKERS) and path[-1:] != ("template",):
                return True
        for path in doc.key_positions:
            if isinstance(path[-1], str) and any(m in path[-1] for m in _MARKERS):
                return True
    return False


def _scalars(value: Any, path: Path_) -> Any:
    stack = [(value, path)]
    seen: set[int] = set()
    while stack:
        v, p = stack.pop()
        if isinstance(v, dict):
            if id(v) in seen:
                continue
            seen.add(id(v))
            stack.extend((x, p + (k,)) for k, x in v.items())
        elif isinstance(v, list):
            if id(v) in seen:
                continue
            seen.add(id(v))
            stack.extend((x, p + (i,)) for i, x in enumerate(v))
        else:
            yield p, v


_ENV = None


def bounded_environment(**options: Any) -> Any:
    """A Jinja2 sandbox with no internals (ImmutableSandboxedEnvironment) in which no template can build
    a value of gigabytes (``*`` and ``**`` bounded): used for spec files and for field templates."""
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class _Env(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**"])

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "**" and isinstance(right, (int, float)) and abs(right) > 64:
                raise SecurityError("exponent too large in a template")
            if operator == "*":
                for seq, n in ((left, right), (right, left)):
                    if isinstance(seq, (str, list, tuple)) and isinstance(n, int) \
                            and len(seq) * n > MAX_TEMPLATE_SEQ:
                        raise SecurityError("a template may not build values this large")
            return super().call_binop(context, operator, left, right)

    return _Env(**options)


def _environment() -> Any:
    global _ENV
    if _ENV is None:
        from jinja2 import StrictUndefined

        env = bounded_environment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False,
                                  trim_blocks=False, lstrip_blocks=False, loader=None)
        # Only harmless helpers: no lipsum/cycler/joiner (objects with reachable internals).
        env.globals = {"range": env.globals["range"], "dict": dict}
        _ENV = env
    return _ENV


def _template_lineno(exc: BaseException) -> int | None:
    lineno = getattr(exc, "lineno", None)
    if isinstance(lineno, int) and lineno > 0:
        return lineno
    tb = exc.__traceback__
    found = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            found = tb.tb_lineno
        tb = tb.tb_next
    return found


def _template_col(text: str, line: int) -> int:
    lines = text.splitlines()
    if 1 <= line <= len(lines):
        src = lines[line - 1]
        positions = [i for i in (src.find("{{"), src.find("{%")) if i >= 0]
        if positions:
            return min(positions) + 1
    return 1


def _template_message(exc: BaseException) -> str:
    from jinja2 import exceptions as jx

    msg = str(getattr(exc, "message", None) or exc).strip()
    if isinstance(exc, jx.SecurityError) or "unsafe" in msg:
        return f"template code not allowed: {msg}"
    if isinstance(exc, jx.UndefinedError):
        return f"template variable error: {msg} (define it with --var NAME=VALUE or in a --var-file)"
    if isinstance(exc, jx.TemplateSyntaxError):
        return f"template syntax error: {msg}"
    return f"template error: {msg}"


def render(text: str, display: str, variables: dict[str, Any]) -> tuple[str | None, list[Diagnostic]]:
    """Render a Jinja2 template in the sandbox; line numbers of the output match the source."""
    from jinja2 import TemplateError

    env = _environment()
    try:
        out = env.from_string(text).render(**variables)
    except TemplateError as exc:
        line = _template_lineno(exc) or 1
        return None, [_diag(display, line, _template_col(text, line), _template_message(exc), "template")]
    except (RecursionError, MemoryError, OverflowError, ArithmeticError, TypeError, ValueError) as exc:
        line = _template_lineno(exc) or 1
        msg = f"template error: {type(exc).__name__}: {exc}"[:300]
        if "no loader" in str(exc):
            msg = "template code not allowed: include, import and extends cannot read other files"
        return None, [_diag(display, line, _template_col(text, line), msg, "template")]
    if len(out) > MAX_RENDERED_CHARS:
        return None, [_diag(display, 1, 1, f"the template renders to more than {MAX_RENDERED_CHARS // 1048576} "
                            "MiB of text", "file-too-large")]
    return out, []


def read_variables(var_files: tuple[str, ...], variables: dict[str, Any], root: Path
                   ) -> tuple[dict[str, Any], list[Diagnostic]]:
    """Template variables: each --var-file (YAML mapping) in order, then --var k=v on top."""
    out: dict[str, Any] = {}
    diags: list[Diagnostic] = []
    for vf in var_files:
        p = Path(vf)
        full = p if p.is_absolute() else root / p
        disp = str(vf)
        if not full.is_file():
            diags.append(_diag(disp, 1, 1, f"--var-file {vf}: no such file", "no-such-path"))
            continue
        text, d = read_text(full, disp)
        diags += d
        if text is None:
            continue
        docs, d = compose_documents(text, disp)
        diags += d
        if d:
            continue
        if len(docs) != 1 or not isinstance(docs[0].value, dict):
            mark = docs[0].mark if docs else Mark(disp, 1, 1)
            diags.append(_diag(disp, mark.line, mark.col, "a variables file holds one mapping of NAME: value",
                               "var-file"))
            continue
        out.update(docs[0].value)
    out.update(variables)
    return out, diags


# --------------------------------------------------------------------------------------- YAML
class _YamlError(Exception):
    def __init__(self, mark: Mark, message: str, code: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message
        self.code = code


_INT, _FLOAT, _BOOL, _NULL = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool",
                              "tag:yaml.org,2002:null")
_STR, _MERGE_TAG = "tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"
_CORE_TAGS = {_INT, _FLOAT, _BOOL, _NULL, _STR, _MERGE_TAG, "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map",
              "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary"}
_NOKEY = object()
_MISS = object()


# Plain (unquoted, untagged) scalars resolve to the same value every time they are written: the
# resolution by PyYAML's regular expressions is remembered per text (bounded).
_PLAIN: dict[str, Any] = {}
_PLAIN_MAX = 50_000


class _Composer:
    """Builds plain values from a YAML event stream, iteratively (no recursion, so no depth limit of
    Python's stack), recording the position of every node by path.

    Aliases are not expanded: the anchored value is shared, and the number of nodes it stands for is
    added to a budget (MAX_ALIAS_NODES), which stops alias bombs before anything downstream walks
    them. Keys are taken as written (``on:`` is the key "on", not true); duplicate keys are errors;
    tags outside YAML's core schema (``!!python/...``) are refused; merge keys (``<<``) are honoured.

    Positions are the parser's own mark objects, kept as they come (``Document`` turns one into a
    ``Mark`` when a diagnostic or the model asks for it): a node costs a dict entry, not an object.
    """

    def __init__(self, file: str, columns: "ColumnMap | None" = None) -> None:
        import yaml

        self.columns = columns
        self.yaml = yaml
        self.file = file
        self.resolver = yaml.resolver.Resolver()
        self.constructor = yaml.constructor.SafeConstructor()
        self.positions: dict[Path_, Any] = {}
        self.key_positions: dict[Path_, Any] = {}
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.open_anchors: set[str] = set()
        self.alias_nodes = 0
        self.root: Any = None

    def mark(self, pos: Any) -> Mark:
        return _to_mark(self.file, pos, self.columns)

    def _scalar(self, ev: Any) -> Any:
        tag = ev.tag
        if tag is None or tag == "!":
            if ev.implicit[0]:
                try:
                    return _PLAIN[ev.value]
                except KeyError:
                    value = self._resolved(ev, self.resolver.resolve(self.yaml.ScalarNode, ev.value, ev.implicit))
                    if len(_PLAIN) >= _PLAIN_MAX:
                        _PLAIN.clear()
                    _PLAIN[ev.value] = value
                    return value
            tag = self.resolver.resolve(self.yaml.ScalarNode, ev.value, ev.implicit)
        elif tag not in _CORE_TAGS:
            raise _YamlError(self.mark(ev.start_mark), f"the YAML tag {tag.replace('tag:yaml.org,2002:', '!!')} is "
                             "not allowed in specs", "yaml-tag")
        return self._resolved(ev, tag)

    def _resolved(self, ev: Any, tag: str) -> Any:
        if tag in (_INT, _FLOAT, _BOOL):
            node = self.yaml.ScalarNode(tag, ev.value)
            try:
                if tag == _INT:
                    return self.constructor.construct_yaml_int(node)
                if tag == _FLOAT:
                    return self.constructor.construct_yaml_float(node)
                return self.constructor.construct_yaml_bool(node)
            except (ValueError, KeyError, IndexError, OverflowError):  # `!!int ""` has no digit to read
                return ev.value
        if tag == _NULL:
            return None
        return ev.value

    def document(self, next_event: Any) -> None:
        """Consume the events of one document, up to and including its DocumentEndEvent.

        The innermost open mapping or sequence lives in local variables (it is where nearly every
        event lands); the enclosing ones wait on ``stack`` as tuples.
        """
        y = self.yaml
        scalar_ev, alias_ev, map_ev, seq_ev = y.ScalarEvent, y.AliasEvent, y.MappingStartEvent, y.SequenceStartEvent
        end_evs = (y.MappingEndEvent, y.SequenceEndEvent)
        doc_end = y.DocumentEndEvent
        positions, key_positions, anchors, open_anchors = (self.positions, self.key_positions, self.anchors,
                                                           self.open_anchors)
        plain, miss, nokey, core_tags, mark = _PLAIN, _MISS, _NOKEY, _CORE_TAGS, self.mark
        stack: list[tuple[Any, ...]] = []
        # the innermost open container: cur is None at the document's top level
        cur: Any = None
        is_map = False
        path: Path_ = ()
        key: Any = nokey  # mapping: the key waiting for its value
        kpath: Path_ = ()  # mapping: the path of that entry
        count = 0  # nodes in the container's subtree (for alias accounting)
        anchor: str | None = None
        merges: list[tuple[Any, Any]] = []  # (value, parser mark) of each ``<<`` entry
        merge_next = False
        expecting_key = False
        while True:
            ev = next_event()
            cls = ev.__class__
            if cls is scalar_ev:
                pos = ev.start_mark
                tag = ev.tag
                if expecting_key:
                    if tag is not None and tag != "!" and tag not in core_tags:
                        raise _YamlError(mark(pos), f"the YAML tag {tag} is not allowed in specs", "yaml-tag")
                    text = ev.value
                    if ev.anchor:
                        anchors[ev.anchor] = (text, 1)
                    if not text and not ev.style:
                        text = "null"
                    count += 1
                    if text == "<<":
                        key, kpath, merge_next = "<<", path + ("<<",), True
                    else:
                        kpath = path + (text,)
                        if text in cur:
                            self._duplicate(text, kpath, pos)
                        key = text
                        key_positions[kpath] = pos
                    expecting_key = False
                    continue
                if tag is None and ev.implicit[0]:
                    value = plain.get(ev.value, miss)
                    if value is miss:
                        value = self._scalar(ev)
                else:
                    value = self._scalar(ev)
                if ev.anchor:
                    anchors[ev.anchor] = (value, 1)
                n = 1
            elif cls is map_ev or cls is seq_ev:
                pos = ev.start_mark
                if expecting_key:
                    raise _YamlError(mark(pos), "a key must be a plain name, not a list or mapping", "complex-key")
                if len(stack) + (cur is not None) >= MAX_DEPTH:
                    raise _YamlError(mark(pos), f"nesting deeper than {MAX_DEPTH} levels", "too-deep")
                tag = ev.tag
                if tag is not None and tag != "!" and tag not in core_tags:
                    raise _YamlError(mark(pos), f"the YAML tag {tag.replace('tag:yaml.org,2002:', '!!')} is not "
                                     "allowed in specs", "yaml-tag")
                if cur is None:
                    new_path: Path_ = ()
                else:
                    new_path = kpath if is_map else path + (len(cur),)
                    stack.append((cur, is_map, path, key, kpath, count, anchor, merges, merge_next))
                positions[new_path] = pos
                if ev.anchor:
                    open_anchors.add(ev.anchor)
                is_map = cls is map_ev
                cur = {} if is_map else []
                path = kpath = new_path
                key, count, anchor, merges, merge_next = nokey, 1, ev.anchor, [], False
                expecting_key = is_map
                continue
            elif cls in end_evs:
                for src, mpos in merges:
                    for m in (src if isinstance(src, list) else [src]):
                        if not isinstance(m, dict):
                            raise _YamlError(mark(mpos), "a merge key (<<) takes a mapping or a list of mappings",
                                             "bad-merge")
                        for k, v in m.items():
                            cur.setdefault(k, v)
                if anchor:
                    open_anchors.discard(anchor)
                    anchors[anchor] = (cur, count)
                value, n, done_path = cur, count, path
                if not stack:
                    self.root = value
                    cur, is_map, expecting_key = None, False, False
                    continue
                cur, is_map, path, key, kpath, count, anchor, merges, merge_next = stack.pop()
                # the finished container's own position was recorded when it started
                count += n
                if is_map:
                    if merge_next:
                        merges.append((value, positions[done_path]))
                        merge_next = False
                    else:
                        cur[key] = value
                    key, expecting_key = nokey, True
                else:
                    cur.append(value)
                    expecting_key = False
                continue
            elif cls is alias_ev:
                pos = ev.start_mark
                if ev.anchor in open_anchors:
                    raise _YamlError(mark(pos), "an alias refers to the node that contains it (a recursive alias)",
                                     "recursive-alias")
                if ev.anchor not in anchors:
                    raise _YamlError(mark(pos), f'unknown alias "*{ev.anchor}": define &{ev.anchor} before using it',
                                     "unknown-alias")
                value, n = anchors[ev.anchor]
                self.alias_nodes += n
                if self.alias_nodes > MAX_ALIAS_NODES:
                    raise _YamlError(mark(pos), f"aliases expand to more than {MAX_ALIAS_NODES:,} nodes (an alias "
                                     "bomb?): write the values out", "alias-bomb")
                if expecting_key:
                    count += 1
                    if not isinstance(value, str):
                        raise _YamlError(mark(pos), "a key must be a plain name, not a list, mapping or alias",
                                         "complex-key")
                    if value == "<<":
                        key, kpath, merge_next = "<<", path + ("<<",), True
                    else:
                        kpath = path + (value,)
                        if value in cur:
                            self._duplicate(value, kpath, pos)
                        key = value
                        key_positions[kpath] = pos
                    expecting_key = False
                    continue
            elif cls is doc_end:
                return
            else:
                continue
            # a finished scalar or alias value: record where it is and attach it to its parent
            if cur is None:
                positions[()] = pos
                self.root = value
            elif is_map:
                positions[kpath] = pos
                count += n
                if merge_next:
                    merges.append((value, pos))
                    merge_next = False
                else:
                    cur[key] = value
                key, expecting_key = nokey, True
            else:
                positions[path + (len(cur),)] = pos
                count += n
                cur.append(value)

    def _duplicate(self, key: str, kpath: Path_, pos: Any) -> None:
        first = self.key_positions.get(kpath)
        where = f" (first at line {self.mark(first).line})" if first is not None else ""
        raise _YamlError(self.mark(pos), f'duplicate key "{key}"{where}', "duplicate-key")


def _ord(c: Any) -> int:
    return ord(c) if isinstance(c, str) else int(c)


def _yaml_error_diag(exc: Exception, file: str, text: str = "") -> Diagnostic:
    import yaml

    if isinstance(exc, yaml.reader.ReaderError):
        pos = exc.position
        line = text.count("\n", 0, pos) + 1
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        return _diag(file, line, col, f"invalid YAML: the control character U+{_ord(exc.character):04X} is not "
                     "allowed (remove it, or write it as an escape inside double quotes)", "yaml")
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    msg = f"invalid YAML: {problem}"
    if context and "while" not in str(problem):
        msg += f" ({context})"
    if mark is None:
        return _diag(file, 1, 1, msg, "yaml")
    return _diag(file, mark.line + 1, mark.column + 1, msg, "yaml")


def _parser(text: str, *, pure: bool = False) -> Any:
    import yaml

    # libyaml when present: same events, faster
    cls = yaml.SafeLoader if pure else getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
    return cls(text)


def _libyaml_too_deep(exc: Exception) -> bool:
    """libyaml 0.2.6 (PyYAML 6.0.4's wheels) refuses nesting past 1,000 levels while it scans ahead,
    before the composer sees an event: such a file is composed again with PyYAML's own parser, so
    that it gets the composer's error (nesting deeper than ``MAX_DEPTH``, at the level that passed it)
    whichever libyaml is installed."""
    return "maximum nesting depth" in str(getattr(exc, "problem", None) or exc)


_EXPR = re.compile(r"\{\{.*?\}\}")


class ColumnMap:
    """Maps a column of the rendered text to the user's template on the same line.

    Rendering keeps newlines, so lines match; columns shift where ``{{ … }}`` rendered to text of
    another width. Equal stretches map exactly; a position inside rendered output maps to the start
    of the template code that produced it.
    """

    def __init__(self, source: str, rendered: str) -> None:
        self.src = source.split("\n")
        self.out = rendered.split("\n")
        self.cache: dict[int, list[tuple[str, int, int, int, int]]] = {}

    def __call__(self, line: int, col: int) -> int:
        if not (0 < line <= min(len(self.src), len(self.out))):
            return col
        src, out = self.src[line - 1], self.out[line - 1]
        if src == out:
            return col
        ops = self.cache.get(line)
        if ops is None:
            import difflib

            ops = self.cache[line] = difflib.SequenceMatcher(None, out, src, autojunk=False).get_opcodes()
        i = col - 1
        for tag, i1, i2, j1, j2 in ops:
            if i1 <= i < i2 or (i == i2 == len(out)):
                j = j1 + (i - i1) if tag == "equal" else j1
                for m in _EXPR.finditer(src):  # inside {{ … }}: point at the expression's start
                    if m.start() <= j < m.end():
                        return m.start() + 1
                return j + 1
        return col


def compose_documents(text: str, file: str, columns: ColumnMap | None = None, *, pure: bool = False
                      ) -> tuple[list[Document], list[Diagnostic]]:
    """Every document of ``text`` as plain values with marks; YAML errors become Diagnostics.

    Safe loading only: values are built from the parser's events by ``_Composer`` (never by a
    constructor that could instantiate objects), within the bounds on depth and alias expansion.
    ``pure``: with PyYAML's own parser, not libyaml.
    """
    import yaml

    docs: list[Document] = []
    parser = None
    try:
        parser = _parser(text, pure=pure)
        parser.get_event()  # StreamStartEvent
        index = 0
        while not parser.check_event(yaml.StreamEndEvent):
            start = parser.get_event()  # DocumentStartEvent
            c = _Composer(file, columns)
            c.document(parser.get_event)
            root = c.positions.get(())
            docs.append(Document(file=file, index=index, value=c.root,
                                 mark=c.mark(start.start_mark if root is None else root),
                                 positions=c.positions, key_positions=c.key_positions, columns=columns))
            index += 1
    except _YamlError as exc:
        return docs, [_diag(exc.mark.file, exc.mark.line, exc.mark.col, exc.message, exc.code)]
    except yaml.YAMLError as exc:
        if not pure and _libyaml_too_deep(exc):
            return compose_documents(text, file, columns, pure=True)
        d = _yaml_error_diag(exc, file, text)
        if columns is not None:
            d = Diagnostic(d.file, d.line, columns(d.line, d.col), d.severity, d.message, d.code)
        return docs, [d]
    finally:
        if parser is not None:
            parser.dispose()
    return docs, []


def load_file(path: Path, display: str, variables: dict[str, Any]) -> tuple[list[Document], list[Diagnostic]]:
    """Read, render (when the file uses Jinja2) and compose one spec file."""
    text, diags = read_text(path, display)
    if text is None:
        return [], diags
    templated = uses_template(text)
    columns = None
    if templated:
        rendered, diags = render(text, display, variables)
        if rendered is None:
            return [], diags
        columns = ColumnMap(text, rendered)
        text = rendered
    docs, diags = compose_documents(text, display, columns)
    for d in docs:
        d.templated = templated
    return docs, diags
