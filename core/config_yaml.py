"""Reading a config's YAML safely, remembering the line of every key.

PyYAML alone would keep the last of two equal keys, follow recursive aliases
and expand alias bombs; each of those is refused here before the document is
built, so a problem can always be reported with its line.
"""

from __future__ import annotations

from typing import Any

import yaml

from arb.config_errors import ConfigError

#: Nodes a config may expand to, aliases included: a few hundred is normal;
#: this only stops "billion laughs" alias bombs before anything walks them.
MAX_NODES = 100_000

#: A config is a few levels deep; this stops absurd nesting before PyYAML
#: (recursive, and slow on deep flow collections) runs out of stack.
MAX_DEPTH = 32

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"


def parse_yaml(text: str, source: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The top-level mapping and the line of each key path (``a.b``, ``a[0]``)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(source, ["the file is empty: a config needs at least `pairs` "
                                       "(see configs/live/*.yaml)"])
        if not isinstance(node, yaml.MappingNode):
            got = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
            raise ConfigError(source, [f"the top level must be a mapping of keys, got {got} "
                                       "(see configs/live/*.yaml)"])
        lines: dict[str, int] = {}
        problems: list[str] = []
        _index_lines(node, "", lines, problems, set(), [0])
        if problems:
            raise ConfigError(source, problems)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        # Never str(exc): it quotes the offending line, which may hold a secret.
        problem = getattr(exc, "problem", None) or getattr(exc, "context", None) \
            or getattr(exc, "reason", None) or type(exc).__name__
        raise ConfigError(source, [f"not valid YAML: {where}{problem}"]) from None
    except RecursionError:  # pragma: no cover - _Loader stops far earlier
        raise ConfigError(source, ["not a usable config: nested too deeply"]) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):  # pragma: no cover - the node check above decides
        raise ConfigError(source, ["the top level must be a mapping of keys (see configs/live/*.yaml)"])
    return data, lines


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses nesting deeper than :data:`MAX_DEPTH`."""

    _depth = 0

    def compose_node(self, parent, index):  # type: ignore[override]
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                                  mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _index_lines(node: yaml.Node, path: str, lines: dict[str, int], problems: list[str],
                 active: set[int], budget: list[int]) -> None:
    """Record the line of every key; a key given twice is an error, since
    YAML would silently keep the last one (a doubled safety limit).  Keys that
    are not text, recursive aliases and alias bombs are errors too."""
    budget[0] += 1
    if budget[0] > MAX_NODES:
        if budget[0] == MAX_NODES + 1:
            problems.append(f"the config expands to more than {MAX_NODES} values "
                            "(aliases?); refusing to read it")
        return
    if id(node) in active:
        problems.append(f"{path or '(top level)'} (line {node.start_mark.line + 1}): "
                        "an alias refers to itself (recursive YAML)")
        return
    if not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        return
    active.add(id(node))
    try:
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if key_node.tag == _MERGE_TAG:
                    _index_lines(value_node, path, lines, problems, active, budget)
                    continue
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
                    shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "(a list or mapping)"
                    problems.append(f"{path + '.' if path else ''}{shown} (line {line}): key is not text "
                                    f"(YAML reads it as {key_node.tag.rsplit(':', 1)[-1]}); quote it or fix it")
                    continue
                key = str(key_node.value)
                child = f"{path}.{key}" if path else key
                if key in seen:
                    problems.append(f"{child} (line {line}): key given twice")
                seen.add(key)
                lines.setdefault(child, line)
                _index_lines(value_node, child, lines, problems, active, budget)
        else:
            for i, item in enumerate(node.value):
                child = f"{path}[{i}]"
                lines.setdefault(child, item.start_mark.line + 1)
                _index_lines(item, child, lines, problems, active, budget)
    finally:
        active.discard(id(node))
