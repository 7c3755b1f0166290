"""Retrieval, prompt budgeting and cited answers."""
