"""Thin Prefect tasks over routing/ and blocks/."""
