"""Prompt templates kept as text files in ``prompts/``, with named ``{{variables}}`` that must all be given.

A template that is rendered without one of its variables, or with a variable it does not have, is an
error, never an empty string: a silently missing lesson text would let the model answer from nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_VARIABLE = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")


class PromptError(ValueError):
    """A prompt template is missing, or was rendered with the wrong variables."""


@dataclass(frozen=True)
class PromptTemplate:
    """A named template with ``{{name}}`` placeholders."""

    name: str
    text: str

    @property
    def variables(self) -> frozenset[str]:
        """The names of the template's placeholders."""
        return frozenset(_VARIABLE.findall(self.text))

    def render(self, **values: str) -> str:
        """The template with every placeholder filled; raises PromptError on a missing or unknown variable."""
        missing = self.variables - values.keys()
        unknown = values.keys() - self.variables
        if missing:
            raise PromptError(f"prompt '{self.name}' needs {', '.join(sorted(missing))}; pass a value for each")
        if unknown:
            raise PromptError(f"prompt '{self.name}' has no variable {', '.join(sorted(unknown))}; check the name")
        return _VARIABLE.sub(lambda match: values[match.group(1)], self.text)


class PromptLibrary:
    """Templates loaded by name from a folder of ``NAME.txt`` files."""

    def __init__(self, folder: Path):
        self.folder = folder

    def get(self, name: str) -> PromptTemplate:
        """The template ``name``; raises PromptError when there is no such file."""
        path = self.folder / f"{name}.txt"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in self.folder.glob("*.txt"))) or "none"
            raise PromptError(f"no prompt '{name}' in {self.folder} (there are: {known})")
        return PromptTemplate(name, path.read_text(encoding="utf-8").strip())
