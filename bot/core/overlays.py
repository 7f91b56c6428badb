"""Format-preserving edits of single scalars in YAML files, addressed by Kustomize field paths.

The document is never dumped. ruamel.yaml's composer finds the target node and its exact span
in the original text; only that span is replaced (or one line inserted, aligned with its
siblings, for a new key); the result is parsed again and must read back the new value with
every other node unchanged. Everything outside the value -- comments, quoting, indentation,
blank lines, trailing whitespace, ``---`` separators, CRLF, a BOM, a missing final newline --
survives byte for byte.

Decisions worth knowing:

- Quoting keeps the original style. A plain value that YAML 1.1 or 1.2 would read as another
  type (``0``, ``true``, ``1.0``, ``null``, ``#34577c``, ``>=1.0.0``...) is double-quoted --
  unless the original plain value was itself an int/float/bool and the new text reads as the
  same type (``replicas: 3`` -> ``4`` stays plain). ``int`` values are always written plain.
- Duplicate mapping keys on the path are an error naming the key and its lines (Kustomize keeps
  the last one in kustomization.yaml but rejects duplicates in resources; the file needs a fix
  by a human, and guessing would hide that). Duplicates elsewhere in the file are ignored.
- A target shared through a YAML anchor/alias is refused: the edit would change the alias too.
- Block scalars (``|``, ``>``) cannot be edited (error); a value containing a line break is
  refused.
- A missing final key is created when its parent mapping (or literal list) exists in exactly one
  document: one line after the parent's last entry, indented like its first key (or ``, key: v``
  inside a flow mapping); a missing parent is an error that says what exists instead.
- ``list.[key=value].field`` where no item has ``key=value`` adds the item ``{key: value,
  field: new}``, and the list itself when its parent mapping lacks it -- as ``kustomize edit set
  image`` does: a new list goes after the parent's last entry, items not indented under the
  key, and in a kustomization the two keys in the order Kustomize's marshaller sorts them
  (``- name: x`` / ``  newTag: v8``; ``- count: 3`` / ``  name: x``). A new item joins an
  existing list aligned with its siblings (a flow list gets ``{key: value, field: new}``), and
  a list key written with no value (``images:``) gets the item on the following lines.
  Only where the selector key is the entries' identity: in a kustomization the top-level
  ``images``, ``replicas``, ``configMapGenerator`` and ``secretGenerator`` by ``name`` (so a
  misspelt field stays an error); elsewhere any list whose items all carry that key. A new
  list outside a kustomization is indented like the document's other lists.
- A path that resolves in several documents of a multi-document file is ambiguous (error).
- ruamel.yaml rejects tabs in trailing whitespace, which YAML allows: the parser is shown those
  tabs as spaces (same offsets); the file keeps its tabs.
"""

from __future__ import annotations

import contextlib
import difflib
import itertools
import posixpath
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import VersionedResolver

from bot.core.errors import EditError
from bot.core.fieldpath import Index, Key, Match, Segment, format_field_path, parse_field_path

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_NULL = "tag:yaml.org,2002:null"
_TYPED = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool")
_BOM = "\ufeff"

Address = tuple[int, ...]  # child positions from a document root: 2*i+1 = value of pair i


@dataclass(frozen=True)
class _Target:
    doc: int
    node: ScalarNode
    address: Address
    chain: tuple[Node, ...]  # nodes from the root down to the target, for alias checks
    key_node: ScalarNode | None  # the mapping key when the target is a mapping value
    literal_key: str | None  # set when the target is a KEY=value literal list entry


@dataclass(frozen=True)
class _Creatable:
    doc: int
    parent: MappingNode | SequenceNode
    address: Address  # of the parent
    chain: tuple[Node, ...]
    key: str
    literal: bool  # parent is a list of KEY=value literals


@dataclass(frozen=True)
class _Failure:
    doc: int
    depth: int
    message: str


@dataclass(frozen=True)
class _NewEntry:
    """``[key=value].field`` where no item has ``key=value``: the item (and its list) is added.

    ``list_key`` is None when the list exists (``parent`` is it); otherwise ``parent`` is the
    mapping that lacks the list, which is created under ``list_key`` -- or, when ``fill`` is
    set, the mapping whose pair ``fill`` is ``list_key:`` with an empty value, filled in place.
    """

    doc: int
    parent: MappingNode | SequenceNode
    address: Address  # of the parent
    chain: tuple[Node, ...]
    list_key: str | None
    match: Match
    field: str
    fill: int | None = None


_Outcome = _Target | _Creatable | _NewEntry | _Failure

# Kustomization fields that are lists of mappings identified by a key, as `kustomize edit`
# treats them; only these may gain an entry (or be created) in a kustomization file, so a
# misspelt field is still an error there.
_KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_KUSTOMIZATION_LISTS = {
    "images": "name",
    "replicas": "name",
    "configMapGenerator": "name",
    "secretGenerator": "name",
}


class _HardError(Exception):
    """A problem that no other document can make right (ambiguity, duplicate keys)."""


# --------------------------------------------------------------------------- public API


def apply_edits(
    path: str, content: bytes, edits: Sequence[tuple[str, str | int]]
) -> tuple[bytes, tuple[tuple[str, str | None, str], ...]]:
    """Set each (field path, value) in one file; return the new bytes and (field, old, new)s.

    ``old`` is None when the key was created. Raises EditError with a message fit for a user.
    """
    text = _decode(path, content)
    applied: list[tuple[str, str | None, str]] = []
    with _nesting_guard(path):
        for field, value in edits:
            text, old, new = _apply_one(path, text, field, value)
            applied.append((field, old, new))
    return text.encode("utf-8"), tuple(applied)


@contextlib.contextmanager
def _nesting_guard(path: str) -> Iterator[None]:
    """YAML nested past Python's recursion limit (anywhere in the file) is an EditError."""
    try:
        yield
    except RecursionError:
        raise EditError(path, "the file nests too deeply to be read") from None


def read_field(path: str, content: bytes, field: str) -> str | None:
    """Return the scalar at ``field`` (a literal's value part for KEY=value entries).

    None when the field does not exist (missing key, no matching item, index out of range).
    Raises EditError for unparseable YAML, an ambiguous path or a non-scalar target.
    """
    text = _decode(path, content)
    segments = _parse(path, field)
    with _nesting_guard(path):
        docs = _compose(path, text)
        outcomes = _resolve_all(path, field, docs, segments)
    found = [o for o in outcomes if isinstance(o, _Target)]
    if not found:
        deepest = max((o for o in outcomes if isinstance(o, _Failure)), key=_depth, default=None)
        if deepest is not None and deepest.depth == len(segments):
            raise EditError(path, f"{field}: {_where(docs, deepest.doc)}{deepest.message}")
        return None
    target = _single_target(path, field, docs, found)
    return _current_value(target)


def safe_repo_path(base_dir: str, relative: str) -> str:
    """Join a repo-relative directory and a path relative to it; refuse escaping the repo."""
    for name, value in (("directory", base_dir), ("path", relative)):
        if "\x00" in value:
            raise EditError(relative, f"the {name} contains a NUL character")
        if "\\" in value:
            raise EditError(relative, f"the {name} {value!r} contains '\\'; use '/' separators")
        if value.startswith("/") or (len(value) > 1 and value[1] == ":"):
            raise EditError(relative, f"the {name} {value!r} must be relative to the repository")
    if not relative.strip():
        raise EditError(relative, "the path is empty")
    joined = posixpath.normpath(posixpath.join(base_dir or ".", relative))
    if joined == ".." or joined.startswith("../"):
        raise EditError(relative, f"the path leaves the repository (resolves to {joined!r})")
    if joined == ".":
        raise EditError(relative, "the path names the repository root, not a file")
    return joined


# --------------------------------------------------------------------------- one edit


def _apply_one(path: str, text: str, field: str, value: str | int) -> tuple[str, str | None, str]:
    segments = _parse(path, field)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise EditError(path, f"{field}: the value must be a string or an integer")
    new = str(value)
    if "\n" in new or "\r" in new:
        raise EditError(path, f"{field}: the value contains a line break, which is not allowed")
    docs = _compose(path, text)
    outcomes = _resolve_all(path, field, docs, segments)
    found = [o for o in outcomes if isinstance(o, _Target)]
    if found:
        target = _single_target(path, field, docs, found)
        return _replace(path, field, text, docs, target, value)
    creatable = [o for o in outcomes if isinstance(o, _Creatable | _NewEntry)]
    if len(creatable) > 1:
        names = ", ".join(_describe_doc(docs, c.doc) for c in creatable)
        what = "key" if isinstance(creatable[0], _Creatable) else "entry"
        raise EditError(
            path, f"{field}: ambiguous, the {what} could be created in several documents ({names})"
        )
    if creatable and isinstance(creatable[0], _NewEntry):
        return _create_entry(path, field, text, docs, creatable[0], segments, value)
    if creatable and isinstance(creatable[0], _Creatable):
        return _create(path, field, text, docs, creatable[0], value)
    failures = [o for o in outcomes if isinstance(o, _Failure)]
    if not failures:
        raise EditError(path, f"{field}: the file contains no YAML document")
    worst = max(failures, key=_depth)
    raise EditError(path, f"{field}: {_where(docs, worst.doc)}{worst.message}")


def _replace(
    path: str,
    field: str,
    text: str,
    docs: list[Node | None],
    target: _Target,
    value: str | int,
) -> tuple[str, str | None, str]:
    node = target.node
    if node.style in ("|", ">"):
        raise EditError(
            path,
            f"{field}: line {_line(node)} holds a block scalar ({node.style}); it cannot be "
            "edited automatically -- make it a plain or quoted value",
        )
    _refuse_shared(path, field, docs, target.doc, target.chain)
    old = _current_value(target)
    new = str(value)
    start, end = _value_span(text, node)
    prefix = ""
    if start == end:  # empty value (`key:`), whose marks point past the line: write after ':'
        if target.key_node is None:
            raise EditError(path, f"{field}: line {_line(node)}: cannot fill an empty list item")
        colon = text.find(":", target.key_node.end_mark.index)
        start = end = colon + 1
        prefix = " "
    if target.literal_key is not None:
        full = f"{target.literal_key}={new}"
        candidates = [(c, _STR) for c in _string_renderings(full, node.style)]
        expect = full
    elif isinstance(value, int):
        candidates = [(new, _INT)]
        expect = new
    else:
        candidates = _renderings_for(node, new)
        expect = new
    failure = ""
    for rendered, tag in candidates:
        result = text[:start] + prefix + rendered + text[end:]
        failure = _verify(path, result, docs, target.doc, target.address, expect, tag)
        if not failure:
            return result, old, new
    raise EditError(path, f"{field}: cannot write {new!r} here safely: {failure}")


def _create(
    path: str,
    field: str,
    text: str,
    docs: list[Node | None],
    spot: _Creatable,
    value: str | int,
) -> tuple[str, str | None, str]:
    _refuse_shared(path, field, docs, spot.doc, spot.chain)
    new = str(value)
    parent = spot.parent
    if spot.literal:
        full = f"{spot.key}={new}"
        renderings = [(r, _STR) for r in _string_renderings(full, None)]
        expect = full
    else:
        key = _string_renderings(spot.key, None)[0]
        if isinstance(value, int):
            values = [(new, _INT)]
        else:
            values = [(r, _STR) for r in _string_renderings(new, None)]
        renderings = [(f"{key}: {r}", tag) for r, tag in values]
        expect = new
    failure = ""
    for entry, tag in renderings:
        result = _insert_entry(path, field, text, parent, entry, spot.literal)
        child = len(parent.value)
        child_address = spot.address + ((2 * child + 1,) if not spot.literal else (child,))
        failure = _verify(path, result, docs, spot.doc, child_address, expect, tag, added=True)
        if not failure:
            return result, None, new
    raise EditError(path, f"{field}: cannot add {new!r} here safely: {failure}")


def _create_entry(
    path: str,
    field: str,
    text: str,
    docs: list[Node | None],
    spot: _NewEntry,
    segments: tuple[Segment, ...],
    value: str | int,
) -> tuple[str, str | None, str]:
    """Add the list item ``{key: value, field: new}`` (and the list when it is missing).

    Kustomize's layout: ``kustomize edit set image`` writes ``images:`` after the fields the
    file already has, items not indented under the key (``- name: x`` then ``  newTag: v8``),
    keys in the order its marshaller sorts them. An item joins an existing list aligned with
    its siblings; a new list outside a kustomization follows the file's own list indentation.
    """
    _refuse_shared(path, field, docs, spot.doc, spot.chain)
    new = str(value)
    idents = _string_renderings(spot.match.value, None)
    if isinstance(value, int):
        values = [(new, _INT)]
    else:
        values = [(r, _STR) for r in _string_renderings(new, None)]
    kustomization = _is_kustomization(path)
    failure = ""
    for ident, (rendered, tag) in itertools.product(idents, values):
        pairs = [(spot.match.key, ident), (spot.field, rendered)]
        if kustomization:
            pairs.sort(key=lambda pair: pair[0])  # Go's YAML marshaller sorts mapping keys
        written = [(_string_renderings(k, None)[0], v) for k, v in pairs]
        result = _insert_new_entry(path, field, text, docs[spot.doc], spot, written, kustomization)
        failure = _verify_entry(path, result, docs, spot, segments, new, tag)
        if not failure:
            return result, None, new
    raise EditError(path, f"{field}: cannot add {new!r} here safely: {failure}")


def _insert_new_entry(
    path: str,
    field: str,
    text: str,
    root: Node | None,
    spot: _NewEntry,
    pairs: list[tuple[str, str]],
    kustomization: bool,
) -> str:
    parent = spot.parent
    flow_item = "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    if spot.list_key is None:
        assert isinstance(parent, SequenceNode)
        if parent.flow_style or not parent.value:
            return _insert_entry(path, field, text, parent, flow_item, item=True)
        dash = int(parent.start_mark.column)
        first = parent.value[0]
        gap = _dash_gap(text, parent)
        column = dash + 1 + len(gap)
        if isinstance(first, MappingNode) and first.value and not first.flow_style:
            column = int(first.value[0][0].start_mark.column)
        lines = [" " * dash + "-" + gap + f"{pairs[0][0]}: {pairs[0][1]}"]
        lines += [" " * column + f"{k}: {v}" for k, v in pairs[1:]]
        return _insert_lines(path, field, text, parent, lines)
    assert isinstance(parent, MappingNode)
    if spot.fill is not None:
        return _fill_empty(path, field, text, root, parent, spot.fill, pairs, kustomization)
    key = _string_renderings(spot.list_key, None)[0]
    if parent.flow_style or not parent.value:
        return _insert_entry(path, field, text, parent, f"{key}: [{flow_item}]", item=False)
    column = int(parent.value[0][0].start_mark.column)
    dash = column + (0 if kustomization else _list_offset(root))
    lines = [" " * column + f"{key}:", " " * dash + f"- {pairs[0][0]}: {pairs[0][1]}"]
    lines += [" " * (dash + 2) + f"{k}: {v}" for k, v in pairs[1:]]
    return _insert_lines(path, field, text, parent, lines)


def _fill_empty(
    path: str,
    field: str,
    text: str,
    root: Node | None,
    parent: MappingNode,
    index: int,
    pairs: list[tuple[str, str]],
    kustomization: bool,
) -> str:
    """``key:`` with no value becomes ``key:`` and a one-item block list on the next lines."""
    key_node, value = parent.value[index]
    if parent.flow_style:
        at = _value_span(text, value)[0]
        flow = "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
        colon = text.find(":", key_node.end_mark.index)
        if colon < 0:
            raise EditError(path, f"{field}: line {_line(key_node)}: cannot find where to add it")
        return text[: colon + 1] + f" [{flow}]" + text[max(at, colon + 1) :]
    column = int(key_node.start_mark.column)
    dash = column + (0 if kustomization else _list_offset(root))
    lines = [" " * dash + f"- {pairs[0][0]}: {pairs[0][1]}"]
    lines += [" " * (dash + 2) + f"{k}: {v}" for k, v in pairs[1:]]
    newline = text.find("\n", key_node.end_mark.index)
    eol = _line_break(text, key_node.end_mark.index)
    block = eol.join(lines)
    if newline < 0:
        return text + eol + block
    return text[: newline + 1] + block + eol + text[newline + 1 :]


def _list_offset(root: Node | None) -> int:
    """How far the document's first block list under a key sits right of its key (0: none)."""
    for node in _walk(root):
        if isinstance(node, MappingNode) and not node.flow_style:
            for k, v in node.value:
                if isinstance(v, SequenceNode) and not v.flow_style and v.value:
                    return max(0, int(v.start_mark.column) - int(k.start_mark.column))
    return 0


def _verify_entry(
    path: str,
    result: str,
    old_docs: list[Node | None],
    spot: _NewEntry,
    segments: tuple[Segment, ...],
    expect: str,
    tag: str,
) -> str:
    """Return "" if ``result`` is the old file plus exactly the new entry, else why not."""
    try:
        new_docs = _compose(path, result)
    except EditError as exc:
        return f"the result would not parse ({exc})"
    if len(new_docs) != len(old_docs):
        return "the result would change the number of documents"
    count = len(spot.parent.value)
    step = count if spot.list_key is None else 2 * count + 1
    if spot.fill is not None:
        step = 2 * spot.fill + 1
    for i, (before, after) in enumerate(zip(old_docs, new_docs, strict=True)):
        if i == spot.doc and spot.fill is not None:  # the empty value is replaced
            filled = (*spot.address, step)
            same = _fingerprint(before, (), filled) == _fingerprint(after, (), filled)
        else:
            skip = (spot.address, step) if i == spot.doc else None
            same = _fingerprint(before, (), None) == _fingerprint(after, (), None, skip)
        if not same:
            return "the result would change other values in the file"
    added = _node_at(new_docs[spot.doc], (*spot.address, step))
    if spot.list_key is not None:
        if not isinstance(added, SequenceNode) or len(added.value) != 1:
            return "the result would not hold a list with one item in the new place"
        added = added.value[0]
    if not isinstance(added, MappingNode) or len(added.value) != 2:
        return "the result would not hold an item with exactly two fields"
    fields = {k.value: v for k, v in added.value if isinstance(k, ScalarNode)}
    ident, target = fields.get(spot.match.key), fields.get(spot.field)
    if not isinstance(ident, ScalarNode) or (ident.value, ident.tag) != (spot.match.value, _STR):
        return f"the new item would not read back with {spot.match}"
    if not isinstance(target, ScalarNode) or (target.value, target.tag) != (expect, tag):
        value = target.value if isinstance(target, ScalarNode) else None
        return f"the result would read back as {value!r}"
    try:
        outcome = _resolve(spot.doc, new_docs[spot.doc], segments)
    except _HardError as exc:
        return f"the result would not resolve ({exc})"
    if not isinstance(outcome, _Target) or outcome.node is not target:
        return "the field path would not find the new item"
    return ""


def _insert_entry(
    path: str, field: str, text: str, parent: MappingNode | SequenceNode, entry: str, item: bool
) -> str:
    if parent.flow_style:
        if not parent.value:
            opener = _value_span(text, parent)[0]  # '{' or '[' after any anchor or tag
            return text[: opener + 1] + entry + text[opener + 1 :]
        end = _written_end(parent, len(parent.value) - 1)
        if end is None:
            raise EditError(path, f"{field}: line {_line(parent)}: cannot find where to add it")
        return text[:end] + ", " + entry + text[end:]
    if item:
        assert isinstance(parent, SequenceNode)
        line = " " * int(parent.start_mark.column) + "-" + _dash_gap(text, parent) + entry
    else:
        line = " " * int(parent.value[0][0].start_mark.column) + entry
    return _insert_lines(path, field, text, parent, [line])


def _dash_gap(text: str, sequence: SequenceNode) -> str:
    """The whitespace between a block list's first dash and its item (one space if odd)."""
    dash = sequence.start_mark.index
    first = sequence.value[0].start_mark.index
    gap = text[dash + 1 : first]
    return " " if not gap or gap.strip(" ") else gap


def _insert_lines(
    path: str, field: str, text: str, parent: MappingNode | SequenceNode, lines: list[str]
) -> str:
    """Insert whole lines after the block collection's last entry, with the file's line break."""
    pos = _end_of_last_line(text, parent)
    if pos is None:
        raise EditError(path, f"{field}: line {_line(parent)}: cannot find where to add it")
    eol = _line_break(text, pos)
    block = eol.join(lines)
    if pos == len(text) and not text.endswith("\n"):
        return text + eol + block
    return text[:pos] + block + eol + text[pos:]


def _end_of_last_line(text: str, collection: MappingNode | SequenceNode) -> int | None:
    """Index just after the line break that ends the collection's last entry (None: unknown)."""
    node: Node = collection
    while isinstance(node, MappingNode | SequenceNode) and not node.flow_style and node.value:
        last = len(node.value) - 1
        if _written_end(node, last) is None:
            if isinstance(node, SequenceNode):
                return None
            node = node.value[last][0]  # an alias or empty value: the key's line ends it
            break
        node = node.value[last][1] if isinstance(node, MappingNode) else node.value[last]
    end = int(node.end_mark.index)
    if isinstance(node, ScalarNode) and node.style in ("|", ">") and node.end_mark.column == 0:
        return end
    newline = text.find("\n", end)
    return len(text) if newline < 0 else newline + 1


def _written_end(parent: MappingNode | SequenceNode, i: int) -> int | None:
    """End of entry ``i``'s value where it is written in ``parent``; None for an alias (whose
    node carries the marks of its anchor, earlier in the file) or an empty value."""
    if isinstance(parent, MappingNode):
        value = parent.value[i][1]
        floor = int(parent.value[i][0].end_mark.index)
    else:
        value = parent.value[i]
        floor = int(parent.start_mark.index)
        for previous in range(i - 1, -1, -1):
            end = _written_end(parent, previous)
            if end is not None:
                floor = end
                break
    start, end = int(value.start_mark.index), int(value.end_mark.index)
    if start < floor or start == end:
        return None
    return end


# --------------------------------------------------------------------------- rendering


def _renderings_for(node: ScalarNode, new: str) -> list[tuple[str, str]]:
    style = node.style
    if style in ("'", '"'):
        return [(r, _STR) for r in _string_renderings(new, style)]
    original = node.tag
    if original in _TYPED and _resolve_tag(new, (1, 2)) == original:
        return [(new, original)]  # a typed field (replicas: 3) keeps its type
    return [(r, _STR) for r in _string_renderings(new, None)]


def _string_renderings(value: str, style: str | None) -> list[str]:
    """Candidate spellings of ``value`` as a string, best first, honouring the original style."""
    if style == '"':
        return [_double_quoted(value)]
    if style == "'":
        if _single_quotable(value):
            return [_single_quoted(value), _double_quoted(value)]
        return [_double_quoted(value)]
    if _plain_reads_as_string(value):
        return [value, _double_quoted(value)]
    return [_double_quoted(value)]


def _plain_reads_as_string(value: str) -> bool:
    if not value or value != value.strip(" \t"):
        return False
    return all(_resolve_tag(value, v) == _STR for v in ((1, 1), (1, 2)))


def _resolve_tag(value: str, version: tuple[int, int]) -> str:
    resolver = VersionedResolver(version=version)
    return str(resolver.resolve(ScalarNode, value, (True, False)))


def _single_quotable(value: str) -> bool:
    return all(ch == "\t" or _printable(ch) for ch in value)


def _printable(ch: str) -> bool:
    code = ord(ch)
    return not (code < 0x20 or 0x7F <= code < 0xA0 or ch in "\u2028\u2029\ufeff")


def _single_quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _double_quoted(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\t":
            out.append("\\t")
        elif _printable(ch):
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(f"\\u{ord(ch):04X}")
    out.append('"')
    return "".join(out)


def _value_span(text: str, node: Node) -> tuple[int, int]:
    """The span of the scalar itself, without a leading anchor (&a) or tag (!!str)."""
    start, end = int(node.start_mark.index), int(node.end_mark.index)
    while start < end and text[start] in "&!":
        while start < end and text[start] not in " \t\r\n":
            start += 1
        while start < end and text[start] in " \t\r\n":
            start += 1
    return start, end


# --------------------------------------------------------------------------- verification


def _verify(
    path: str,
    result: str,
    old_docs: list[Node | None],
    doc: int,
    address: Address,
    expect: str,
    tag: str,
    added: bool = False,
) -> str:
    """Return "" if ``result`` reads back as intended, else why not."""
    try:
        new_docs = _compose(path, result)
    except EditError as exc:
        return f"the result would not parse ({exc})"
    if len(new_docs) != len(old_docs):
        return "the result would change the number of documents"
    # Found by address, not by path: the edit may change a value a selector matched on.
    node = _node_at(new_docs[doc], address)
    if not isinstance(node, ScalarNode):
        return "the result would not have a single value in the same place"
    if node.value != expect or node.tag != tag:
        return f"the result would read back as {node.value!r} ({_short(node.tag)})"
    for i, (before, after) in enumerate(zip(old_docs, new_docs, strict=True)):
        if i != doc:
            same = _fingerprint(before, (), None) == _fingerprint(after, (), None)
        elif added:
            skip = (address[:-1], address[-1])
            same = _fingerprint(before, (), None) == _fingerprint(after, (), None, skip)
        else:
            same = _fingerprint(before, (), address, None) == _fingerprint(after, (), address, None)
        if not same:
            return "the result would change other values in the file"
    return ""


def _node_at(root: Node | None, address: Address) -> Node | None:
    node = root
    for step in address:
        if isinstance(node, MappingNode) and step // 2 < len(node.value):
            node = node.value[step // 2][step % 2]
        elif isinstance(node, SequenceNode) and step < len(node.value):
            node = node.value[step]
        else:
            return None
    return node


def _fingerprint(
    node: Node | None,
    here: Address,
    exclude: Address | None,
    skip: tuple[Address, int] | None = None,
) -> object:
    if node is None:
        return None
    if here == exclude:
        return "<target>"
    if isinstance(node, ScalarNode):
        return ("s", node.tag, node.value, node.style, node.anchor)
    children: list[object] = []
    if isinstance(node, MappingNode):
        for i, (key, val) in enumerate(node.value):
            if skip is not None and skip == (here, 2 * i + 1):
                continue
            children.append(
                (
                    _fingerprint(key, (*here, 2 * i), exclude, skip),
                    _fingerprint(val, (*here, 2 * i + 1), exclude, skip),
                )
            )
        return ("m", node.tag, node.flow_style, node.anchor, children)
    assert isinstance(node, SequenceNode)
    for i, item in enumerate(node.value):
        if skip is not None and skip == (here, i):
            continue
        children.append(_fingerprint(item, (*here, i), exclude, skip))
    return ("q", node.tag, node.flow_style, node.anchor, children)


def _refuse_shared(
    path: str, field: str, docs: list[Node | None], doc: int, chain: tuple[Node, ...]
) -> None:
    counts: dict[int, int] = {}
    for node in _walk(docs[doc]):
        counts[id(node)] = counts.get(id(node), 0) + 1
    for node in chain:
        if counts.get(id(node), 0) > 1:
            anchor = f" (&{node.anchor})" if node.anchor else ""
            raise EditError(
                path,
                f"{field}: line {_line(node)}: the value is shared through a YAML anchor{anchor} "
                "used elsewhere; editing it would change every alias too",
            )


def _walk(node: Node | None) -> Iterator[Node]:
    if node is None:
        return
    yield node
    if isinstance(node, MappingNode):
        for key, val in node.value:
            yield from _walk(key)
            yield from _walk(val)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            yield from _walk(item)


# --------------------------------------------------------------------------- resolution


def _resolve_all(
    path: str, field: str, docs: list[Node | None], segments: tuple[Segment, ...]
) -> list[_Outcome]:
    outcomes: list[_Outcome] = []
    for i, root in enumerate(docs):
        try:
            outcomes.append(_resolve(i, root, segments, _is_kustomization(path)))
        except _HardError as exc:
            raise EditError(path, f"{field}: {_where(docs, i)}{exc}") from None
    return outcomes


def _is_kustomization(path: str) -> bool:
    return posixpath.basename(path) in _KUSTOMIZATION_FILES


def _new_entry_shape(
    segments: tuple[Segment, ...], i: int, kustomization: bool
) -> tuple[Match, str] | None:
    """``segments[i:]`` is ``[key=value].field`` with ``key`` the entry's identity: the
    selector and the field, else None. In a kustomization only Kustomize's own keyed lists
    (images, replicas, generators) qualify, at the top of the document."""
    if len(segments) - i != 2:
        return None
    seg, last = segments[i], segments[i + 1]
    if not isinstance(seg, Match) or not isinstance(last, Key) or not seg.key:
        return None
    if last.name == seg.key:
        return None  # setting the identity itself: there is nothing to identify the entry by
    if kustomization:
        if i != 1 or not isinstance(segments[0], Key):
            return None
        if _KUSTOMIZATION_LISTS.get(segments[0].name) != seg.key:
            return None
    return seg, last.name


def _identified_by(items: list[Node], key: str) -> bool:
    """Every item is a block or flow mapping with a scalar ``key``: the key is their identity."""
    return all(
        isinstance(item, MappingNode)
        and any(
            isinstance(k, ScalarNode) and k.value == key and isinstance(v, ScalarNode)
            for k, v in item.value
        )
        for item in items
    )


def _resolve(
    doc: int, root: Node | None, segments: tuple[Segment, ...], kustomization: bool = False
) -> _Outcome:
    node: Node | None = root
    address: Address = ()
    chain: list[Node] = []
    key_node: ScalarNode | None = None
    for i, seg in enumerate(segments):
        here = format_field_path(segments[:i]) or "the document"
        last = i == len(segments) - 1
        if node is not None:
            chain.append(node)
        if isinstance(node, MappingNode):
            if isinstance(seg, Match):
                return _Failure(
                    doc,
                    i,
                    f"{here} is a mapping, not a list, so {seg} selects nothing; "
                    f"keys present: {_keys(node)}",
                )
            name = seg.name if isinstance(seg, Key) else seg.text
            hits = [
                (j, k, v)
                for j, (k, v) in enumerate(node.value)
                if isinstance(k, ScalarNode) and k.value == name
            ]
            if len(hits) > 1:
                lines = ", ".join(str(_line(k)) for _, k, _ in hits)
                raise _HardError(
                    f"duplicate key {name!r} in {here} at lines {lines}; Kustomize would use "
                    "only the last one -- remove the others"
                )
            if not hits:
                if last:
                    return _Creatable(doc, node, address, tuple(chain), name, literal=False)
                shape = _new_entry_shape(segments, i + 1, kustomization)
                if shape is not None:
                    return _NewEntry(doc, node, address, tuple(chain), name, *shape)
                return _Failure(doc, i, f"{here} has no key {name!r}{_suggest(name, node)}")
            j, k, v = hits[0]
            if not last and isinstance(v, ScalarNode) and _is_empty(v) and v.value == "":
                shape = _new_entry_shape(segments, i + 1, kustomization)
                if shape is not None:  # `images:` with nothing under it yet
                    return _NewEntry(doc, node, address, tuple(chain), name, *shape, fill=j)
            node, key_node, address = v, k, (*address, 2 * j + 1)
        elif isinstance(node, SequenceNode):
            key_node = None
            items: list[Node] = list(node.value)
            if isinstance(seg, Index):
                if seg.position >= len(items):
                    return _Failure(
                        doc,
                        i,
                        f"{here} has {len(items)} item(s); index {seg.position} is past the end",
                    )
                node, address = items[seg.position], (*address, seg.position)
            elif isinstance(seg, Match):
                picked = [j for j, item in enumerate(items) if _matches(item, seg)]
                if len(picked) > 1:
                    lines = ", ".join(str(_line(items[j])) for j in picked)
                    raise _HardError(f"{seg} matches {len(picked)} items of {here} (lines {lines})")
                if not picked:
                    shape = _new_entry_shape(segments, i, kustomization)
                    if shape is not None and _identified_by(items, seg.key):
                        return _NewEntry(doc, node, address, tuple(chain), None, *shape)
                    return _Failure(doc, i, f"no item of {here} has {_describe_match(seg, items)}")
                node, address = items[picked[0]], (*address, picked[0])
            else:
                return _literal(doc, node, items, seg, segments, i, address, chain, here)
        else:
            what = "empty" if _is_empty(node) else f"the single value {_scalar_text(node)!r}"
            return _Failure(doc, i, f"{here} is {what}, so it has no {seg}")
    if isinstance(node, MappingNode | SequenceNode):
        kind = "a mapping" if isinstance(node, MappingNode) else "a list"
        return _Failure(
            doc, len(segments), f"the target (line {_line(node)}) is {kind}, not a single value"
        )
    assert isinstance(node, ScalarNode)
    chain.append(node)
    return _Target(doc, node, address, tuple(chain), key_node, None)


def _literal(
    doc: int,
    seq: SequenceNode,
    items: list[Node],
    seg: Key,
    segments: tuple[Segment, ...],
    i: int,
    address: Address,
    chain: list[Node],
    here: str,
) -> _Outcome:
    """A key segment on a list of KEY=value strings (configMapGenerator literals)."""
    literals = [
        (j, item)
        for j, item in enumerate(items)
        if isinstance(item, ScalarNode) and "=" in item.value and item.style not in ("|", ">")
    ]
    if items and not literals:
        return _Failure(
            doc,
            i,
            f"{here} is a list; select an item with [key=value], [=value] or an index, not {seg}",
        )
    hits = [(j, item) for j, item in literals if item.value.split("=", 1)[0] == seg.name]
    if len(hits) > 1:
        lines = ", ".join(str(_line(item)) for _, item in hits)
        raise _HardError(
            f"literal {seg.name!r} appears {len(hits)} times in {here} (lines {lines})"
        )
    if i != len(segments) - 1:
        return _Failure(doc, i + 1, f"the literal {here}.{seg} is a single value with no fields")
    if not hits:
        return _Creatable(doc, seq, address, (*chain,), seg.name, literal=True)
    j, item = hits[0]
    assert isinstance(item, ScalarNode)
    return _Target(doc, item, (*address, j), (*chain, item), None, seg.name)


def _matches(item: Node, seg: Match) -> bool:
    if seg.key == "":
        return isinstance(item, ScalarNode) and item.value == seg.value
    if not isinstance(item, MappingNode):
        return False
    return any(
        isinstance(k, ScalarNode)
        and k.value == seg.key
        and isinstance(v, ScalarNode)
        and v.value == seg.value
        for k, v in item.value
    )


def _describe_match(seg: Match, items: list[Node]) -> str:
    if seg.key == "":
        present = [i.value for i in items if isinstance(i, ScalarNode)]
        what = f"the value {seg.value!r}"
    else:
        present = [
            v.value
            for item in items
            if isinstance(item, MappingNode)
            for k, v in item.value
            if isinstance(k, ScalarNode) and k.value == seg.key and isinstance(v, ScalarNode)
        ]
        what = f"{seg.key}={seg.value}"
    if not present:
        key = "values" if seg.key == "" else f"item with a {seg.key!r}"
        return f"{what} (no {key} there at all)"
    shown = ", ".join(present[:20]) + (", ..." if len(present) > 20 else "")
    label = "values" if seg.key == "" else f"{seg.key}s"
    close = difflib.get_close_matches(seg.value, present, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{what} ({label} present: {shown}){hint}"


def _single_target(path: str, field: str, docs: list[Node | None], found: list[_Target]) -> _Target:
    if len(found) > 1:
        names = ", ".join(_describe_doc(docs, t.doc) for t in found)
        raise EditError(path, f"{field}: ambiguous, found in several documents ({names})")
    return found[0]


def _current_value(target: _Target) -> str:
    value = str(target.node.value)
    if target.literal_key is not None:
        return value.split("=", 1)[1]
    return value


# --------------------------------------------------------------------------- helpers


def _decode(path: str, content: bytes) -> str:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EditError(path, f"not UTF-8 text (bad byte at offset {exc.start})") from None


def _parse(path: str, field: str) -> tuple[Segment, ...]:
    try:
        return parse_field_path(field)
    except ValueError as exc:
        raise EditError(path, f"invalid field path: {exc}") from None


def _compose(path: str, text: str) -> list[Node | None]:
    yaml = YAML(typ="safe", pure=True)
    try:
        return list(yaml.compose_all(_TRAILING_TABS.sub(_spaces, text)))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise EditError(path, f"not valid YAML: {problem}{where}") from None
    except YAMLError as exc:
        raise EditError(path, f"not valid YAML: {exc}") from None


# ruamel.yaml (like PyYAML) rejects a tab after a token, which YAML and Kustomize allow. Trailing
# whitespace is never part of a value outside block scalars (which are not edited), so the
# parser sees tabs there as spaces; offsets are unchanged and the file itself is left alone.
_TRAILING_TABS = re.compile(r"[ \t]*\t[ \t]*(?=\r?\n|\r|$)")


def _spaces(match: re.Match[str]) -> str:
    return " " * len(match.group(0))


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _depth(outcome: _Failure) -> int:
    return outcome.depth


def _keys(node: MappingNode) -> str:
    names = [k.value for k, _ in node.value if isinstance(k, ScalarNode)]
    return ", ".join(names) if names else "(none)"


def _suggest(name: str, node: MappingNode) -> str:
    names = [k.value for k, _ in node.value if isinstance(k, ScalarNode)]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f" (keys present: {_keys(node)}){hint}"


def _is_empty(node: Node | None) -> bool:
    return node is None or (isinstance(node, ScalarNode) and node.tag == _NULL)


def _scalar_text(node: Node | None) -> str:
    return str(node.value) if isinstance(node, ScalarNode) else ""


def _short(tag: str | None) -> str:
    return (tag or "?").rsplit(":", 1)[-1]


def _line_break(text: str, pos: int) -> str:
    before = text.rfind("\n", 0, pos)
    if before < 0:
        before = text.find("\n")
    return "\r\n" if before > 0 and text[before - 1] == "\r" else "\n"


def _where(docs: list[Node | None], doc: int) -> str:
    return f"in {_describe_doc(docs, doc)}: " if len(docs) > 1 else ""


def _describe_doc(docs: list[Node | None], doc: int) -> str:
    root = docs[doc]
    label = f"document {doc + 1}"
    if isinstance(root, MappingNode):
        fields = {k.value: v for k, v in root.value if isinstance(k, ScalarNode)}
        kind = fields.get("kind")
        meta = fields.get("metadata")
        name = None
        if isinstance(meta, MappingNode):
            name = next(
                (v for k, v in meta.value if isinstance(k, ScalarNode) and k.value == "name"), None
            )
        if isinstance(kind, ScalarNode) and isinstance(name, ScalarNode):
            label += f" ({kind.value}/{name.value})"
        label += f", line {_line(root)}"
    return label
