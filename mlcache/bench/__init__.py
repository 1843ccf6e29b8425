"""Tools for benchmarking eviction policies on access traces (the ``mlcache bench`` CLI)."""
