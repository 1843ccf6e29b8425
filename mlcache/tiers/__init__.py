"""Cache tiers. ``memory`` is L1 (pure twin; the compiled one is in ``mlcache._speedups``)."""
