# Small C structures shared by the compiled policies and the trace simulator: doubly linked
# lists over slot numbers, an int64 -> int64 hash map, a FIFO of remembered hashes (a ghost
# list) and a count-min frequency sketch. Each has a pure-Python counterpart in the pure policy
# module that uses it (``OrderedDict``, ``dict``, ``bytearray``).

cdef struct _List:
    int32_t head   # the oldest position (the victim end)
    int32_t tail   # the newest position
    Py_ssize_t size


cdef inline void _list_init(_List* l) noexcept nogil:
    l.head = l.tail = -1
    l.size = 0


cdef inline void _list_append(_List* l, int32_t* prev, int32_t* next, int32_t s) noexcept nogil:
    prev[s] = l.tail
    next[s] = -1
    if l.tail >= 0:
        next[l.tail] = s
    else:
        l.head = s
    l.tail = s
    l.size += 1


cdef inline void _list_unlink(_List* l, int32_t* prev, int32_t* next, int32_t s) noexcept nogil:
    cdef int32_t p = prev[s]
    cdef int32_t n = next[s]
    if p >= 0:
        next[p] = n
    else:
        l.head = n
    if n >= 0:
        prev[n] = p
    else:
        l.tail = p
    l.size -= 1


cdef list _list_items(_List* l, int32_t* prev, int32_t* next, Py_ssize_t limit):
    """The list's slots from head to tail, checking its links on the way (for ``check()``)."""
    items = []
    cdef int32_t s = l.head, p = -1
    while s >= 0:
        assert prev[s] == p, (s, prev[s], p)
        assert len(items) <= limit, "cycle in a list"
        items.append(s)
        p = s
        s = next[s]
    assert l.tail == p and l.size == len(items), (l.tail, p, l.size, len(items))
    return items


cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define ml_prefetch(p) __builtin_prefetch(p)
    #else
    #define ml_prefetch(p) ((void)0)
    #endif
    """
    void ml_prefetch(const void* p) noexcept nogil


cdef struct _Cell:
    int64_t key
    int64_t value   # < 0: empty cell


cdef class _IntMap:
    """int64 keys -> int64 values >= 0. Open addressing with linear probing, Fibonacci hashing
    (consecutive keys, as block traces have, spread evenly), backward-shift deletion (no
    tombstones), load <= 1/2, doubling as it fills."""

    cdef _Cell* cells
    cdef uint64_t mask
    cdef int shift
    cdef Py_ssize_t count

    def __cinit__(self, Py_ssize_t expected=8):
        cdef uint64_t size = 16
        while size < <uint64_t>(2 * expected):
            size *= 2
        self._alloc(size)

    def __dealloc__(self):
        PyMem_Free(self.cells)

    cdef int _alloc(self, uint64_t size) except -1:
        cdef uint64_t i
        cdef int bits = 0
        self.cells = <_Cell*>PyMem_Malloc(size * sizeof(_Cell))
        if self.cells == NULL:
            raise MemoryError()
        for i in range(size):
            self.cells[i].value = -1
        self.mask = size - 1
        while (<uint64_t>1 << bits) < size:
            bits += 1
        self.shift = 64 - bits
        self.count = 0
        return 0

    @cython.final
    cdef inline uint64_t _home(self, int64_t key) noexcept nogil:
        return (<uint64_t>key * <uint64_t>0x9E3779B97F4A7C15) >> self.shift

    @cython.final
    cdef inline void prefetch(self, int64_t key) noexcept nogil:
        """Start loading the cell where a look-up of ``key`` begins (a replay calls this a few
        requests ahead, so the look-up finds the cell in cache)."""
        ml_prefetch(&self.cells[self._home(key)])

    @cython.final
    cdef inline int64_t get(self, int64_t key) noexcept nogil:
        """The value under ``key``, or -1."""
        cdef uint64_t i = self._home(key)
        while self.cells[i].value >= 0:
            if self.cells[i].key == key:
                return self.cells[i].value
            i = (i + 1) & self.mask
        return -1

    @cython.final
    cdef inline uint64_t find(self, int64_t key) noexcept nogil:
        """The cell holding ``key``, else the empty cell where ``put`` would store it."""
        cdef uint64_t i = self._home(key)
        while self.cells[i].value >= 0 and self.cells[i].key != key:
            i = (i + 1) & self.mask
        return i

    @cython.final
    cdef inline void fill(self, uint64_t i, int64_t key, int64_t value) noexcept nogil:
        """Store ``key`` in the empty cell ``find(key)`` returned (no other change between), in
        a map made for more keys than it will ever hold (it does not grow here)."""
        self.cells[i].key = key
        self.cells[i].value = value
        self.count += 1

    @cython.final
    cdef inline int put(self, int64_t key, int64_t value) except -1:
        """Store ``value`` (>= 0) under ``key``, which must not be in the map."""
        cdef uint64_t i
        if 2 * (self.count + 1) > <Py_ssize_t>(self.mask + 1):
            self._resize()
        i = self._home(key)
        while self.cells[i].value >= 0:
            i = (i + 1) & self.mask
        self.cells[i].key = key
        self.cells[i].value = value
        self.count += 1
        return 0

    @cython.final
    cdef inline bint pop(self, int64_t key) noexcept nogil:
        """Remove ``key``; False if it was not there."""
        cdef uint64_t i = self._home(key), j, home
        while self.cells[i].value >= 0:
            if self.cells[i].key == key:
                break
            i = (i + 1) & self.mask
        else:
            return False
        # Backward shift: pull later cells of the probe run into the hole when allowed.
        j = i
        while True:
            j = (j + 1) & self.mask
            if self.cells[j].value < 0:
                break
            home = self._home(self.cells[j].key)
            if ((j - home) & self.mask) >= ((j - i) & self.mask):
                self.cells[i] = self.cells[j]
                i = j
        self.cells[i].value = -1
        self.count -= 1
        return True

    cdef int _resize(self) except -1:
        cdef _Cell* old = self.cells
        cdef uint64_t n = self.mask + 1, i
        self._alloc(2 * n)
        for i in range(n):
            if old[i].value >= 0:
                self.put(old[i].key, old[i].value)
        PyMem_Free(old)
        return 0

    cdef void clear(self) noexcept nogil:
        cdef uint64_t i
        for i in range(self.mask + 1):
            self.cells[i].value = -1
        self.count = 0


cdef class _Ghost:
    """A FIFO of up to ``capacity`` remembered hashes of entries that left (a ghost list).

    ``add`` may overfill it by one; ``trim`` cuts it back to ``capacity``, oldest first. The
    policy trims at the next insertion, after it has looked the new key up (so the new key's
    own ghost is found and removed first, as libCacheSim does before it evicts).
    """

    cdef readonly Py_ssize_t capacity
    cdef _List order
    cdef int32_t* prev
    cdef int32_t* next
    cdef int64_t* hashes
    cdef int32_t* free
    cdef Py_ssize_t nfree
    cdef _IntMap where   # hash -> node

    def __cinit__(self, Py_ssize_t capacity):
        cdef Py_ssize_t nodes = capacity + 1
        self.capacity = capacity
        _realloc(<void**>&self.prev, nodes, sizeof(int32_t))
        _realloc(<void**>&self.next, nodes, sizeof(int32_t))
        _realloc(<void**>&self.hashes, nodes, sizeof(int64_t))
        _realloc(<void**>&self.free, nodes, sizeof(int32_t))
        self.where = _IntMap(nodes)
        self.clear()

    def __dealloc__(self):
        PyMem_Free(self.prev)
        PyMem_Free(self.next)
        PyMem_Free(self.hashes)
        PyMem_Free(self.free)

    cdef int add(self, int64_t h) except -1:
        cdef int32_t node
        if self.capacity == 0 or self.where.get(h) >= 0:
            return 0
        self.nfree -= 1
        node = self.free[self.nfree]
        self.hashes[node] = h
        _list_append(&self.order, self.prev, self.next, node)
        self.where.put(h, node)
        return 0

    cdef bint remove(self, int64_t h) noexcept:
        cdef int64_t node = self.where.get(h)
        if node < 0:
            return False
        self._drop(<int32_t>node)
        return True

    cdef void trim(self) noexcept:
        while self.order.size > self.capacity:
            self._drop(self.order.head)

    @cython.final
    cdef inline void _drop(self, int32_t node) noexcept:
        self.where.pop(self.hashes[node])
        _list_unlink(&self.order, self.prev, self.next, node)
        self.free[self.nfree] = node
        self.nfree += 1

    cdef void clear(self) noexcept:
        cdef Py_ssize_t i
        _list_init(&self.order)
        self.where.clear()
        self.nfree = 0
        for i in range(self.capacity, -1, -1):
            self.free[self.nfree] = <int32_t>i
            self.nfree += 1

    def items(self):
        """The remembered hashes, oldest first (checks the structure on the way)."""
        nodes = _list_items(&self.order, self.prev, self.next, self.capacity + 1)
        hashes = [self.hashes[n] for n in nodes]
        assert self.where.count == len(hashes) and self.nfree + len(hashes) == self.capacity + 1
        assert all(self.where.get(self.hashes[n]) == n for n in nodes)
        return hashes


# Row multipliers of the sketch (odd 64-bit constants; Caffeine's FrequencySketch seeds).
cdef uint64_t[4] _SKETCH_SEEDS = [<uint64_t>0xc3a5c85c97cb3127, <uint64_t>0xb492b66fbe98f273,
                                  <uint64_t>0x9ae16a3b2f90404f, <uint64_t>0xcbf29ce484222325]


cdef class _Sketch:
    """Count-min sketch of 4 rows of 4-bit counters (saturating at 15), with aging: after
    ``sample`` additions every counter is halved (TinyLFU's reset; Caffeine's FrequencySketch).
    Rows have ``width`` counters rounded up to a power of two (at least 16).
    Twin: ``mlcache.policies.wtinylfu.CountMinSketch`` (same hashing, same numbers)."""

    cdef uint8_t* table
    cdef int shift
    cdef readonly Py_ssize_t width, sample, additions

    def __cinit__(self, Py_ssize_t width, Py_ssize_t sample):
        cdef int bits = 4  # at least 16 counters a row
        while (<Py_ssize_t>1 << bits) < width:
            bits += 1
        self.width = <Py_ssize_t>1 << bits
        self.shift = 64 - bits
        self.sample = sample
        self.table = <uint8_t*>PyMem_Malloc(4 * self.width)
        if self.table == NULL:
            raise MemoryError()
        self.reset()

    def __dealloc__(self):
        PyMem_Free(self.table)

    @cython.final
    cdef inline uint64_t _index(self, uint64_t x, int row) noexcept nogil:
        return <uint64_t>row * <uint64_t>self.width + ((x * _SKETCH_SEEDS[row]) >> self.shift)

    @staticmethod
    cdef inline uint64_t _spread(int64_t h) noexcept nogil:
        cdef uint64_t x = <uint64_t>h
        x = (x ^ (x >> 33)) * <uint64_t>0xff51afd7ed558ccd
        return x ^ (x >> 33)

    cdef void add(self, int64_t h) noexcept:
        cdef uint64_t x = _Sketch._spread(h), i
        cdef bint added = False
        cdef int row
        for row in range(4):
            i = self._index(x, row)
            if self.table[i] < 15:
                self.table[i] += 1
                added = True
        if added:
            self.additions += 1
            if self.additions >= self.sample:
                for i in range(4 * <uint64_t>self.width):
                    self.table[i] >>= 1
                self.additions //= 2

    cdef int estimate(self, int64_t h) noexcept:
        cdef uint64_t x = _Sketch._spread(h)
        cdef int row, c, low = 15
        for row in range(4):
            c = self.table[self._index(x, row)]
            if c < low:
                low = c
        return low

    cdef void reset(self) noexcept:
        memset(self.table, 0, 4 * self.width)
        self.additions = 0

    def frequency(self, h):
        return self.estimate(h)

    def counters(self):
        return bytes(self.table[:4 * self.width])
