"""Ingestion: turn uploaded files into page-numbered text and token-sized chunks.

- :mod:`bot.ingest.filetypes` detects what a file is from its bytes and name, checks its
  size and decodes text files; it also defines :class:`ExtractionRefused`
  (:mod:`bot.ingest.zipsniff` reads just enough of a zip to name its kind).
- :mod:`bot.ingest.extract` turns a document into pages of clean text (the formats
  beyond PDF, images, text and Markdown are read by :mod:`bot.ingest.formats`).
- :mod:`bot.ingest.ocr` reads text in images and PDF pages without a text layer (the
  optional ``ocr`` extra).
- :mod:`bot.ingest.sandbox` runs that extraction on untrusted bytes in a separate,
  time- and memory-limited worker process.
- :mod:`bot.ingest.chunker` packs the pages into chunks measured in the embedding
  model's tokens, keeping page numbers for citations.

Nothing here touches the database or loads a model.
"""
