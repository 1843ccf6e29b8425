# Compiled eviction policies: twins of mlcache/policies/*.py (see mlcache/policies/base.py for
# the protocol). A policy sees only slot numbers; per-slot metadata lives in C arrays that grow
# with the storage's capacity, so no call below allocates except grow().

cdef class Policy:
    """Base class: a policy that remembers nothing (subclasses override what they need)."""

    name = ""
    cdef readonly Py_ssize_t maxsize
    cdef Py_ssize_t capacity

    def __init__(self, Py_ssize_t maxsize):
        self.maxsize = maxsize

    cdef int grow(self, Py_ssize_t capacity) except -1:
        self.capacity = capacity
        return 0

    cdef void on_insert(self, int32_t slot, Py_hash_t h) noexcept:
        pass

    cdef void on_hit(self, int32_t slot) noexcept:
        pass

    cdef void on_update(self, int32_t slot) noexcept:
        self.on_hit(slot)

    cdef void on_remove(self, int32_t slot) noexcept:
        pass

    cdef int32_t evict(self) noexcept:
        return -1

    cdef void reset(self) noexcept:
        pass

    def check(self, live):
        """Raise ``AssertionError`` unless the policy tracks exactly the slots in ``live``."""
        raise NotImplementedError

    def call(self, str method, *args):
        """Call protocol method ``method`` (a cdef method here) from Python: for tests that
        drive both twins of a policy as a storage would. The pure twin has the same."""
        if method == "grow":
            return self.grow(args[0])
        if method == "on_insert":
            return self.on_insert(args[0], args[1])
        if method == "on_hit":
            return self.on_hit(args[0])
        if method == "on_update":
            return self.on_update(args[0])
        if method == "on_remove":
            return self.on_remove(args[0])
        if method == "evict":
            return self.evict()
        if method == "reset":
            return self.reset()
        raise ValueError(f"not a protocol method: {method!r}")


cdef class _LinkedPolicy(Policy):
    """Slots on a doubly linked list; the victim is the head (the oldest position)."""

    cdef int32_t* prev
    cdef int32_t* next
    cdef _List order

    def __cinit__(self):
        _list_init(&self.order)

    def __dealloc__(self):
        PyMem_Free(self.prev)
        PyMem_Free(self.next)

    cdef int grow(self, Py_ssize_t capacity) except -1:
        _realloc(<void**>&self.prev, capacity, sizeof(int32_t))
        _realloc(<void**>&self.next, capacity, sizeof(int32_t))
        self.capacity = capacity
        return 0

    @cython.final
    cdef inline void _to_tail(self, int32_t s) noexcept:
        if s != self.order.tail:
            _list_unlink(&self.order, self.prev, self.next, s)
            _list_append(&self.order, self.prev, self.next, s)

    cdef void on_insert(self, int32_t slot, Py_hash_t h) noexcept:
        _list_append(&self.order, self.prev, self.next, slot)

    cdef void on_update(self, int32_t slot) noexcept:
        # A write moves the entry to the tail in both LRU and FIFO (as cachetools does).
        self._to_tail(slot)

    cdef void on_remove(self, int32_t slot) noexcept:
        _list_unlink(&self.order, self.prev, self.next, slot)

    cdef int32_t evict(self) noexcept:
        cdef int32_t s = self.order.head
        if s >= 0:
            _list_unlink(&self.order, self.prev, self.next, s)
        return s

    cdef void reset(self) noexcept:
        _list_init(&self.order)

    def check(self, live):
        seen = _list_items(&self.order, self.prev, self.next, len(live))
        assert len(seen) == len(set(seen)) == len(live) and set(seen) == set(live), (seen, live)


cdef class LRUPolicy(_LinkedPolicy):
    """Least recently used: every read or write moves the entry to the tail."""

    name = "lru"

    cdef void on_hit(self, int32_t slot) noexcept:
        self._to_tail(slot)


cdef class FIFOPolicy(_LinkedPolicy):
    """First in, first out: reads do not reorder; a write re-queues the entry at the tail."""

    name = "fifo"

    cdef void on_hit(self, int32_t slot) noexcept:
        pass


cdef class LFUPolicy(Policy):
    """Least frequently used; within one frequency, least recently used first.

    The O(1) structure of Shah, Mitra & Matani (2010): a list of frequency buckets in increasing
    order, each holding its slots from least to most recently used. A bucket holds at least one
    slot, so ``capacity`` buckets always suffice.
    """

    name = "lfu"

    # per slot
    cdef int32_t* bucket
    cdef int32_t* prev
    cdef int32_t* next
    # per bucket
    cdef uint64_t* bfreq
    cdef int32_t* bhead   # least recently used slot (the victim end)
    cdef int32_t* btail   # most recently used slot
    cdef int32_t* bprev
    cdef int32_t* bnext
    cdef int32_t* bfree   # stack of unused buckets
    cdef Py_ssize_t nbfree
    cdef int32_t first    # the bucket of lowest frequency

    def __cinit__(self):
        self.first = -1

    def __dealloc__(self):
        PyMem_Free(self.bucket)
        PyMem_Free(self.prev)
        PyMem_Free(self.next)
        PyMem_Free(self.bfreq)
        PyMem_Free(self.bhead)
        PyMem_Free(self.btail)
        PyMem_Free(self.bprev)
        PyMem_Free(self.bnext)
        PyMem_Free(self.bfree)

    cdef int grow(self, Py_ssize_t capacity) except -1:
        cdef Py_ssize_t i
        _realloc(<void**>&self.bucket, capacity, sizeof(int32_t))
        _realloc(<void**>&self.prev, capacity, sizeof(int32_t))
        _realloc(<void**>&self.next, capacity, sizeof(int32_t))
        _realloc(<void**>&self.bfreq, capacity, sizeof(uint64_t))
        _realloc(<void**>&self.bhead, capacity, sizeof(int32_t))
        _realloc(<void**>&self.btail, capacity, sizeof(int32_t))
        _realloc(<void**>&self.bprev, capacity, sizeof(int32_t))
        _realloc(<void**>&self.bnext, capacity, sizeof(int32_t))
        _realloc(<void**>&self.bfree, capacity, sizeof(int32_t))
        for i in range(capacity - 1, self.capacity - 1, -1):
            self.bfree[self.nbfree] = <int32_t>i
            self.nbfree += 1
        self.capacity = capacity
        return 0

    @cython.final
    cdef inline int32_t _new_bucket(self, uint64_t freq, int32_t after) noexcept:
        """Take a free bucket for ``freq`` and link it after ``after`` (-1: at the front)."""
        self.nbfree -= 1
        cdef int32_t b = self.bfree[self.nbfree]
        cdef int32_t n = self.first if after < 0 else self.bnext[after]
        self.bfreq[b] = freq
        self.bhead[b] = self.btail[b] = -1
        self.bprev[b] = after
        self.bnext[b] = n
        if after >= 0:
            self.bnext[after] = b
        else:
            self.first = b
        if n >= 0:
            self.bprev[n] = b
        return b

    @cython.final
    cdef inline void _push(self, int32_t s, int32_t b) noexcept:
        """Put slot ``s`` at the most recently used end of bucket ``b``."""
        self.bucket[s] = b
        self.prev[s] = self.btail[b]
        self.next[s] = -1
        if self.btail[b] >= 0:
            self.next[self.btail[b]] = s
        else:
            self.bhead[b] = s
        self.btail[b] = s

    @cython.final
    cdef inline void _pull(self, int32_t s) noexcept:
        """Take slot ``s`` out of its bucket; drop the bucket if it is left empty."""
        cdef int32_t b = self.bucket[s]
        cdef int32_t p = self.prev[s]
        cdef int32_t n = self.next[s]
        if p >= 0:
            self.next[p] = n
        else:
            self.bhead[b] = n
        if n >= 0:
            self.prev[n] = p
        else:
            self.btail[b] = p
        if self.bhead[b] < 0:
            p = self.bprev[b]
            n = self.bnext[b]
            if p >= 0:
                self.bnext[p] = n
            else:
                self.first = n
            if n >= 0:
                self.bprev[n] = p
            self.bfree[self.nbfree] = b
            self.nbfree += 1

    cdef void on_insert(self, int32_t slot, Py_hash_t h) noexcept:
        cdef int32_t b = self.first
        if b < 0 or self.bfreq[b] != 1:
            b = self._new_bucket(1, -1)
        self._push(slot, b)

    cdef void on_hit(self, int32_t slot) noexcept:
        cdef int32_t b = self.bucket[slot]
        cdef uint64_t freq = self.bfreq[b] + 1
        cdef int32_t n = self.bnext[b]
        if n >= 0 and self.bfreq[n] == freq:
            self._pull(slot)
            self._push(slot, n)
        elif self.bhead[b] == slot and self.btail[b] == slot:
            self.bfreq[b] = freq  # alone in its bucket: the bucket moves up instead
        else:
            n = self._new_bucket(freq, b)
            self._pull(slot)
            self._push(slot, n)

    cdef void on_remove(self, int32_t slot) noexcept:
        self._pull(slot)

    cdef int32_t evict(self) noexcept:
        if self.first < 0:
            return -1
        cdef int32_t s = self.bhead[self.first]
        self._pull(s)
        return s

    cdef void reset(self) noexcept:
        cdef Py_ssize_t i
        self.first = -1
        self.nbfree = 0
        for i in range(self.capacity - 1, -1, -1):
            self.bfree[self.nbfree] = <int32_t>i
            self.nbfree += 1

    def check(self, live):
        seen = []
        cdef int32_t b = self.first, pb = -1, s, p
        cdef uint64_t last = 0
        nbuckets = 0
        while b >= 0:
            assert self.bprev[b] == pb
            assert self.bfreq[b] > last, "bucket frequencies not increasing"
            assert self.bhead[b] >= 0, "empty bucket kept"
            last = self.bfreq[b]
            s, p = self.bhead[b], -1
            while s >= 0:
                assert self.bucket[s] == b and self.prev[s] == p
                assert len(seen) <= len(live), "cycle in a bucket"
                seen.append(s)
                p = s
                s = self.next[s]
            assert self.btail[b] == p
            nbuckets += 1
            pb = b
            b = self.bnext[b]
        assert nbuckets + self.nbfree == self.capacity
        assert len(seen) == len(set(seen)) == len(live) and set(seen) == set(live), (seen, live)


POLICIES = {cls.name: cls for cls in (LRUPolicy, FIFOPolicy, LFUPolicy)}  # + policies_modern.pxi
