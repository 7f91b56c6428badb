"""Rendered YAML streams: split into documents, parsed once by libyaml, Secrets redacted."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import yaml
from yaml import YAMLError

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
WITHHELD = "# rendered output is not valid YAML; withheld so nothing secret can leak\n"


@functools.cache
def _process_key() -> bytes:
    # Random per process: markers compare equal within one run, never across runs, and a
    # low-entropy secret cannot be recovered by hashing guesses.
    return secrets.token_bytes(32)


def redaction_marker(value: object) -> str:
    """Keyed, irreversible marker for a secret value; equal values give equal markers."""
    raw = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    digest = hmac.new(_process_key(), raw.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"<redacted sha256:{digest[:12]}>"


def redact_resource(doc: object) -> object:
    """A copy of one resource with Secret values and last-applied annotations redacted."""
    if not isinstance(doc, dict):
        return doc
    out = dict(doc)
    if out.get("kind") == "Secret":
        for key in ("data", "stringData"):
            values = out.get(key)
            if isinstance(values, dict):
                out[key] = {k: redaction_marker(v) for k, v in values.items()}
            elif values is not None:
                out[key] = redaction_marker(values)
    metadata = out.get("metadata")
    if isinstance(metadata, dict):
        annotations = metadata.get("annotations")
        if isinstance(annotations, dict) and LAST_APPLIED in annotations:
            out["metadata"] = {
                **metadata,
                "annotations": {
                    **annotations,
                    LAST_APPLIED: redaction_marker(annotations[LAST_APPLIED]),
                },
            }
    return out


class _Loader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """libyaml's parser with YAML 1.2 core-schema scalars, as Kustomize (go-yaml v3) writes
    them: `yes`, `on`, `0755`, `1:20` and dates stay strings, unlike YAML 1.1."""

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = {}


for _tag, _pattern, _first in (
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?(?:0|[1-9][0-9]*)|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+.0123456789"),
    ),
):
    _Loader.add_implicit_resolver(_tag, re.compile(_pattern), _first)


class _Dumper(yaml.CSafeDumper if yaml.__with_libyaml__ else yaml.SafeDumper):  # type: ignore[misc]
    """libyaml's emitter for the few resources redaction rewrites."""


def load_documents(text: str) -> list[object]:
    """Every non-empty document of a YAML stream (YAML 1.2 core schema)."""
    return [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]


def dump_document(doc: object) -> str:
    """One document as block YAML with sorted keys."""
    return yaml.dump(
        doc, Dumper=_Dumper, default_flow_style=False, sort_keys=True, width=4096,
        allow_unicode=True,
    )  # fmt: skip


# Kustomize's generated-name suffix: 10 characters of a content hash, in an alphabet without
# vowels (api/hasher: "bcdfghjklmnpqrstvwxz2456789").
_GENERATED_NAME = re.compile(r"^(.+)-([bcdfghjklmnpqrstvwxz2456789]{10})$")


def generated_secret_names(docs: list[object]) -> dict[str, str]:
    """{name: redacted name} of Secrets whose generated suffix hashes their content: the
    suffix is a fingerprint of the secret, so it gets the same keyed marker as a value."""
    names: dict[str, str] = {}
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("kind") != "Secret":
            continue
        metadata = doc.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        match = _GENERATED_NAME.match(name) if isinstance(name, str) else None
        if match:
            names[name] = f"{match.group(1)}-{redaction_marker(match.group(2))}"  # type: ignore[index]
    return names


def _rename(value: object, names: Mapping[str, str]) -> object:
    """Every string equal to a generated Secret name (its references too) replaced."""
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, dict):
        return {k: _rename(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_rename(v, names) for v in value]
    return value


def redact_documents(docs: list[object]) -> list[object]:
    """Every resource of a render redacted: Secret values, last-applied annotations, and
    generated Secret name suffixes wherever the name is referenced."""
    names = generated_secret_names(docs)
    if names:
        docs = [_rename(d, names) for d in docs]
    return [redact_resource(d) for d in docs]


@dataclass(frozen=True)
class Resource:
    """One rendered document: its parsed, redacted value and the text a diff shows."""

    value: object
    text: str  # Kustomize's own text, or a sorted re-dump when redaction rewrote it
    rewritten: bool = False


# Kustomize separates documents with a bare `---` line; a line starting with `---` cannot
# occur inside a document that is a mapping (block content is indented), so this is exact.
_SEPARATOR = re.compile(r"^---[ \t]*(?:\n|$)", re.MULTILINE)


def split_documents(text: str) -> list[str]:
    """The text of each document of a stream, each ending in a newline."""
    return [c if c.endswith("\n") else c + "\n" for c in _SEPARATOR.split(text) if c.strip()]


def may_need_redaction(chunk: str) -> bool:
    """Could redaction change this document? False only when it cannot be a Secret nor
    carry a last-applied annotation: YAML can spell `Secret` without the literal word only
    through an escape (backslash) or a tag (`!`). Generated names are checked apart."""
    return "Secret" in chunk or LAST_APPLIED in chunk or "\\" in chunk or "!" in chunk


@dataclass
class RenderedStream:
    """One render's documents: text chunks, parsed only when asked, redacted when needed.

    Raises YAMLError (or ValueError, RecursionError) when a parsed chunk is not valid YAML."""

    text: str
    chunks: list[str] = field(init=False)
    names: dict[str, str] = field(init=False)  # generated Secret names -> redacted names
    _memo: dict[str, list[Resource]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.chunks = split_documents(self.text)
        secrets_seen = [
            doc for c in self.chunks if may_need_redaction(c) for doc in load_documents(c)
        ]
        self.names = generated_secret_names(secrets_seen)

    def needs_redaction(self, chunk: str) -> bool:
        return may_need_redaction(chunk) or any(name in chunk for name in self.names)

    def resources(self, chunk: str) -> list[Resource]:
        """The chunk's documents, redacted; Kustomize's text kept unless redaction rewrote it."""
        if chunk not in self._memo:
            values = load_documents(chunk)
            out = []
            for value in values:
                redacted = redact_resource(_rename(value, self.names) if self.names else value)
                if len(values) == 1 and redacted == value:
                    out.append(Resource(value, chunk))
                else:
                    out.append(Resource(redacted, dump_document(redacted), rewritten=True))
            self._memo[chunk] = out
        return self._memo[chunk]

    def redacted_text(self) -> str:
        """The whole stream with every secret redacted; unaffected documents unparsed."""
        parts: list[str] = []
        for chunk in self.chunks:
            if self.needs_redaction(chunk):
                parts.extend(r.text for r in self.resources(chunk))
            else:
                parts.append(chunk)
        return "---\n".join(parts)


def redact_rendered(text: str) -> str:
    """Rendered multi-document YAML with every secret value redacted (and the content-hash
    suffixes of generated Secret names, wherever they are referenced)."""
    try:
        return RenderedStream(text).redacted_text()
    except (YAMLError, ValueError, RecursionError):
        return WITHHELD
