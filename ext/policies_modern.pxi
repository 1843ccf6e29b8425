# Compiled SIEVE, S3-FIFO and W-TinyLFU: twins of mlcache/policies/{sieve,s3fifo,wtinylfu}.py,
# whose docstrings give each paper, its parameters and where the port departs from its reference
# implementation (the twins behave identically). Lists, the ghost and the sketch come from
# structures.pxi.


cdef class SievePolicy(_LinkedPolicy):
    """SIEVE (Zhang et al., NSDI 2024): a FIFO queue, a visited bit per entry and a hand that
    sweeps from the oldest entry towards the newest, clearing visited bits, and evicts the first
    entry whose bit is clear. New entries enter at the newest end; hits only set the bit."""

    name = "sieve"

    cdef uint8_t* visited
    cdef int32_t hand   # -1: start from the oldest entry

    def __cinit__(self):
        self.hand = -1

    def __dealloc__(self):
        PyMem_Free(self.visited)

    cdef int grow(self, Py_ssize_t capacity) except -1:
        _realloc(<void**>&self.visited, capacity, sizeof(uint8_t))
        return _LinkedPolicy.grow(self, capacity)

    cdef void on_insert(self, int32_t slot, Py_hash_t h) noexcept:
        self.visited[slot] = 0
        _list_append(&self.order, self.prev, self.next, slot)

    cdef void on_hit(self, int32_t slot) noexcept:
        self.visited[slot] = 1

    cdef void on_update(self, int32_t slot) noexcept:
        self.visited[slot] = 1

    cdef void on_remove(self, int32_t slot) noexcept:
        if slot == self.hand:
            self.hand = self.next[slot]
        _list_unlink(&self.order, self.prev, self.next, slot)

    cdef int32_t evict(self) noexcept:
        cdef int32_t s = self.hand if self.hand >= 0 else self.order.head
        if s < 0:
            return -1
        while self.visited[s]:
            self.visited[s] = 0
            s = self.next[s]
            if s < 0:
                s = self.order.head
        self.hand = self.next[s]
        _list_unlink(&self.order, self.prev, self.next, s)
        return s

    cdef void reset(self) noexcept:
        _list_init(&self.order)
        self.hand = -1

    def check(self, live):
        _LinkedPolicy.check(self, live)
        assert self.hand == -1 or self.hand in live, self.hand

    def state(self):
        """(slots oldest first, their visited bits, the hand): for differential tests."""
        slots = _list_items(&self.order, self.prev, self.next, self.capacity)
        return slots, [self.visited[s] for s in slots], self.hand


cdef class _QueuedPolicy(Policy):
    """Slots on up to three doubly linked lists (queues), each slot remembering its queue and
    its key's hash."""

    cdef int32_t* prev
    cdef int32_t* next
    cdef uint8_t* queue
    cdef int64_t* hashes
    cdef _List lists[3]

    def __cinit__(self):
        cdef int q
        for q in range(3):
            _list_init(&self.lists[q])

    def __dealloc__(self):
        PyMem_Free(self.prev)
        PyMem_Free(self.next)
        PyMem_Free(self.queue)
        PyMem_Free(self.hashes)

    cdef int grow(self, Py_ssize_t capacity) except -1:
        _realloc(<void**>&self.prev, capacity, sizeof(int32_t))
        _realloc(<void**>&self.next, capacity, sizeof(int32_t))
        _realloc(<void**>&self.queue, capacity, sizeof(uint8_t))
        _realloc(<void**>&self.hashes, capacity, sizeof(int64_t))
        self.capacity = capacity
        return 0

    @cython.final
    cdef inline void _push(self, int32_t s, uint8_t q) noexcept:
        self.queue[s] = q
        _list_append(&self.lists[q], self.prev, self.next, s)

    @cython.final
    cdef inline void _pull(self, int32_t s) noexcept:
        _list_unlink(&self.lists[self.queue[s]], self.prev, self.next, s)

    @cython.final
    cdef inline void _move(self, int32_t s, uint8_t q) noexcept:
        self._pull(s)
        self._push(s, q)

    cdef void on_remove(self, int32_t slot) noexcept:
        self._pull(slot)

    cdef void reset(self) noexcept:
        cdef int q
        for q in range(3):
            _list_init(&self.lists[q])

    def queues(self):
        """Each queue's slots, oldest first (checks the links on the way)."""
        out = [_list_items(&self.lists[q], self.prev, self.next, self.capacity) for q in range(3)]
        for q, slots in enumerate(out):
            assert all(self.queue[s] == q for s in slots)
        return out

    def check(self, live):
        seen = [s for q in self.queues() for s in q]
        assert len(seen) == len(set(seen)) == len(live) and set(seen) == set(live), (seen, live)


cdef enum:
    _SMALL = 0
    _MAIN = 1


cdef class S3FIFOPolicy(_QueuedPolicy):
    """S3-FIFO (Yang et al., SOSP 2023), as libCacheSim's S3FIFO.c: see
    mlcache/policies/s3fifo.py."""

    name = "s3fifo"

    cdef uint8_t* freq
    cdef readonly Py_ssize_t small_max, main_max
    cdef bint evicted      # an eviction happened (before it, a full small queue spills to main)
    cdef _Ghost ghost

    def __init__(self, Py_ssize_t maxsize):
        Policy.__init__(self, maxsize)
        self.small_max = max(1, <Py_ssize_t>(maxsize * 0.1))
        self.main_max = maxsize - self.small_max
        self.ghost = _Ghost(<Py_ssize_t>(maxsize * 0.9))

    def __dealloc__(self):
        PyMem_Free(self.freq)

    cdef int grow(self, Py_ssize_t capacity) except -1:
        _realloc(<void**>&self.freq, capacity, sizeof(uint8_t))
        return _QueuedPolicy.grow(self, capacity)

    cdef void on_insert(self, int32_t slot, Py_hash_t h) noexcept:
        cdef bint ghost_hit = self.ghost.remove(h)
        self.ghost.trim()
        self.hashes[slot] = h
        self.freq[slot] = 0
        if ghost_hit or (not self.evicted and self.lists[_SMALL].size >= self.small_max):
            self._push(slot, _MAIN)
        else:
            self._push(slot, _SMALL)

    cdef void on_hit(self, int32_t slot) noexcept:
        if self.freq[slot] < 3:  # only "at least 2" (small) and min(freq, 3) (main) matter
            self.freq[slot] += 1

    cdef int32_t _evict_small(self) noexcept:
        cdef int32_t s
        while self.lists[_SMALL].size > 0:
            s = self.lists[_SMALL].head
            if self.freq[s] >= 2:
                self.freq[s] = 0
                self._move(s, _MAIN)
            else:
                self._pull(s)
                self.ghost.add(self.hashes[s])
                return s
        return -1

    cdef int32_t _evict_main(self) noexcept:
        cdef int32_t s
        while self.lists[_MAIN].size > 0:
            s = self.lists[_MAIN].head
            if self.freq[s] >= 1:
                self.freq[s] -= 1
                self._move(s, _MAIN)
            else:
                self._pull(s)
                return s
        return -1

    cdef int32_t evict(self) noexcept:
        cdef int32_t s = -1
        self.evicted = True
        while s < 0 and self.lists[_SMALL].size + self.lists[_MAIN].size > 0:
            if self.lists[_MAIN].size > self.main_max or self.lists[_SMALL].size == 0:
                s = self._evict_main()
            else:
                s = self._evict_small()
        return s

    cdef void reset(self) noexcept:
        _QueuedPolicy.reset(self)
        self.ghost.clear()
        self.evicted = False

    def state(self):
        """(small, main, freq per slot, ghost hashes): for differential tests."""
        small, main, _ = self.queues()
        return small, main, {s: self.freq[s] for s in small + main}, self.ghost.items()

    def check(self, live):
        _QueuedPolicy.check(self, live)
        assert len(self.ghost.items()) <= self.ghost.capacity


cdef enum:
    _WINDOW = 0
    _PROBATION = 1
    _PROTECTED = 2


cdef class WTinyLFUPolicy(_QueuedPolicy):
    """W-TinyLFU (Einziger, Friedman & Manes, TinyLFU, ACM ToS 2017), as Caffeine's simulator:
    see mlcache/policies/wtinylfu.py."""

    name = "wtinylfu"

    cdef readonly Py_ssize_t window_max, protected_max
    cdef _Sketch sketch

    def __init__(self, Py_ssize_t maxsize):
        Policy.__init__(self, maxsize)
        self.window_max = max(1, <Py_ssize_t>(maxsize * 0.01))
        self.protected_max = <Py_ssize_t>((maxsize - self.window_max) * 0.8)
        self.sketch = _Sketch(min(maxsize, 1 << 24), 10 * maxsize)

    cdef void on_insert(self, int32_t slot, Py_hash_t h) noexcept:
        self.hashes[slot] = h
        self.sketch.add(h)
        self._push(slot, _WINDOW)
        if self.lists[_WINDOW].size > self.window_max:  # not full yet: no victim needed
            self._move(self.lists[_WINDOW].head, _PROBATION)

    cdef void on_hit(self, int32_t slot) noexcept:
        self.sketch.add(self.hashes[slot])
        if self.queue[slot] == _PROBATION:
            self._move(slot, _PROTECTED)
            if self.lists[_PROTECTED].size > self.protected_max:
                self._move(self.lists[_PROTECTED].head, _PROBATION)
        else:
            self._move(slot, self.queue[slot])

    cdef int32_t evict(self) noexcept:
        cdef int32_t candidate, victim
        cdef int q
        if self.lists[_WINDOW].size >= self.window_max:
            # The window's oldest entry makes way for the new one; it enters the main space
            # only if the sketch says it is used more often than the main space's victim.
            candidate = self.lists[_WINDOW].head
            victim = self.lists[_PROBATION].head
            if victim >= 0 and (self.sketch.estimate(self.hashes[candidate])
                                > self.sketch.estimate(self.hashes[victim])):
                self._pull(victim)
                self._move(candidate, _PROBATION)
                return victim
            self._pull(candidate)
            return candidate
        for q in (_PROBATION, _PROTECTED, _WINDOW):  # the window is short after removals
            victim = self.lists[q].head
            if victim >= 0:
                self._pull(victim)
                return victim
        return -1

    cdef void reset(self) noexcept:
        _QueuedPolicy.reset(self)
        self.sketch.reset()

    def state(self):
        """(window, probation, protected, sketch counters): for differential tests."""
        return (*self.queues(), self.sketch.counters())

    def check(self, live):
        _QueuedPolicy.check(self, live)
        assert self.lists[_WINDOW].size <= self.window_max
        assert self.lists[_PROTECTED].size <= self.protected_max


POLICIES.update({cls.name: cls for cls in (SievePolicy, S3FIFOPolicy, WTinyLFUPolicy)})
