"""Plugin registries filled from entry points.

Groups: `membench.workloads`, `membench.strategies`, `membench.runtimes`. The core asks a
registry for a name; it never imports a plugin module itself. Third parties add plugins
by declaring entry points in their own distribution.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from typing import Any, ClassVar, Generic, TypeVar

from harness.core.errors import MembenchError, SpecError
from harness.plugins.params import Param, resolve_params, unknown
from harness.plugins.spec import Spec, parse_spec

WORKLOADS = "membench.workloads"
STRATEGIES = "membench.strategies"
RUNTIMES = "membench.runtimes"


class Plugin:
    """Base of every registered plugin: a name, declared parameters, validated values."""

    NAME: ClassVar[str] = ""
    DESCRIPTION: ClassVar[str] = ""
    PARAMS: ClassVar[tuple[Param, ...]] = ()

    #: a version pin from the spec (`name@1.2.3`); only plugins that accept one keep it
    version_pin: str | None = None

    def __init__(self, **params: Any) -> None:
        self.params: Mapping[str, Any] = resolve_params(
            self.NAME, self.declared_params(), {k: str(v) for k, v in params.items()}
        )
        self.validate()

    @classmethod
    def from_spec(cls, spec: Spec) -> Plugin:
        obj = cls.__new__(cls)
        obj.params = resolve_params(cls.NAME, cls.declared_params(), spec.as_dict())
        if spec.version is not None:
            if not cls.accepts_version():
                raise SpecError(f"{cls.NAME} does not take a version pin "
                                f"('@{spec.version}'); only installable runtimes do")
            obj.version_pin = spec.version
        obj.validate()
        return obj

    @classmethod
    def accepts_version(cls) -> bool:
        """Whether `name@version` specs are meaningful for this plugin."""
        return False

    @classmethod
    def declared_params(cls) -> tuple[Param, ...]:
        """Every parameter the plugin accepts (its own PARAMS plus any its base adds)."""
        return cls.PARAMS

    def validate(self) -> None:
        """Check cross-parameter constraints; raise a MembenchError subclass when impossible."""

    #: a parameter whose values are two ways of doing the same thing, to be compared
    #: sample by sample (a runtime's `driver`: embedded or linked; a workload's
    #: `toolchain`: the code generator or clang): specs that differ only in it join one
    #: comparison group
    TWIN_PARAM: ClassVar[str | None] = None

    def group_spec(self) -> str:
        """This plugin's part of a comparison group's key: its spec with TWIN_PARAM at
        its default (the spec itself without one)."""
        if self.TWIN_PARAM is None:
            return self.spec
        default = next(p.default for p in self.declared_params() if p.name == self.TWIN_PARAM)
        twin = copy.copy(self)
        twin.params = {**self.params, self.TWIN_PARAM: default}
        return twin.spec

    @property
    def spec(self) -> str:
        """Canonical spec: the name plus every parameter that differs from its default."""
        parts = [f"{p.name}={_fmt(self.params[p.name])}" for p in self.declared_params()
                 if self.params[p.name] != p.default]
        head = self.NAME if self.version_pin is None else f"{self.NAME}@{self.version_pin}"
        return head + (":" + ",".join(parts) if parts else "")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec}>"


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


P = TypeVar("P", bound=Plugin)


class Registry(Generic[P]):
    """Name -> plugin class, loaded lazily from one entry-point group.

    `extra` lets tests and embedders add classes without installing a distribution.
    """

    def __init__(self, group: str, kind: str, extra: Mapping[str, type[P]] | None = None) -> None:
        self.group = group
        self.kind = kind
        self._extra = dict(extra or {})
        self._classes: dict[str, type[P]] | None = None

    def _load(self) -> dict[str, type[P]]:
        if self._classes is None:
            classes: dict[str, type[P]] = {}
            for ep in entry_points(group=self.group):
                try:
                    cls = ep.load()
                except Exception as exc:  # a broken third-party plugin must not hide the rest
                    raise MembenchError(f"cannot load {self.kind} plugin {ep.name!r} "
                                        f"({ep.value}): {type(exc).__name__}: {exc}") from exc
                classes[ep.name] = cls
            classes.update(self._extra)
            self._classes = classes
        return self._classes

    def names(self) -> list[str]:
        return sorted(self._load())

    def get(self, name: str) -> type[P]:
        classes = self._load()
        if name not in classes:
            raise unknown(self.kind, name, list(classes))
        return classes[name]

    def create(self, spec: str | Spec) -> P:
        parsed = parse_spec(spec) if isinstance(spec, str) else spec
        cls = self.get(parsed.name)
        obj = cls.from_spec(parsed)
        return obj  # type: ignore[return-value]

    def __iter__(self) -> Iterator[tuple[str, type[P]]]:
        return iter(sorted(self._load().items()))
