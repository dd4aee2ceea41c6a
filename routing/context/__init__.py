"""What a task carries beyond its text: its detected category, its session, and its prompt's embedding
(the Embedder protocol; the models themselves live in blocks/embeddings.py).
"""
