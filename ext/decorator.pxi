# The compiled hit path of decorated sync functions: twin of mlcache.decorators.HitPath and
# BoundHitPath (read that module's docstring). The interpreter calls a HitPath through
# vectorcall (_hit_vectorcall: arguments in an array, no tuple); other callers reach __call__,
# where calls with keyword arguments are routed to _call_kw (mlhash.h) so that __call__ can
# take *args alone (Cython builds a dict for **kwargs on every call).

from mlcache.entry import MISSING


cdef inline object _plain_hit(MemoryTier tier, object ns, Py_ssize_t arity, double horizon,
                              tuple args):
    """L1's value for a call whose arguments are all exact ints and strs, else MISSING."""
    cdef object arg
    cdef Py_ssize_t i
    if len(args) != arity:
        return MISSING
    if arity == 1:
        arg = args[0]
        if type(arg) is not int and type(arg) is not str:
            return MISSING
    else:
        for i in range(arity):
            if type(args[i]) is not int and type(args[i]) is not str:
                return MISSING
        arg = args
    value = tier._get_call(ns, arg, MISSING, horizon)
    return None if value is NULL_VALUE else value


cdef Py_ssize_t _vectorcall_offset = 0


cdef PyObject* _hit_vectorcall(PyObject* callable, PyObject** args, size_t nargsf,
                               PyObject* kwnames) except NULL:
    cdef HitPath self = <HitPath><object>callable
    cdef Py_ssize_t n = ml_nargs(nargsf), i
    cdef object value
    cdef tuple positional
    if kwnames == NULL and self._tier is not None and n == self._arity:
        if n == 1:
            value = <object>args[0]
            if type(value) is int or type(value) is str:
                value = self._tier._get_call(self._ns, value, MISSING, self._horizon)
                if value is not MISSING:
                    if value is NULL_VALUE:
                        value = None
                    Py_INCREF(value)
                    return <PyObject*>value
    positional = PyTuple_New(n)
    for i in range(n):
        Py_INCREF(<object>args[i])
        PyTuple_SET_ITEM(positional, i, <object>args[i])
    if kwnames == NULL:
        if n > 1 and self._tier is not None:
            value = _plain_hit(self._tier, self._ns, self._arity, self._horizon, positional)
            if value is not MISSING:
                Py_INCREF(value)
                return <PyObject*>value
        value = self._miss(positional, {})
    else:
        kwargs = {}
        names = <tuple><object>kwnames
        for i in range(len(names)):
            kwargs[names[i]] = <object>args[n + i]
        value = self._miss(positional, kwargs)
    Py_INCREF(value)
    return <PyObject*>value


cdef class HitPath:
    """The callable a sync decorated function becomes: L1 hits by plain arguments without a
    key string, everything else via ``Decorated.miss``."""

    cdef ml_vectorcallfunc _vectorcall  # first field: see _enable_vectorcall
    cdef dict __dict__
    cdef object __weakref__
    cdef object _decorated
    cdef object _miss
    cdef MemoryTier _tier
    cdef object _ns
    cdef Py_ssize_t _arity
    cdef double _horizon

    def __cinit__(self, *args, **kwargs):
        global _vectorcall_offset
        if _vectorcall_offset == 0:  # the first instance tells where the field lies
            _vectorcall_offset = <char*>&self._vectorcall - <char*><PyObject*>self
            ml_enable_vectorcall(<PyTypeObject*>HitPath, _vectorcall_offset)
        self._vectorcall = _hit_vectorcall

    def __init__(self, decorated):
        self._decorated = decorated
        self._miss = decorated.miss
        decorated.hit_paths.append(self)

    def _bind(self, tier, ns, Py_ssize_t arity, double horizon):
        self._tier = tier if isinstance(tier, MemoryTier) else None
        self._ns, self._arity, self._horizon = ns, arity, horizon

    def __call__(self, *args):
        if self._tier is not None:
            value = _plain_hit(self._tier, self._ns, self._arity, self._horizon, args)
            if value is not MISSING:
                return value
        return self._miss(args, {})

    def _call_kw(self, tuple args, dict kwargs):
        return self._miss(args, kwargs)

    def __get__(self, instance, owner):
        if instance is None:
            return self
        return BoundHitPath(self, instance)

    @property
    def cache(self):
        return self._decorated.cache


cdef class BoundHitPath:
    """A decorated method bound to an instance (``self`` is not part of the key)."""

    cdef HitPath _hit
    cdef object _instance

    def __init__(self, HitPath hit, instance):
        self._hit, self._instance = hit, instance

    def __call__(self, *args):
        cdef HitPath hit = self._hit
        if hit._tier is not None:
            value = _plain_hit(hit._tier, hit._ns, hit._arity, hit._horizon, args)
            if value is not MISSING:
                return value
        return hit._miss((self._instance,) + args, {})

    def _call_kw(self, tuple args, dict kwargs):
        return self._hit._miss((self._instance,) + args, kwargs)

    def __getattr__(self, name):
        from mlcache.decorators import bound_attribute  # (not at import: it imports us)

        return bound_attribute(self._hit, self._instance, name)


ml_hit_install(<PyTypeObject*>HitPath, "_call_kw")
ml_bound_hit_install(<PyTypeObject*>BoundHitPath, "_call_kw")
