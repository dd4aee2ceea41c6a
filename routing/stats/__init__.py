"""Statistics of targets: the running book routers keep in memory (book), the snapshot the
scheduled flows publish (snapshot) and the significance tests both rely on (significance).
"""
