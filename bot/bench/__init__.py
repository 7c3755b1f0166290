"""Benchmarks of retrieval, ingestion and grounding (``librarian bench ...``).

Each benchmark runs on a scratch database created beside the configured one (and
dropped afterwards) with a temporary file store, so it never touches the bot's data;
it uses the configured models.
"""
