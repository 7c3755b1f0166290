"""Storage: the only package that imports SQLAlchemy.

Postgres with pgvector, embedded (pgserver) by default or at ``DATABASE_URL``.
"""
