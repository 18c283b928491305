"""Settings objects: one frozen dataclass per concern, each field declared once together with its click option.

A command names the settings it takes with ``@uses(RegistrySettings, SyncSettings)``; the decorator adds every
field's option (or argument) to the command and, when it runs, pops each class's fields from click's keyword
arguments and hands the command one frozen instance per class (keyword ``registry``, ``sync``...: the class's
``param``).  A keyword argument that no settings class and no parameter of the command takes is an error
(``TypeError`` naming it), never silently dropped.  Adding an option is adding one field::

    parallel: int = opt("--parallel", type=click.IntRange(1, 32), default=2, help="Versions downloaded at once.")

Every option also reads ``SPECMAN_<OPTION>`` from the environment: ``opt`` derives the variable from the option's
long name unless ``envvar`` is given (``envvar=None`` for none).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import click

__all__ = ["Settings", "arg", "file_opt", "opt", "uses"]

F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S", bound="Settings")
_OPTION: str = "specman.option"
_ARGUMENT: str = "specman.argument"
_UNSET: Any = object()


def _envvar(decls: tuple[str, ...]) -> str | None:
    long = next((d for d in decls if d.startswith("--")), None)
    return "SPECMAN_" + long[2:].replace("-", "_").upper() if long else None


def opt(*decls: str, **attrs: Any) -> Any:
    """A settings field that is the click option ``decls`` (``attrs`` as ``click.option`` takes them)."""
    envvar = attrs.pop("envvar", _UNSET)
    attrs["envvar"] = _envvar(decls) if envvar is _UNSET else envvar
    if attrs.get("is_flag"):
        default: Any = attrs.setdefault("default", False)
    elif attrs.get("multiple"):
        default = tuple(attrs.get("default") or ())
    else:
        default = attrs.get("default")
    return dataclasses.field(default=default, metadata={_OPTION: (decls, attrs)})


def file_opt(*decls: str, exists: bool = True, **attrs: Any) -> Any:
    """A settings field that is an option naming a file (which must exist unless ``exists=False``)."""
    return opt(*decls, type=click.Path(exists=exists, dir_okay=False, path_type=Path), **attrs)


def arg(name: str, **attrs: Any) -> Any:
    """A settings field that is the click argument ``name``."""
    return dataclasses.field(default=attrs.get("default"), metadata={_ARGUMENT: ((name,), attrs)})


@dataclasses.dataclass(frozen=True)
class Settings:
    """Base of the settings classes (frozen dataclasses whose fields are declared with ``opt``/``arg``)."""

    param: ClassVar[str] = "settings"  # the keyword under which a command receives the instance

    @classmethod
    def declared(cls) -> list[dataclasses.Field[Any]]:
        return [f for f in dataclasses.fields(cls) if _OPTION in f.metadata or _ARGUMENT in f.metadata]

    @classmethod
    def apply(cls, func: F) -> F:
        """Add the options and arguments of every declared field to ``func`` (in declaration order)."""
        for f in reversed(cls.declared()):
            if _OPTION in f.metadata:
                decls, attrs = f.metadata[_OPTION]
                func = click.option(*decls, f.name, **attrs)(func)
            else:
                decls, attrs = f.metadata[_ARGUMENT]
                func = click.argument(f.name, **attrs)(func)
        return func

    @classmethod
    def take(cls: type[S], kwargs: dict[str, Any]) -> S:
        """Pop this class's fields from click's ``kwargs`` and build the settings."""
        return cls(**{f.name: kwargs.pop(f.name) for f in cls.declared() if f.name in kwargs})


def uses(*classes: type[Settings]) -> Callable[[F], F]:
    """Give a command the options of ``classes`` and one settings instance per class (see the module docstring)."""

    def decorate(func: F) -> F:
        accepted = set(inspect.signature(func).parameters)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for cls in classes:
                kwargs[cls.param] = cls.take(kwargs)
            leftover = sorted(set(kwargs) - accepted)
            if leftover:
                raise TypeError(f"{func.__name__}: option(s) {', '.join(leftover)} taken by no settings class")
            return func(*args, **kwargs)

        for cls in reversed(classes):
            wrapper = cls.apply(wrapper)
        return wrapper  # type: ignore[return-value]

    return decorate
