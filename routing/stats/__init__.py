"""Statistics of targets: the running book routers keep in memory (book), the snapshot the
scheduled flows publish (snapshot), the significance tests both rely on (significance) and the health
checks that compare a recent window with its baseline (health).
"""
