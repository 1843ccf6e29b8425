# The trace simulator: replays an array of int64 keys through a cache of ``size`` objects whose
# victims the SAME compiled policy classes as the L1 tier choose (one policy implementation
# serves both). Per request: one probe of an int64 -> slot map and one or two policy calls, no
# Python object. Twin: mlcache/bench/simulate.py (pure, slow, exact); that module is the API.

from cpython cimport array as _carray
import array as _array

cdef int64_t _NEVER = 0x7FFFFFFFFFFFFFFF   # next access of a key that is not requested again
cdef Py_ssize_t _AHEAD = 12                # how many requests ahead to prefetch table cells


cdef int _check_size(Py_ssize_t size) except -1:
    if size < 1 or size >= 0x7FFFFFFF:
        raise ValueError(f"size must be in [1, 2**31 - 1), got {size}")
    return 0


def simulate(Policy policy, const int64_t[::1] keys, Py_ssize_t size):
    """Replay ``keys`` through an empty cache of ``size`` objects evicting by ``policy`` (a new
    policy object made for ``maxsize=size``); return the number of hits (every first access
    is a miss, a miss always inserts)."""
    cdef Py_ssize_t n = keys.shape[0], i, used = 0, hits = 0
    cdef int64_t k, s
    cdef uint64_t cell
    _check_size(size)
    # Load <= 1/8: short probe runs, so look-ups and removals touch few cells (measured: 35
    # ns/request at load 1/2, 17 at 1/8). Room for the new key before the victim leaves.
    cdef _IntMap index = _IntMap(4 * size + 4)
    cdef int64_t* owner = <int64_t*>PyMem_Malloc(size * sizeof(int64_t))
    if owner == NULL:
        raise MemoryError()
    try:
        policy.grow(size)
        for i in range(n):
            if i + _AHEAD < n:
                index.prefetch(keys[i + _AHEAD])
            k = keys[i]
            cell = index.find(k)
            s = index.cells[cell].value
            if s >= 0:
                hits += 1
                policy.on_hit(<int32_t>s)
                continue
            # One probe: the new key takes the empty cell found, then the victim's key leaves.
            if used < size:
                s = used
                used += 1
                index.fill(cell, k, s)
            else:
                s = policy.evict()
                index.fill(cell, k, s)
                index.pop(owner[s])
            owner[s] = k
            policy.on_insert(<int32_t>s, <Py_hash_t>k)
    finally:
        PyMem_Free(owner)
    return hits


def next_accesses(const int64_t[::1] keys):
    """``out[i]`` = the index of the next request for ``keys[i]``, or 2**63 - 1 if none."""
    cdef Py_ssize_t n = keys.shape[0], i
    cdef _carray.array out = _carray.clone(_array.array("q"), n, zero=False)
    cdef int64_t[::1] nxt = out
    cdef _IntMap last = _IntMap(1024)
    cdef int64_t j
    for i in range(n - 1, -1, -1):
        j = last.get(keys[i])
        if j < 0:
            nxt[i] = _NEVER
            last.put(keys[i], i)
        else:
            nxt[i] = j
            last.pop(keys[i])
            last.put(keys[i], i)
    return out


def count_unique(const int64_t[::1] keys):
    """The number of distinct keys."""
    cdef Py_ssize_t i
    cdef _IntMap seen = _IntMap(1024)
    for i in range(keys.shape[0]):
        if seen.get(keys[i]) < 0:
            seen.put(keys[i], 0)
    return seen.count


# A binary max-heap of slots ordered by next access (``nxt``), with each slot's position.
cdef inline void _heap_place(int32_t* heap, int32_t* pos, Py_ssize_t i, int32_t s) noexcept nogil:
    heap[i] = s
    pos[s] = <int32_t>i


cdef void _sift_up(int32_t* heap, int32_t* pos, int64_t* nxt, Py_ssize_t i) noexcept nogil:
    cdef int32_t s = heap[i]
    cdef Py_ssize_t parent
    while i > 0:
        parent = (i - 1) >> 1
        if nxt[heap[parent]] >= nxt[s]:
            break
        _heap_place(heap, pos, i, heap[parent])
        i = parent
    _heap_place(heap, pos, i, s)


cdef void _sift_down(int32_t* heap, int32_t* pos, int64_t* nxt, Py_ssize_t n) noexcept nogil:
    cdef int32_t s = heap[0]
    cdef Py_ssize_t i = 0, c
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and nxt[heap[c + 1]] > nxt[heap[c]]:
            c += 1
        if nxt[heap[c]] <= nxt[s]:
            break
        _heap_place(heap, pos, i, heap[c])
        i = c
    _heap_place(heap, pos, i, s)


def belady(const int64_t[::1] keys, const int64_t[::1] nexts, Py_ssize_t size, bint bypass):
    """Belady's MIN on ``keys`` (``nexts`` from ``next_accesses``) in ``size`` objects; return
    the number of hits. A miss evicts the entry requested farthest in the future. With
    ``bypass`` false the missed key is always inserted (demand paging, libCacheSim's Belady);
    with ``bypass`` true it is dropped instead when it is itself requested no sooner than that
    entry (Caffeine's opt)."""
    cdef Py_ssize_t n = keys.shape[0], i, used = 0, hits = 0
    cdef int64_t k, s
    cdef int32_t r
    _check_size(size)
    if nexts.shape[0] != n:
        raise ValueError("keys and nexts differ in length")
    cdef _IntMap index = _IntMap(4 * size + 4)  # as in simulate()
    cdef uint64_t cell
    cdef int64_t* owner = <int64_t*>PyMem_Malloc(size * sizeof(int64_t))
    cdef int64_t* nxt = <int64_t*>PyMem_Malloc(size * sizeof(int64_t))
    cdef int32_t* heap = <int32_t*>PyMem_Malloc(size * sizeof(int32_t))
    cdef int32_t* pos = <int32_t*>PyMem_Malloc(size * sizeof(int32_t))
    try:
        if owner == NULL or nxt == NULL or heap == NULL or pos == NULL:
            raise MemoryError()
        for i in range(n):
            if i + _AHEAD < n:
                index.prefetch(keys[i + _AHEAD])
            k = keys[i]
            cell = index.find(k)
            s = index.cells[cell].value
            if s >= 0:
                hits += 1
                nxt[s] = nexts[i]  # later than before: the entry can only rise
                _sift_up(heap, pos, nxt, pos[s])
                continue
            if used < size:
                s = used
                nxt[s] = nexts[i]
                _heap_place(heap, pos, used, <int32_t>s)
                used += 1
                _sift_up(heap, pos, nxt, used - 1)
                index.fill(cell, k, s)
            else:
                r = heap[0]
                if bypass and nexts[i] >= nxt[r]:
                    continue
                s = r
                index.fill(cell, k, s)
                index.pop(owner[s])
                nxt[s] = nexts[i]
                _sift_down(heap, pos, nxt, used)
            owner[s] = k
    finally:
        PyMem_Free(owner)
        PyMem_Free(nxt)
        PyMem_Free(heap)
        PyMem_Free(pos)
    return hits
