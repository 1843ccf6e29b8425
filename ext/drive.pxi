# The compiled sync driver: twin of mlcache._drive.run (read that module). PyIter_Send hands
# back a generator's return value directly, where next()/send() in Python raise StopIteration
# and catch it again: that exception was most of the pure driver's cost per call.

cdef extern from "Python.h":
    int PyIter_Send(object iterator, object arg, PyObject** presult) except -1  # PYGEN_ERROR
    enum:
        PYGEN_RETURN


cdef inline object _send(object steps, object arg, bint* returned):
    """``steps.send(arg)``: the next step, or (``returned``) the steps' return value."""
    cdef PyObject* result = NULL
    returned[0] = PyIter_Send(steps, arg, &result) == PYGEN_RETURN
    value = <object>result
    Py_XDECREF(result)  # (the cast took a reference of its own)
    return value


def run(steps):
    """Drive ``steps`` to completion with blocking I/O; every exception of a step (even an
    interruption) is thrown into the steps, which may clean up before it propagates."""
    cdef bint returned
    step = _send(steps, None, &returned)
    while not returned:
        try:
            result = step[0](*step[2])
        except BaseException as exc:
            try:
                step = steps.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        step = _send(steps, result, &returned)
    return step
