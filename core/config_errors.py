"""How a config problem is reported: ``path (line N): message``, all at once."""

from __future__ import annotations

from typing import Mapping


class ConfigError(ValueError):
    """A config that must not be run; ``problems`` lists every reason."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))

    def report(self) -> str:
        lines = [f"config error in {self.source}:"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def where(path: str, lines: Mapping[str, int]) -> str:
    """``path (line N)``, with the line of the nearest enclosing key that has one:
    a default filled in or a list item may have no line of its own."""
    probe = path
    while probe:
        if probe in lines:
            return f"{path or '(top level)'} (line {lines[probe]})"
        probe = probe.rsplit(".", 1)[0] if "." in probe else ""
    return path or "(top level)"
