"""Statistics of targets: the running book routers keep in memory (book) with its bounded, decayed latency
sketch per (target, task type) (sketch), the snapshot the scheduled flows publish (snapshot), the
significance tests both rely on (significance) and the health checks that compare a recent window with its
baseline (health).
"""
