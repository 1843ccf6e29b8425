# The compiled L1 tier: twin of mlcache/tiers/memory.py (read that module's docstring first).
#
# Layout: keys and values live in two Python lists indexed by slot (so the garbage collector
# sees them); per-slot lifetimes in a C array of _Meta; an open-addressing table of int32 slot
# numbers (linear probing, backward-shift deletion, load <= 1/2) maps keys to slots; a binary
# min-heap of slots ordered by end of life finds what to reclaim. About 60 bytes per entry.

cdef enum:
    _EMPTY = -1        # table cell without a slot
    _NOT_IN_HEAP = -1  # _Meta.heap_pos of a live entry that never dies
    _FREE = -2         # _Meta.heap_pos of an unused slot


cdef struct _Meta:
    Py_hash_t hash
    double expires     # end of freshness (INFINITY: never)
    double dead        # end of life, >= expires (the stale window lies in between)
    float load         # seconds the value took to load
    int32_t heap_pos   # index in the expiry heap, _NOT_IN_HEAP or _FREE


cdef inline PyObject* _swap(list lst, Py_ssize_t i, object obj) noexcept:
    """Store ``obj`` at ``lst[i]`` and hand the caller the reference to the old item."""
    cdef PyObject* old = _list_get(lst, i)
    Py_INCREF(obj)
    _list_set(lst, i, <PyObject*>obj)
    return old


cdef class MemoryTier:
    """A bounded in-process cache with a pluggable eviction policy and per-entry expiry.

    ``maxsize`` bounds the number of entries; ``policy`` names the eviction policy (``"lru"``,
    ``"lfu"``, ``"fifo"``, ...); ``ttl`` (seconds) is the default lifetime and also a cap: an
    entry never lives longer than ``ttl`` in this tier. ``timer`` returns the current wall-clock
    time in seconds (default: a coarse wall clock read in C); inject a fake clock to test expiry
    without sleeping.
    """

    cdef readonly Py_ssize_t maxsize
    cdef readonly object ttl
    cdef readonly str policy
    cdef public unsigned long long hits, misses, evictions, expirations
    cdef double _ttl          # 0.0: no default lifetime
    cdef object _timer        # None: ml_coarse_now()
    cdef Policy _policy
    cdef list _keys
    cdef list _values
    cdef _Meta* _meta
    cdef int32_t* _free       # stack of unused slots
    cdef Py_ssize_t _nfree
    cdef int32_t* _heap
    cdef Py_ssize_t _heap_len
    cdef int32_t* _table
    cdef size_t _mask         # table size - 1 (a power of two)
    cdef int _shift           # 64 - log2(table size), for _home()
    cdef Py_ssize_t _capacity
    cdef Py_ssize_t _size
    cdef size_t _version      # bumped whenever a key enters or leaves the table

    def __cinit__(self):
        cdef int i
        self._keys = []
        self._values = []
        self._table = <int32_t*>PyMem_Malloc(8 * sizeof(int32_t))
        if self._table == NULL:
            raise MemoryError()
        self._mask = 7
        self._shift = 61
        for i in range(8):
            self._table[i] = _EMPTY

    def __init__(self, maxsize=1024, policy="lru", ttl=None, *, timer=None):
        self.maxsize = check_positive_int("maxsize", maxsize)
        self.ttl = check_ttl("ttl", ttl)
        self._ttl = 0.0 if ttl is None else self.ttl
        self._policy = make_policy(policy, POLICIES, self.maxsize)
        self.policy = policy
        self._timer = timer

    def __dealloc__(self):
        PyMem_Free(self._meta)
        PyMem_Free(self._free)
        PyMem_Free(self._heap)
        PyMem_Free(self._table)

    # -- reads ---------------------------------------------------------------------------------

    def get(self, key, default=None):
        """Return the fresh value stored under ``key``, else ``default``."""
        cdef Py_hash_t h = PyObject_Hash(key)
        cdef double now = self._pre_now()
        cdef Py_ssize_t s
        cdef _Meta* m
        cdef PyObject* ok = NULL
        cdef PyObject* ov = NULL
        s = self._locate(key, h, &now)
        if s < 0:
            self.misses += 1
            return default
        m = &self._meta[s]
        if m.expires > now:
            self._policy.on_hit(<int32_t>s)
            self.hits += 1
            return <object>_list_get(self._values, s)
        if m.dead <= now:
            self._policy.on_remove(<int32_t>s)
            self._unlink(s, &ok, &ov)
            self.expirations += 1
            Py_XDECREF(ok)  # the tier is whole again
            Py_XDECREF(ov)
        self.misses += 1
        return default

    def get_entry(self, key):
        """Return the entry under ``key`` while it may still be served (fresh or stale), else None.

        A fresh entry counts as a hit and a use; a stale one as a miss, without a use.
        """
        cdef Py_hash_t h = PyObject_Hash(key)
        cdef double now = self._pre_now()
        cdef Py_ssize_t s
        cdef _Meta m
        cdef PyObject* ok = NULL
        cdef PyObject* ov = NULL
        s = self._locate(key, h, &now)
        if s < 0:
            self.misses += 1
            return None
        m = self._meta[s]
        if m.dead <= now:
            self._policy.on_remove(<int32_t>s)
            self._unlink(s, &ok, &ov)
            self.expirations += 1
            self.misses += 1
            Py_XDECREF(ok)
            Py_XDECREF(ov)
            return None
        if m.expires > now:
            self._policy.on_hit(<int32_t>s)
            self.hits += 1
        else:
            self.misses += 1
        return Entry(<object>_list_get(self._values, s), m.expires, m.dead, m.load)

    def get_call(self, ns, arg, default, double horizon):
        """For a decorated function's hit path: the value under the L1 key ``(ns, arg)`` if it
        can be served as it is, else ``default`` (absent, stale, or within ``horizon`` load
        times of its expiry, where the full path decides on an early refresh). Builds no tuple.
        A hit counts as a hit and a use; anything else counts nothing (the full path will)."""
        return self._get_call(ns, arg, default, horizon)

    cdef object _get_call(self, object ns, object arg, object default, double horizon):
        cdef Py_hash_t h
        if _PAIR_HASH_OK:
            h = ml_pair_hash(PyObject_Hash(ns), PyObject_Hash(arg))
        else:
            h = PyObject_Hash((ns, arg))
        cdef double now = self._pre_now()
        cdef Py_ssize_t s = self._find_pair(ns, arg, h)
        if s < 0:
            return default
        cdef _Meta* m = &self._meta[s]
        if m.expires != INFINITY:
            if self._timer is None:
                now = ml_coarse_now()
            if m.expires <= now or m.expires - now <= m.load * horizon:
                return default
        self._policy.on_hit(<int32_t>s)
        self.hits += 1
        return <object>_list_get(self._values, s)

    cdef Py_ssize_t _find_pair(self, object ns, object arg, Py_hash_t h) except -2:
        """The slot whose key is the tuple ``(ns, arg)``, for ``arg`` an exact int or str or a
        tuple of them, and ``ns`` a str: comparing such values runs no Python code."""
        cdef size_t i = self._home(h)
        cdef int32_t s
        cdef PyObject* k
        cdef PyObject* a
        cdef PyObject* b
        cdef PyTypeObject* targ = Py_TYPE(<PyObject*>arg)
        while True:
            s = self._table[i]
            if s < 0:
                return -1
            if self._meta[s].hash == h:
                k = _list_get(self._keys, s)
                if Py_TYPE(k) == <PyTypeObject*>tuple and _tuple_size(k) == 2:
                    a = _tuple_get(k, 0)
                    b = _tuple_get(k, 1)
                    if ((a == <PyObject*>ns or PyObject_RichCompareBool(<object>a, ns, Py_EQ))
                            and Py_TYPE(b) == targ
                            and (b == <PyObject*>arg or PyObject_RichCompareBool(<object>b, arg, Py_EQ))):
                        return s
            i = (i + 1) & self._mask

    def __contains__(self, key):
        """True if ``key`` has a fresh value (does not count as a use)."""
        cdef Py_hash_t h = PyObject_Hash(key)
        cdef double now = self._pre_now()
        cdef Py_ssize_t s
        s = self._locate(key, h, &now)
        return s >= 0 and self._meta[s].expires > now

    def __len__(self):
        return self._size

    def keys(self):
        """A snapshot of the stored keys (including expired ones not yet reclaimed)."""
        cdef Py_ssize_t s
        # Weakly consistent: the list's allocations may let other threads in meanwhile.
        return [<object>_list_get(self._keys, s)
                for s in range(self._capacity) if self._meta[s].heap_pos != _FREE]

    # -- writes --------------------------------------------------------------------------------

    def set(self, key, value, ttl=None):
        """Store ``value`` under ``key`` for ``ttl`` seconds (default and cap: the tier's ``ttl``)."""
        cdef double life = self._ttl, ends
        if ttl is not None:
            life = check_ttl("ttl", ttl)
            if self._ttl > 0.0 and self._ttl < life:
                life = self._ttl
        cdef Py_hash_t h = PyObject_Hash(key)
        cdef double now = self._now()
        ends = now + life if life > 0.0 else INFINITY
        self._store(key, h, value, ends, ends, 0.0, now)

    def set_entry(self, key, entry):
        """Store ``entry`` under ``key`` with its absolute lifetime (capped by the tier's ``ttl``).

        An entry whose life has already ended removes the key instead.
        """
        cdef object value = entry.value
        cdef double expires = entry.expires_at, dead = entry.stale_until
        cdef double load = entry.load_time
        cdef Py_hash_t h = PyObject_Hash(key)
        cdef double now = self._now()
        if self._ttl > 0.0:
            expires = min(expires, now + self._ttl)
            dead = min(dead, now + self._ttl)
        self._store(key, h, value, expires, dead, load, now)

    def delete(self, key):
        """Remove ``key``; return True if it held a value that could still be served."""
        cdef Py_hash_t h = PyObject_Hash(key)
        cdef double now = self._pre_now()
        cdef Py_ssize_t s
        cdef PyObject* ok = NULL
        cdef PyObject* ov = NULL
        s = self._locate(key, h, &now)
        if s < 0:
            return False
        cdef bint alive = self._meta[s].dead > now
        self._policy.on_remove(<int32_t>s)
        self._unlink(s, &ok, &ov)
        Py_XDECREF(ok)
        Py_XDECREF(ov)
        return alive

    def clear(self):
        """Remove every entry (counters are kept)."""
        cdef Py_ssize_t s
        while True:
            # Allocating may run the garbage collector (Python code): allocate, then check.
            keys, values = [None] * self._capacity, [None] * self._capacity
            if len(keys) == self._capacity:
                break
        old_keys, old_values = self._keys, self._values
        self._keys, self._values = keys, values
        for s in range(<Py_ssize_t>self._mask + 1):
            self._table[s] = _EMPTY
        self._nfree = 0
        for s in range(self._capacity - 1, -1, -1):
            self._meta[s].heap_pos = _FREE
            self._free[self._nfree] = <int32_t>s
            self._nfree += 1
        self._heap_len = 0
        self._size = 0
        self._version += 1
        self._policy.reset()
        del old_keys, old_values  # the old entries are released only now

    def expire(self):
        """Reclaim every entry whose life has ended now; return how many."""
        return self._reclaim(self._now())

    def stats(self):
        """Counters since creation: hits, misses, evictions, expirations; and size, maxsize."""
        return {
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
            "expirations": self.expirations,
            "size": self._size,
            "maxsize": self.maxsize,
        }

    def __repr__(self):
        ttl = "" if self.ttl is None else f", ttl={self.ttl:g}"
        return (f"{type(self).__name__}(maxsize={self.maxsize}, policy={self.policy!r}{ttl}, "
                f"size={self._size})")

    # -- internals -----------------------------------------------------------------------------

    cdef inline double _now(self) except? -1.0:
        if self._timer is None:
            return ml_coarse_now()
        return <double>self._timer()

    cdef inline double _pre_now(self) except? -1.0:
        """The injected timer's reading, taken before the lookup because it runs Python code;
        with the built-in clock, 0 (``_locate`` reads the clock only if the entry can expire)."""
        return 0.0 if self._timer is None else <double>self._timer()

    cdef Py_ssize_t _find(self, object key, Py_hash_t h) except -2:
        """The slot holding ``key``, or -1."""
        cdef size_t i, version
        cdef int32_t s
        cdef PyObject* k
        cdef object held
        cdef bint found
        cdef PyTypeObject* tk = Py_TYPE(<PyObject*>key)
        cdef type t = type(key)
        # Comparing two keys of the same one of these types runs no Python code.
        cdef bint plain = t is str or t is bytes or t is int
        while True:
            i = self._home(h)
            while True:
                s = self._table[i]
                if s < 0:
                    return -1
                if self._meta[s].hash == h:
                    k = _list_get(self._keys, s)
                    if k == <PyObject*>key:
                        return s
                    if plain and Py_TYPE(k) == tk:
                        if PyObject_RichCompareBool(<object>k, key, Py_EQ):
                            return s
                    else:
                        # __eq__ may run Python code, which may let other threads change the
                        # table (or free k) meanwhile.
                        version = self._version
                        held = <object>k
                        found = PyObject_RichCompareBool(held, key, Py_EQ)
                        held = None
                        if version != self._version:
                            break  # look again from the start
                        if found:
                            return s
                i = (i + 1) & self._mask

    cdef inline Py_ssize_t _locate(self, object key, Py_hash_t h, double* now) except -2:
        """``_find``; with the built-in clock, also the time into ``now[0]`` if the entry found
        can expire."""
        cdef Py_ssize_t s = self._find(key, h)
        if s >= 0 and self._timer is None and self._meta[s].expires != INFINITY:
            now[0] = ml_coarse_now()
        return s

    cdef int _store(self, object key, Py_hash_t h, object value, double expires, double dead,
                    double load, double now) except -1:
        cdef Py_ssize_t s
        cdef _Meta* m
        cdef PyObject* ok = NULL
        cdef PyObject* ov = NULL
        if dead <= now:  # over already: storing it means removing the key
            s = self._find(key, h)
            if s >= 0:
                self._policy.on_remove(<int32_t>s)
                self._unlink(s, &ok, &ov)
        else:
            if self._heap_len > 0 and self._meta[self._heap[0]].dead <= now:
                self._reclaim(now)  # expired entries make room before live ones are evicted
            s = self._insert(key, h, value, &ok, &ov)
            self._set_life(s, expires, dead, load)
        # Released last: a value's __del__ may run Python code, which must see a whole tier.
        Py_XDECREF(ok)
        Py_XDECREF(ov)
        return 0

    cdef Py_ssize_t _insert(self, object key, Py_hash_t h, object value, PyObject** ok,
                            PyObject** ov) except -1:
        """Put ``value`` under ``key`` (evicting if full); return its slot. References to what
        it displaced move to ``ok[0]``/``ov[0]``."""
        cdef Py_ssize_t s
        while True:
            # Steps that may run Python code (and so let other threads in) come first ...
            if self._size < self.maxsize and self._nfree == 0:
                self._grow()
            s = self._find(key, h)
            # ... and from here on no Python code runs until the structure is whole again.
            if s >= 0:
                ov[0] = _swap(self._values, s, value)
                self._policy.on_update(<int32_t>s)
                return s
            if self._size >= self.maxsize:
                self._unlink(self._policy.evict(), ok, ov)
                self.evictions += 1
            elif self._nfree == 0:
                continue  # other threads took the free slots meanwhile
            self._nfree -= 1
            s = self._free[self._nfree]
            Py_XDECREF(_swap(self._keys, s, key))  # the None that held the place
            Py_XDECREF(_swap(self._values, s, value))
            self._meta[s].hash = h
            self._meta[s].heap_pos = _NOT_IN_HEAP
            self._table_insert(<int32_t>s, h)
            self._policy.on_insert(<int32_t>s, h)
            self._size += 1
            self._version += 1
            return s

    cdef void _set_life(self, Py_ssize_t s, double expires, double dead, double load) noexcept:
        cdef _Meta* m = &self._meta[s]
        m.expires = expires
        m.dead = dead
        m.load = <float>load
        if dead != INFINITY:
            if m.heap_pos >= 0:
                self._sift_down(self._sift_up(m.heap_pos))
            else:
                m.heap_pos = <int32_t>self._heap_len
                self._heap[self._heap_len] = <int32_t>s
                self._heap_len += 1
                self._sift_up(m.heap_pos)
        elif m.heap_pos >= 0:
            self._heap_remove(<int32_t>s)

    cdef void _unlink(self, Py_ssize_t s, PyObject** key, PyObject** value) noexcept:
        """Free slot ``s`` (already out of the policy); its key and value references move to
        ``key[0]`` and ``value[0]``, for the caller to release once the structure is whole."""
        if self._meta[s].heap_pos >= 0:
            self._heap_remove(<int32_t>s)
        self._table_delete(<int32_t>s)
        self._meta[s].heap_pos = _FREE
        key[0] = _swap(self._keys, s, None)
        value[0] = _swap(self._values, s, None)
        self._free[self._nfree] = <int32_t>s
        self._nfree += 1
        self._size -= 1
        self._version += 1

    cdef Py_ssize_t _reclaim(self, double now) except -1:
        cdef Py_ssize_t count = 0
        cdef int32_t s
        cdef PyObject* ok
        cdef PyObject* ov
        while self._heap_len > 0 and self._meta[self._heap[0]].dead <= now:
            s = self._heap[0]
            self._policy.on_remove(s)
            self._unlink(s, &ok, &ov)
            self.expirations += 1
            count += 1
            Py_XDECREF(ok)  # may run Python code; the loop reads the heap afresh
            Py_XDECREF(ov)
        return count

    cdef int _grow(self) except -1:
        """Double the slot capacity (up to maxsize) and rebuild the table at the new size.

        Only the allocation of the padding list may run Python code (a garbage collection), and
        it comes before any change."""
        cdef Py_ssize_t old = self._capacity, s
        cdef Py_ssize_t cap = min(self.maxsize, max(8, 2 * old))
        cdef size_t size = 8, i
        while size < <size_t>(2 * cap):
            size *= 2
        pad = [None] * (cap - old)
        if self._capacity != old:
            return 0  # another thread grew it meanwhile
        self._policy.grow(cap)
        _realloc(<void**>&self._meta, cap, sizeof(_Meta))
        _realloc(<void**>&self._free, cap, sizeof(int32_t))
        _realloc(<void**>&self._heap, cap, sizeof(int32_t))
        cdef int32_t* table = <int32_t*>PyMem_Malloc(size * sizeof(int32_t))
        if table == NULL:
            raise MemoryError()
        try:
            self._keys.extend(pad)
            self._values.extend(pad)
        except MemoryError:
            del self._keys[old:]
            PyMem_Free(table)
            raise
        # Nothing below can fail.
        for i in range(size):
            table[i] = _EMPTY
        PyMem_Free(self._table)
        self._table = table
        self._mask = size - 1
        self._shift = 64
        while size > 1:
            size >>= 1
            self._shift -= 1
        for s in range(old):
            if self._meta[s].heap_pos != _FREE:
                self._table_insert(<int32_t>s, self._meta[s].hash)
        for s in range(cap - 1, old - 1, -1):
            self._meta[s].heap_pos = _FREE
            self._free[self._nfree] = <int32_t>s
            self._nfree += 1
        self._capacity = cap
        self._version += 1
        return 0

    cdef inline size_t _home(self, Py_hash_t h) noexcept:
        """The first cell to probe for hash ``h``: Fibonacci hashing (Knuth 6.4) spreads the
        hashes of consecutive ints, which are themselves, over the table; their low bits alone
        would fill one run of cells that every probe and deletion then walks."""
        return <size_t>((<uint64_t>h * <uint64_t>11400714819323198485ULL) >> self._shift)

    cdef inline void _table_insert(self, int32_t s, Py_hash_t h) noexcept:
        cdef size_t i = self._home(h)
        while self._table[i] >= 0:
            i = (i + 1) & self._mask
        self._table[i] = s

    cdef void _table_delete(self, int32_t s) noexcept:
        cdef size_t mask = self._mask
        cdef size_t i = self._home(self._meta[s].hash), j, home
        while self._table[i] != s:
            i = (i + 1) & mask
        # Backward-shift deletion: pull later cells of the probe run into the hole when their
        # home position does not lie cyclically in (hole, cell].
        j = i
        while True:
            j = (j + 1) & mask
            if self._table[j] < 0:
                break
            home = self._home(self._meta[self._table[j]].hash)
            if ((j - home) & mask) >= ((j - i) & mask):
                self._table[i] = self._table[j]
                i = j
        self._table[i] = _EMPTY

    # Binary min-heap of slots by _Meta.dead; _Meta.heap_pos tracks each slot's index.

    cdef inline void _heap_place(self, Py_ssize_t pos, int32_t s) noexcept:
        self._heap[pos] = s
        self._meta[s].heap_pos = <int32_t>pos

    cdef Py_ssize_t _sift_up(self, Py_ssize_t pos) noexcept:
        cdef int32_t s = self._heap[pos]
        cdef double d = self._meta[s].dead
        cdef Py_ssize_t parent
        while pos > 0:
            parent = (pos - 1) >> 1
            if self._meta[self._heap[parent]].dead <= d:
                break
            self._heap_place(pos, self._heap[parent])
            pos = parent
        self._heap_place(pos, s)
        return pos

    cdef void _sift_down(self, Py_ssize_t pos) noexcept:
        cdef int32_t s = self._heap[pos]
        cdef double d = self._meta[s].dead
        cdef Py_ssize_t child
        while True:
            child = 2 * pos + 1
            if child >= self._heap_len:
                break
            if (child + 1 < self._heap_len and
                    self._meta[self._heap[child + 1]].dead < self._meta[self._heap[child]].dead):
                child += 1
            if self._meta[self._heap[child]].dead >= d:
                break
            self._heap_place(pos, self._heap[child])
            pos = child
        self._heap_place(pos, s)

    cdef void _heap_remove(self, int32_t s) noexcept:
        cdef Py_ssize_t pos = self._meta[s].heap_pos
        self._heap_len -= 1
        self._meta[s].heap_pos = _NOT_IN_HEAP
        if pos < self._heap_len:
            self._heap[pos] = self._heap[self._heap_len]
            self._sift_down(self._sift_up(pos))

    def _check(self):
        """Raise ``AssertionError`` if an internal invariant is broken (for tests)."""
        cdef Py_ssize_t s, pos
        cdef size_t i
        live = {s for s in range(self._capacity) if self._meta[s].heap_pos != _FREE}
        free = [self._free[s] for s in range(self._nfree)]
        assert len(live) == self._size <= self.maxsize
        assert self._capacity <= self.maxsize
        assert len(set(free)) == len(free) and not live & set(free)
        assert len(live) + len(free) == self._capacity == len(self._keys) == len(self._values)
        cells = [self._table[i] for i in range(self._mask + 1) if self._table[i] >= 0]
        assert sorted(cells) == sorted(live), "table and slots disagree"
        assert self._mask + 1 >= 2 * self._capacity
        for s in live:
            key = self._keys[s]
            assert hash(key) == self._meta[s].hash
            assert self._find(key, self._meta[s].hash) == s
            assert self._meta[s].expires <= self._meta[s].dead
            pos = self._meta[s].heap_pos
            if self._meta[s].dead == INFINITY:
                assert pos == _NOT_IN_HEAP
            else:
                assert 0 <= pos < self._heap_len and self._heap[pos] == s
        for s in free:
            assert self._keys[s] is None and self._values[s] is None
        assert self._heap_len == sum(1 for s in live if self._meta[s].dead != INFINITY)
        for pos in range(1, self._heap_len):
            assert self._meta[self._heap[(pos - 1) >> 1]].dead <= self._meta[self._heap[pos]].dead
        self._policy.check(live)
