# cython: language_level=3
"""Compiled twins of mlcache's hot paths.

Each class (and ``physical_key``, ``run``) here has a pure-Python twin with the same name and
behaviour (``mlcache.policies``, ``mlcache.tiers.memory``, ``mlcache.codecs``,
``mlcache.decorators``, ``mlcache.tiers.physical``, ``mlcache._drive``); ``mlcache._impl``
picks one set or the other.

Thread safety without a lock: every operation runs holding the GIL, which changes hands only
where Python code runs. Each such place is handled: a key's ``__hash__`` and an injected
``timer`` are called before the structure is looked at; a key's ``__eq__`` may let other threads
change the table, so the lookup restarts when it did (as CPython's dict does); an allocation
that may trigger a garbage collection comes before the lookup it would invalidate; and keys and
values that leave are released (``__del__``) only once the structure is whole again.
"""

cimport cython
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport Py_EQ, PyObject, PyObject_Hash, PyObject_RichCompareBool, PyTypeObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.math cimport INFINITY
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memset

from mlcache._checks import check_positive_int, check_ttl
from mlcache.entry import Entry
from mlcache.policies import make_policy

cdef extern from "mlclock.h":
    double ml_coarse_now() nogil

cdef extern from "Python.h":
    PyObject* _list_get "PyList_GET_ITEM" (object, Py_ssize_t)
    void _list_set "PyList_SET_ITEM" (object, Py_ssize_t, PyObject*)
    PyObject* _tuple_get "PyTuple_GET_ITEM" (PyObject*, Py_ssize_t)
    Py_ssize_t _tuple_size "PyTuple_GET_SIZE" (PyObject*)
    PyTypeObject* Py_TYPE(PyObject*)

cdef extern from "mlhash.h":
    Py_hash_t ml_pair_hash(Py_hash_t a, Py_hash_t b) nogil
    int ml_hit_install(PyTypeObject* type, const char* method) except -1
    int ml_bound_hit_install(PyTypeObject* type, const char* method) except -1
    ctypedef PyObject* (*ml_vectorcallfunc)(PyObject*, PyObject**, size_t, PyObject*) except NULL
    int ml_enable_vectorcall(PyTypeObject* type, Py_ssize_t offset) except -1
    Py_ssize_t ml_nargs(size_t nargsf)


def _pair_hash_agrees():
    """Whether ml_pair_hash(hash(a), hash(b)) == hash((a, b)) on this interpreter."""
    for a, b in (("ns", 1), ("m.f", "x"), ("", -1), ("k", (1, "a")), ("q", 2**70)):
        if ml_pair_hash(hash(a), hash(b)) != hash((a, b)):
            return False
    return True


cdef bint _PAIR_HASH_OK = _pair_hash_agrees()


def coarse_time():
    """The compiled tier's default clock (wall-clock seconds, kernel-tick resolution)."""
    return ml_coarse_now()


cdef int _realloc(void** array, Py_ssize_t count, size_t itemsize) except -1:
    """Resize ``array[0]`` to ``count`` items; on failure raise and leave it untouched."""
    cdef void* p = PyMem_Realloc(array[0], <size_t>count * itemsize)
    if p == NULL:
        raise MemoryError()
    array[0] = p
    return 0


include "structures.pxi"
include "policies.pxi"
include "policies_modern.pxi"
include "memory.pxi"
include "envelope.pxi"
include "keys.pxi"
include "drive.pxi"
include "sim.pxi"
include "decorator.pxi"
