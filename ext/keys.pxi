# The compiled physical key: twin of mlcache.tiers.physical.physical_key (read that module for
# the rules). An ordinary key (an exact str, ASCII, not longer than MAX_KEY_BYTES, starting with
# neither the hashed-key marker nor NUL) is its own bytes, copied straight from the str; every
# other key is handed to the pure twin, so the two cannot disagree on the rare cases.

from libc.string cimport memcmp
from cpython.unicode cimport PyUnicode_1BYTE_DATA, PyUnicode_CheckExact, PyUnicode_GET_LENGTH

from mlcache.tiers.physical import MAX_KEY_BYTES as _MAX_KEY_BYTES
from mlcache.tiers.physical import physical_key as _pure_physical_key

cdef extern from "Python.h":
    int PyUnicode_READY(object) except -1
    bint PyUnicode_IS_ASCII(object)

cdef Py_ssize_t _KEY_LIMIT = _MAX_KEY_BYTES


def physical_key(key):
    """The bytes that name ``key`` in a remote tier (see ``mlcache.tiers.physical``)."""
    if not PyUnicode_CheckExact(key):
        return _pure_physical_key(key)
    PyUnicode_READY(key)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(key)
    cdef const char* p
    if PyUnicode_IS_ASCII(key) and n <= _KEY_LIMIT:
        p = <const char*>PyUnicode_1BYTE_DATA(key)
        if (n == 0 or p[0] != 0) and (n < 8 or memcmp(p, b"#sha256:", 8) != 0):
            return PyBytes_FromStringAndSize(p, n)
    return _pure_physical_key(key)
