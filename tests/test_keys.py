"""Keys of decorated functions: one per distinct call, never one for two."""

from __future__ import annotations

import datetime
import decimal
import enum
import sys
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlcache import InvalidKeyError
from mlcache.keys import KeyBuilder, encode, parse_plain


def f(a, b=2, *rest, c=3, **kw):
    return a


class Color(enum.IntEnum):
    RED = 1


def keys(func=f, **options):
    builder = KeyBuilder(func, **options)
    return lambda *args, **kwargs: builder(args, kwargs)


def test_bindings_that_mean_the_same_call_share_a_key():
    k = keys(lambda a, b=2: a)
    assert k(1) == k(1, 2) == k(1, b=2) == k(a=1, b=2) == k(b=2, a=1)
    assert k(1) != k(1, 3)


def test_namespace_is_module_and_qualified_name():
    assert keys()(1) == f"{__name__}.f|i1,i2,c=i3"
    assert keys(namespace="users", version=3)(1).startswith("users:3|")


@pytest.mark.parametrize(
    "a, b",
    [
        (1, 1.0), (1, True), (0, False), (1, "1"), (1.0, "1.0"), (None, "None"), (None, "n"),
        ("a:b", ("a", "b")), ("a,b", ("a", "b")), ("s1:a", "a"), (b"ab", "ab"), ((1,), [1][0]),
        ((), ""), (frozenset({1}), (1,)), (Color.RED, 1), (-0.0, 0.0), ("i1", 1),
    ],
)  # fmt: skip
def test_distinct_values_never_share_a_key(a, b):
    k = keys(lambda x: x)
    if isinstance(a, enum.Enum) or isinstance(b, enum.Enum):
        assert encode(a) != encode(b)
        return
    assert k(a) != k(b)


def test_separators_inside_strings_cannot_forge_other_arguments():
    k = keys(lambda x, y: x)
    assert k("a,s1:b", "c") != k("a", "b,s1:c")
    assert k("1", "2") != k("1,2", "")


def _named(make, module, qualname):
    made = make()
    made.__module__, made.__qualname__ = module, qualname
    return made


# Types whose names hold the separators: each pair below used to share an encoding.
DOTTED_ENUM = _named(lambda: enum.Enum("E", {"a.b": 1}), "m", "E")
ENUM_DOT_A = _named(lambda: enum.Enum("A", {"b": 1}), "m", "E.a")
COMMA_CLASS = _named(lambda: type("A", (), {}), "m", "A,i1")
PLAIN_CLASS = _named(lambda: type("A", (), {}), "m", "A")
Perm = enum.IntFlag("Perm", "R W")


class Shouty(str):
    def __str__(self):
        return "same"


@pytest.mark.parametrize(
    "a, b",
    [
        (((), {"a": "x", "b": 1}), ((), {"a=s1:x,b": 1})),
        (((), {"a": 1}), ((), {"s1:a": 1})),
        (((), {"i1": 1}), (("i1",), {})),
        (((DOTTED_ENUM["a.b"],), {}), ((ENUM_DOT_A.b,), {})),
        (((COMMA_CLASS,), {}), ((PLAIN_CLASS, 1), {})),
        (((Perm(8),), {}), ((Perm(16),), {})),
        (((Perm(0),), {}), ((Perm(4),), {})),
        (((Shouty("a"),), {}), ((Shouty("b"),), {})),
    ],
)  # fmt: skip
def test_names_and_texts_with_separators_cannot_forge_other_calls(a, b):
    k = keys(lambda *args, **kwargs: 0)
    assert k(*a[0], **a[1]) != k(*b[0], **b[1])


def test_readable_forms():
    k = keys(lambda *args, **kwargs: 0, namespace="ns")
    assert k(1, "a", c=None, **{"x,y": 2}) == "ns|i1,s1:a,c=n,s3:x,y=i2"
    assert encode(Color.RED) == f"e{len(__name__) + 6}:{__name__}.Color.3:RED"
    assert encode(Perm.R | Perm.W) == f"e{len(__name__) + 5}:{__name__}.Perm:i3"
    assert encode(datetime.date(2024, 1, 2)) == "d13:datetime.date:10:2024-01-02"
    assert encode(int) == "c12:builtins.int"
    assert encode(Shouty("a"), typed=True) == f"@{len(__name__) + 7}:{__name__}.Shouty:s1:a"


def test_typed_keys_subclasses_apart():
    class MyStr(str):
        pass

    untyped, typed = keys(lambda x: x), keys(lambda x: x, typed=True)
    assert untyped(MyStr("x")) == untyped("x")
    assert typed(MyStr("x")) != typed("x")


@pytest.mark.parametrize(
    "value",
    [datetime.date(2024, 1, 2), datetime.datetime(2024, 1, 2, 3, 4), decimal.Decimal("1.10"),
     uuid.UUID(int=5), datetime.timedelta(seconds=3), frozenset({"a", "b"}), b"\x00\xff",
     (1, ("nested", None)), float("inf"), int],
)  # fmt: skip
def test_supported_values(value):
    assert keys(lambda x: x)(value) == keys(lambda x: x)(value)


def test_objects_with_cache_key():
    class User:
        def __init__(self, uid):
            self.uid = uid

        def __cache_key__(self):
            return self.uid

    k = keys(lambda x: x)
    assert k(User(1)) == k(User(1)) != k(User(2))


@pytest.mark.parametrize("value, name", [([1], "list"), ({"a": 1}, "dict"), ({1}, "set"),
                                         (object(), "object")])  # fmt: skip
def test_unkeyable_arguments_name_the_argument(value, name):
    with pytest.raises(InvalidKeyError, match=rf"argument 'items' of .*: a {name} has no stable value"):
        keys(lambda user_id, items: 1)(1, value)


def test_an_int_with_no_str_names_the_argument():
    huge = 10 ** (sys.get_int_max_str_digits() + 1)
    with pytest.raises(InvalidKeyError, match=r"argument 'n' of .*: .*give the decorator key="):
        keys(lambda n: 1)(huge)


def test_self_is_not_part_of_the_key():
    class Repo:
        def get(self, user_id):
            return user_id

    k = keys(Repo.get)
    assert k(Repo(), 5) == k(Repo(), 5) == f"{Repo.get.__module__}.{Repo.get.__qualname__}|i5"


def test_custom_key_function():
    k = keys(lambda self, x: x, key=lambda self, x: (self["tenant"], x))
    assert k({"tenant": "a"}, 1) != k({"tenant": "b"}, 1)


def test_bad_calls_raise_type_error_like_the_function():
    with pytest.raises(TypeError, match="missing a required argument"):
        keys(lambda a: a)()


def test_plain_arity():
    assert KeyBuilder(lambda a, b: 1).plain_arity == 2
    assert KeyBuilder(lambda self, a: 1).plain_arity == 1
    assert KeyBuilder(lambda a, *rest: 1).plain_arity == 0
    assert KeyBuilder(lambda a, *, b: 1).plain_arity == 0
    assert KeyBuilder(lambda cls, a: 1).plain_arity == 0
    assert KeyBuilder(lambda a: 1, key=lambda a: a).plain_arity == 0


@given(st.lists(st.one_of(st.integers(), st.text()), min_size=1, max_size=4))
def test_plain_arguments_parse_back(values):
    func = eval(f"lambda {', '.join(f'a{i}' for i in range(len(values)))}: 0")
    key = KeyBuilder(func, namespace="ns")(tuple(values), {})
    assert parse_plain(key.partition("|")[2], len(values)) == tuple(values)


@pytest.mark.parametrize(
    "text, arity",
    [("i1", 2), ("i1,i2", 1), ("f1.0", 1), ("s2:a", 1), ("ix", 1), ("s1:ab", 1), ("n", 1),
     ("i01", 1), ("i-0", 1), ("i+1", 1), ("i 1", 1), ("i1_0", 1), ("i\u0661", 1), ("s01:a", 1),
     ("s+1:a", 1), ("s\u0661:a", 1), ("s\u00b2:ab", 1), ("s-9:a,i1", 2), ("i1,", 1), (",i1", 1),
     ("i" + "9" * 5000, 1), ("s" + "9" * 5000 + ":a", 1), ("", 1), ("i1", -1)],
)  # fmt: skip
def test_parse_plain_refuses_anything_but_the_builders_own_text(text, arity):
    assert parse_plain(text, arity) is None


TEXT_PIECES = st.sampled_from(["i", "s", ":", ",", "-", "+", "0", "1", "2", "9", "a", "\u0661",
                               "\u00b2", " ", "_", "\udcff", "s1:", "s2:", "i1", "i-1"])  # fmt: skip


@given(st.one_of(st.text(), st.lists(TEXT_PIECES, max_size=12).map("".join)),
       st.integers(-1, 4))  # fmt: skip
@settings(max_examples=2000)
def test_parse_plain_gives_none_or_arguments_whose_key_is_exactly_the_text(text, arity):
    values = parse_plain(text, arity)
    if values is not None:
        func = eval(f"lambda {', '.join(f'a{i}' for i in range(arity))}: 0")
        assert len(values) == arity
        assert KeyBuilder(func, namespace="ns")(values, {}) == f"ns|{text}"


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(), st.binary(),
)
VALUES = st.recursive(SCALARS, lambda inner: st.tuples(inner, inner) | st.lists(inner, max_size=3).map(tuple),
                      max_leaves=6)  # fmt: skip


@given(a=st.tuples(VALUES, VALUES), b=st.tuples(VALUES, VALUES))
@settings(max_examples=1000)
def test_no_two_distinct_argument_lists_share_a_key(a, b):
    k = keys(lambda x, y: x)
    assert (k(*a) == k(*b)) == _deep_same(a, b)


# A small world of look-alikes, so that a list of calls drawn from it often holds two calls
# that an ambiguous encoding would give one key.
LOOK_ALIKE_NAMES = st.sampled_from(["a", "b", "i1", "s1:a", "a=s1:x,b", "x,b=i1", ",", "="])
LOOK_ALIKE_VALUES = st.sampled_from(
    [1, "1", 1.0, True, None, "x", "i1", "a.b", "x,b=i1", (1,), b"1", DOTTED_ENUM["a.b"],
     ENUM_DOT_A.b, COMMA_CLASS, PLAIN_CLASS, Color.RED, Perm.R, Perm(0), Perm(8), Perm(16),
     Shouty("a"), Shouty("b"), int, str]
)  # fmt: skip
CALLS = st.tuples(
    st.lists(LOOK_ALIKE_VALUES, max_size=2).map(tuple),
    st.dictionaries(LOOK_ALIKE_NAMES, LOOK_ALIKE_VALUES, max_size=2),
)


@given(st.lists(CALLS, min_size=2, max_size=30))
@settings(max_examples=1000)
def test_distinct_calls_never_share_a_key(calls):
    k = keys(lambda *args, **kwargs: 0)
    seen: dict[str, tuple] = {}
    for args, kwargs in calls:
        other = seen.setdefault(k(*args, **kwargs), (args, kwargs))
        assert _deep_same(other[0], args) and _deep_same(other[1], kwargs)


def _deep_same(a, b):
    """Equal with the same types all the way down (what one call means to a function)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_deep_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_deep_same(a[k], b[k]) for k in a)
    if isinstance(a, str):
        return str.__eq__(a, b)  # (not Shouty's own idea of its text)
    if isinstance(a, float):
        return repr(a) == repr(b)  # -0.0 and 0.0 are different calls
    return a == b
