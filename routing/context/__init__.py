"""What a task carries beyond its text: its detected category and its session.
"""
