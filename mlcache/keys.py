"""Cache keys for decorated functions: one string per distinct call, and never one for two.

A key is ``<namespace>|<arguments>``: the namespace is the function's module and qualified
name (and ``:<version>`` when given); the arguments are the call bound to the function's
signature (so ``f(1, b=2)``, ``f(1, 2)`` and ``f(a=1, b=2)`` are one call, defaults applied),
joined by ``,``; keyword-only and ``**kwargs`` arguments as ``name=<value>`` (a name that is
not an identifier, possible through ``**{...}``, as its str encoding: ``s3:a,b=<value>``).
Each value is encoded with a type tag, and every text in it that could hold a separator
(str, type names, enum member names, ``str()`` of dates ...) with its length::

    None -> n        True/False -> T/F      int 12 -> i12      float 1.0 -> f1.0
    str "a:b" -> s3:a:b                     bytes -> y<n>:<hex>
    tuple -> t<n>(<items>)                  frozenset -> z<n>(<sorted items>)
    class -> c<n>:<type>                    enum member -> e<n>:<type>.<n>:<name>
    flag member (by value) -> e<n>:<type>:i<value>
    date, time, Decimal, UUID ... -> d<n>:<type>:<n>:<str>
    obj with __cache_key__() -> k<n>:<type>:<its key>

(``<type>`` is the type's ``module.qualname``.) Every encoding says where it ends, so a key
names exactly one argument list: ``1``, ``1.0``, ``True`` and ``"1"`` differ, ``"a:b"``
differs from ``("a", "b")``, and no str, name or type name can forge another argument.
Subclasses of int, str, float, bytes and tuple encode as their base type's value (read past
any ``__str__`` or ``__iter__`` of theirs), unless ``typed=True``, which adds the exact type:
``@<n>:<type>:<value>``; enum members (``IntEnum`` ones too) always encode as members. Lists,
dicts, sets and other objects without a ``__cache_key__`` have no stable value to key by: they
raise ``InvalidKeyError`` naming the argument (pass a tuple, or give the decorator ``key=``).
Two classes with the same module and qualified name (e.g. made by one factory function) are
one type to a key.

Methods: ``self`` is left out of the key, so the entries of a method are shared by every
instance (right for methods whose result depends only on their arguments). A method whose
result depends on the instance needs ``key=`` (e.g. ``key=lambda self, x: (self.id, x)``) or
an instance ``__cache_key__`` passed explicitly. ``cls`` is keyed by the class's qualified name.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import inspect
import uuid
from collections.abc import Callable
from typing import Any

from .errors import ConfigurationError, InvalidKeyError

__all__ = ["SEP", "KeyBuilder", "encode", "parse_plain"]

SEP = "|"
_DATA_TYPES = (datetime.datetime, datetime.date, datetime.time, datetime.timedelta,
               decimal.Decimal, uuid.UUID)  # fmt: skip (datetime before date: its subclass)
# The base types whose subclasses encode as the base's value, and how to get that value
# without calling anything the subclass overrides (a __str__ or __iter__ of its own could make
# two different values one key).
_BASES: tuple[tuple[type, Callable[[Any], Any]], ...] = (
    (int, int.__int__),
    (float, float.__float__),
    (str, lambda v: str.__getitem__(v, slice(None))),
    (bytes, lambda v: bytes.__getitem__(v, slice(None))),
    (tuple, lambda v: tuple.__getitem__(v, slice(None))),
)


def _sized(text: str) -> str:
    """``text`` with its length in front, so that it ends where it says, whatever it holds."""
    return f"{len(text)}:{text}"


def _type_name(t: type) -> str:
    """``t``'s ``module.qualname``, sized (a qualified name may hold any character)."""
    return _sized(f"{t.__module__}.{t.__qualname__}")


def encode(value: Any, typed: bool = False) -> str:
    """The tagged, self-delimiting encoding of one argument (see the module docstring): values
    that are not the same call never share an encoding."""
    t = type(value)
    if value is None:
        return "n"
    if t is bool:
        return "T" if value else "F"
    if t is int:
        return f"i{value}"
    if t is str:
        return f"s{len(value)}:{value}"
    if t is float:
        return f"f{value!r}"
    if t is tuple:
        return f"t{len(value)}({','.join(encode(v, typed) for v in value)})"
    if t is bytes:
        return f"y{len(value)}:{value.hex()}"
    if isinstance(value, enum.Flag):  # by value: a combination's name may be None or shared
        return f"e{_type_name(t)}:{encode(value.value)}"
    if isinstance(value, enum.Enum):
        return f"e{_type_name(t)}.{_sized(value.name)}"
    if t is frozenset:
        return f"z{len(value)}({','.join(sorted(encode(v, typed) for v in value))})"
    for base in _DATA_TYPES:
        if isinstance(value, base):
            return f"d{_type_name(t)}:{_sized(base.__str__(value))}"
    if isinstance(value, type):
        return f"c{_type_name(value)}"
    key = getattr(value, "__cache_key__", None)
    if key is not None and callable(key):
        return f"k{_type_name(t)}:{encode(key(), typed)}"
    for base, base_value in _BASES:
        if isinstance(value, base):
            inner = encode(base_value(value), typed)
            return f"@{_type_name(t)}:{inner}" if typed else inner
    raise TypeError(f"a {t.__name__} has no stable value to build a cache key from")


def parse_plain(text: str, arity: int) -> tuple[Any, ...] | None:
    """The ``arity`` exact ints and strs (the forms the compiled hit path keys by) whose
    arguments part of a key is exactly ``text``, or None for any other text; never raises.

    Only the key builder's own text is accepted: the values are encoded again and must give
    ``text`` back. Texts that merely decode to the same values (``i01``, ``i-0``, ``s01:a``,
    digits other than ASCII ones) would otherwise name the L1 entry of another key's call.
    """
    values: list[Any] = []
    i, n = 0, len(text)
    try:  # int() refuses some digit strings (e.g. longer than sys.get_int_max_str_digits())
        while i < n and len(values) < arity:
            tag = text[i]
            if tag == "i":
                j = text.find(",", i)
                j = n if j < 0 else j
                values.append(int(text[i + 1 : j]))
                i = j
            elif tag == "s":
                colon = text.find(":", i)
                size = int(text[i + 1 : colon]) if colon > i else -1
                if not 0 <= size <= n - colon - 1:
                    return None
                end = colon + 1 + size
                values.append(text[colon + 1 : end])
                i = end
            else:
                return None
            if i < n:
                if text[i] != ",":
                    return None
                i += 1
    except ValueError:
        return None
    if len(values) != arity or ",".join(encode(v) for v in values) != text:
        return None  # (the round trip also refuses a trailing ",", short strs, "i 1", ...)
    return tuple(values)


def _kwarg(name: str) -> str:
    """A keyword argument's name in a key: as is when it is an identifier (no separator can
    be in it, and no value's encoding is an identifier followed by ``=``), else encoded."""
    return name if name.isidentifier() else encode(name)


class KeyBuilder:
    """Builds the keys of one decorated function (see the module docstring).

    ``plain_arity``: the number of arguments when every parameter is an ordinary positional
    one (so a positional call with all of them is already the full binding), else 0; the hit
    path keys such calls by their arguments when those are exact ints and strs.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        namespace: str | None = None,
        version: Any = None,
        typed: bool = False,
        key: Callable[..., Any] | None = None,
    ) -> None:
        if namespace is None:
            namespace = f"{func.__module__}.{func.__qualname__}"
        elif not isinstance(namespace, str) or not namespace:
            raise ConfigurationError(f"namespace must be a non-empty str, got {namespace!r}")
        if version is not None:
            namespace = f"{namespace}:{version}"
        if SEP in namespace:
            raise ConfigurationError(f"namespace must not contain {SEP!r}, got {namespace!r}")
        self.namespace = namespace
        self.typed = typed
        self._custom = key
        self.signature = inspect.signature(func)
        params = list(self.signature.parameters.values())
        self.skip_self = bool(params) and params[0].name == "self"
        self._cls = bool(params) and params[0].name == "cls"
        keyed = params[1:] if self.skip_self else params
        plain = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params) and key is None
        self.plain_arity = len(keyed) if plain and not self._cls else 0

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """The key of the call ``func(*args, **kwargs)``."""
        if self._custom is not None:
            try:
                custom = self._custom(*args, **kwargs)
            except TypeError as exc:
                raise InvalidKeyError(f"key= function of {self.namespace}: {exc}") from exc
            return f"{self.namespace}{SEP}{self._encode('key= result', custom)}"
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.namespace}(): {exc}") from None
        bound.apply_defaults()
        parts = []
        for position, (name, value) in enumerate(bound.arguments.items()):
            if position == 0 and self.skip_self:
                continue
            kind = self.signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                parts.extend(self._encode(name, v) for v in value)
            elif kind is inspect.Parameter.VAR_KEYWORD:
                parts.extend(f"{_kwarg(k)}={self._encode(name, value[k])}" for k in sorted(value))
            elif kind is inspect.Parameter.KEYWORD_ONLY:
                parts.append(f"{name}={self._encode(name, value)}")  # (an identifier)
            else:
                parts.append(self._encode(name, value))
        return f"{self.namespace}{SEP}{','.join(parts)}"

    def _encode(self, name: str, value: Any) -> str:
        try:
            return encode(value, self.typed)
        except TypeError as exc:
            raise InvalidKeyError(
                f"argument {name!r} of {self.namespace}: {exc}; pass a hashable value such as a "
                "tuple, give the class a __cache_key__() method, or give the decorator key="
            ) from None
        except RecursionError:
            raise InvalidKeyError(f"argument {name!r} of {self.namespace} is nested too deeply") from None
        except ValueError as exc:  # an int beyond sys.get_int_max_str_digits() has no str
            raise InvalidKeyError(f"argument {name!r} of {self.namespace}: {exc}; give the decorator key=") from None
