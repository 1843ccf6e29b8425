"""The sync step driver: the compiled ``run`` does what the pure one does, step for step."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import COMPILED, PURE


class Interrupt(BaseException):
    """Stands for KeyboardInterrupt: not an Exception, still thrown into the steps."""


def _do(outcome):
    if outcome == "error":
        raise ValueError("step failed")
    if outcome == "interrupt":
        raise Interrupt("interrupted")
    if outcome == "stop":
        raise StopIteration("a stray StopIteration")
    return outcome


def _steps(script, log):
    """Yield one op per (outcome, handling) in ``script``; handle what each op gives back."""
    for index, (outcome, handling) in enumerate(script):
        try:
            got = yield (_do, None, (outcome,))
        except BaseException as exc:
            log.append(("caught", index, type(exc).__name__, str(exc)))
            if handling == "return":
                return ("returned after", index)
            if handling == "raise":
                raise
            if handling == "convert":
                raise KeyError(index) from exc
            continue
        log.append(("got", index, got))
        if handling == "return":
            return ("returned", got)
    return "done"


def _outcome(run, script):
    log = []
    try:
        result = run(_steps(script, log))
    except BaseException as exc:
        result = ("raised", type(exc).__name__, str(exc))
    return result, log


SCRIPTS = st.lists(
    st.tuples(st.sampled_from(["a", 1, None, "error", "interrupt", "stop"]),
              st.sampled_from(["continue", "return", "raise", "convert"])),
    max_size=6,
)  # fmt: skip


@pytest.mark.skipif(COMPILED is None, reason="the compiled extension is not built")
@given(SCRIPTS)
@settings(max_examples=500)
def test_twins_drive_the_same_way(script):
    assert _outcome(COMPILED.run, script) == _outcome(PURE.run, script)


def test_steps_that_never_yield(impl):
    def steps():
        return 42
        yield  # (a generator)

    assert impl.run(steps()) == 42


def test_an_exception_before_the_first_step_propagates(impl):
    def steps():
        raise ValueError("early")
        yield

    with pytest.raises(ValueError, match="early"):
        impl.run(steps())


def test_a_step_exception_reaches_the_steps_and_their_cleanup(impl):
    log = []
    assert _outcome(impl.run, [("error", "raise")]) == (
        ("raised", "ValueError", "step failed"), [("caught", 0, "ValueError", "step failed")]
    )
    assert impl.run(_steps([("interrupt", "continue"), ("x", "return")], log)) == ("returned", "x")
    assert log == [("caught", 0, "Interrupt", "interrupted"), ("got", 1, "x")]
