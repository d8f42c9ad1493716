"""The one way dcim reads YAML it is given (site config, profiles, the web config file).

`yaml.safe_load` alone runs no code, but a file can still hurt the reader: a few kilobytes of
nested aliases ("billion laughs") expand to gigabytes once anything walks the tree as copies,
20,000 nested `[` exhaust Python's recursion, a stray Latin-1 byte raises UnicodeDecodeError,
and a repeated key silently keeps the last value. This loader refuses each of them with a
`file: line N column M: message` ConfigError before building anything large:

- the file must be UTF-8 text of at most MAX_BYTES;
- nesting deeper than MAX_DEPTH is refused while composing, before any recursion limit;
- the tree with every alias expanded may hold at most MAX_NODES nodes (counted on the composed
  graph, in time linear in the file, before construction);
- an alias inside the node it names (`&a [*a]`, a structure containing itself) is an error;
- a key repeated in one mapping is an error (`<<` merge keys may still be overridden);
- a value the YAML resolver cannot build (a timestamp such as 2026-13-45) is an error, not a
  ValueError escaping to the caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader, ReaderError
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from dcim.errors import ConfigError

MAX_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 64
# A 10,000-device site config is about 150,000 nodes; a billion-laughs file is 10**9.
MAX_NODES = 1_000_000

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Limit(yaml.MarkedYAMLError):
    """A limit of this loader was exceeded."""


class _SafeLoader(Reader, Scanner, Parser, Composer, SafeConstructor, Resolver):
    def __init__(self, stream: str):
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Limit(None, None, f"nesting deeper than {MAX_DEPTH} levels",
                             self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError) as exc:
            raise ConstructorError(None, None, f"invalid value: {exc}", node.start_mark) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            first: dict[Any, Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    previous = first.setdefault(key, key_node)
                except TypeError:
                    continue  # SafeConstructor reports the unhashable key itself
                if previous is not key_node:
                    raise ConstructorError(
                        None, None,
                        f"duplicate key {key!r} (first at line {previous.start_mark.line + 1})",
                        key_node.start_mark)
        return super().construct_mapping(node, deep)


def _expanded_size(root: Node) -> int:
    """Nodes in the tree with every alias expanded, without expanding it (memoised per node)."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()  # nodes whose children are being sized: meeting one is a cycle
    # Iterative post-order walk: the graph is at most MAX_DEPTH deep, but be safe regardless.
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        if not done and id(node) in open_:
            # `&a [*a]`: PyYAML builds a list that contains itself; nothing dcim reads may.
            raise _Limit(None, None, "an alias refers to the node that contains it",
                         node.start_mark)
        if isinstance(node, ScalarNode):
            sizes[id(node)] = 1
            continue
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        if done:
            open_.discard(id(node))
            sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), MAX_NODES + 1)
        else:
            open_.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _where(mark: Any) -> str:
    return f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""


def parse(text: str, source: str) -> Any:
    """Parse one YAML document safely; any fault is a ConfigError `source: line N column M: ...`."""
    try:
        loader = _SafeLoader(text)
    except ReaderError as exc:  # a control character anywhere in the text
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError([f"{source}: line {line}: character #x{exc.character:04x} is not "
                           "allowed in YAML"]) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node) > MAX_NODES:
            raise _Limit(None, None, f"more than {MAX_NODES:,} values once aliases are expanded",
                         node.start_mark)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([f"{source}: {_where(mark)}{problem}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: invalid YAML: {exc}".replace("\n", " ")]) from None
    finally:
        loader.dispose()


def decode(data: bytes, source: str) -> str:
    """UTF-8 text of a file's bytes, or a ConfigError naming the first bad byte."""
    if len(data) > MAX_BYTES:
        raise ConfigError([f"{source}: larger than {MAX_BYTES // (1024 * 1024)} MiB"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError([f"{source}: line {line}: not UTF-8 text "
                           f"(byte 0x{data[exc.start]:02x} at offset {exc.start})"]) from None


def load(path: Path) -> Any:
    """Read and parse a YAML file safely; a ConfigError names the path on any fault."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    return parse(decode(data, str(path)), str(path))
