"""From shared bytes to indexed chunks, through a durable queue in Postgres.

``submit`` refuses what can be refused at once (size, type), stores the bytes by
hash and queues a document row.  ``run`` (one per process; several processes may
share the queue) claims queued documents, extracts their text in the sandbox,
chunks it by embedding-model tokens, embeds the chunks and writes them with the
document's status in one transaction.

No one file or team can stall the queue: claims rotate across workspaces (the one
served least recently goes first), a document over the limits (pages, characters,
chunks, the workspace's total: :mod:`bot.ingest.limits`) is refused with the limit
named, and any failure while a document is prepared counts an attempt and moves on
to the next; after ``max_attempts`` the document is marked failed and its channel told.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.ingest.chunker import chunk_pages
from bot.ingest.filestore import FileStore
from bot.ingest.filetypes import (
    MEDIA_TYPES,
    ExtractionRefused,
    check_size,
    detect_kind,
    display_name,
)
from bot.ingest.limits import IngestLimits
from bot.ingest.sandbox import Sandbox
from bot.store.database import is_unavailable
from bot.store.events import Claim
from bot.store.records import ClaimLost, Document, DocumentClaim, NewChunk, Workspace
from bot.store.repo import Store

log = logging.getLogger(__name__)

DocumentCallback = Callable[[Document], Awaitable[None]]


@dataclass(frozen=True)
class Submitted:
    """A document accepted into the queue (or found already there)."""

    document: Document
    created: bool


@dataclass(frozen=True)
class Forgotten:
    """What forgetting a document removed."""

    document: Document
    chunks: int
    bytes_still_used: bool  # another document has the same bytes: the file stays
    bytes_deleted: bool


@dataclass
class _Prepared:
    """A claimed document, extracted and chunked, waiting for its embedding."""

    doc: Document
    page_count: int
    chunks: list[Any]
    # Plain notes from extraction (pages OCR had no time for, pages that need the OCR
    # extra): kept with the document and told with "Indexed ...".
    warnings: list[str] = dataclasses.field(default_factory=list)


@dataclass
class _Job:
    """A claimed document (the claim is held until it is finished) and its state."""

    claim: contextlib.AbstractContextManager[DocumentClaim | None]
    held: DocumentClaim
    work: _Prepared | Document | None  # None: this attempt failed, the document waits

    @property
    def doc(self) -> Document:
        """The claimed document (as it was when claimed)."""
        return self.held.document


class _SyncTokenizer:
    """Counts embedding-model tokens for the chunker, which runs in a worker thread."""

    def __init__(self, inference: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._inference = inference
        self._loop = loop
        self._cache: dict[str, int] = {}

    def count_tokens(self, text: str) -> int:
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        future = asyncio.run_coroutine_threadsafe(
            self._inference.count_tokens(None, text, role="embedding"), self._loop
        )
        # +2 for the [CLS] and [SEP] every BERT input carries.
        count = int(future.result()) + 2
        if len(self._cache) < 50_000:
            self._cache[text] = count
        return count

    def count_tokens_many(self, texts: list[str]) -> list[int]:
        """Count many texts with one hop to the event loop (the chunker batches its units)."""

        async def count_all() -> list[int]:
            return [
                int(await self._inference.count_tokens(None, t, role="embedding")) + 2
                for t in texts
            ]

        return asyncio.run_coroutine_threadsafe(count_all(), self._loop).result()


def _chunk_by_page(pages: list[Any], tokenizer: Any, size: int, overlap: int) -> list[Any]:
    """Chunks that never cross a page boundary, so every citation names its exact page.

    A page is also a slide, a block of sheet rows or a section: each chunk carries its
    page's location.
    """
    out: list[Any] = []
    for page in pages:
        for chunk in chunk_pages([page], tokenizer, size, overlap):
            out.append(dataclasses.replace(chunk, ordinal=len(out), location=page.location))
    return out


def _first(exc: BaseException) -> str:
    """The first line of an error, for a one-line log."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class IngestService:
    """Queues files and indexes them."""

    def __init__(
        self,
        store: Store,
        files: FileStore,
        inference: Any,
        sandbox: Sandbox,
        *,
        max_file_mb: float,
        limits: IngestLimits,
        max_attempts: int,
        parse_timeout_s: float = 120.0,
        parse_memory_mb: int = 1024,
        poll_interval_s: float = 5.0,
    ) -> None:
        self.store = store
        self.files = files
        self.inference = inference
        self.sandbox = sandbox
        self.max_file_mb = max_file_mb
        self.limits = limits
        # A document that failed (or killed its process) this many times is given up on.
        self.max_attempts = max_attempts
        self.parse_timeout_s = parse_timeout_s
        self.parse_memory_mb = parse_memory_mb
        self.poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()
        self._waiters: dict[int, list[asyncio.Future[Document]]] = {}
        self._model: tuple[int, int, str] | None = None  # (id, dims, name)
        # Workspaces whose HNSW index is of the older kind, to upgrade when idle
        # (upgrade_one_index); None until looked up.
        self._outdated: list[int] | None = None
        self._callbacks: list[DocumentCallback] = []
        self._prefetch: asyncio.Task[_Job | None] | None = None
        self.stats = {"documents": 0, "pages": 0, "chunks": 0, "failed": 0}

    def on_finished(self, callback: DocumentCallback) -> None:
        """Call ``callback(document)`` whenever a document is indexed or fails."""
        self._callbacks.append(callback)

    async def embedding_model(self) -> tuple[int, int, str]:
        """(store id, dimensions, name) of the embedding model, registered on first use."""
        if self._model is None:
            facts = await self.inference.describe(role="embedding")
            name = f"{facts['name']}:{facts.get('quant', '')}".rstrip(":")
            dims = int(facts["dims"])
            model_id = await asyncio.to_thread(self.store.ensure_embedding_model, name, dims)
            self._model = (model_id, dims, name)
        return self._model

    # -- queueing ---------------------------------------------------------------------------

    async def submit(
        self,
        workspace: Workspace,
        data: bytes,
        file_name: str,
        *,
        media_type: str | None = None,
        uploader: str | None = None,
        source: dict[str, str | None] | None = None,
        event: Claim | None = None,
    ) -> Submitted:
        """Accept a file for indexing.

        Raises ExtractionRefused at once for files that are too large or of an
        unsupported type; everything else is decided by the worker.  ``event``: the
        claimed event that shared it, whose record gets the queued document.
        """
        check_size(len(data), self.max_file_mb, file_name)
        kind = detect_kind(data, file_name, media_type)
        sha = await asyncio.to_thread(self.files.put, data)
        document, created = await asyncio.to_thread(
            self.store.add_document,
            workspace.id,
            file_name=file_name,
            media_type=MEDIA_TYPES[kind],
            sha256=sha,
            size_bytes=len(data),
            uploader=uploader,
            source=source,
            event=event,
        )
        self._wake.set()
        return Submitted(document, created)

    async def wait(self, document_id: int, timeout: float | None = None) -> Document:
        """Wait until a document is ready or failed; return it."""
        doc = await asyncio.to_thread(self.store.get_document, document_id)
        if doc is None:
            raise LookupError(f"document {document_id} no longer exists")
        if doc.status in ("ready", "failed"):
            return doc
        future: asyncio.Future[Document] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(document_id, []).append(future)
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        # Another process may index it: poll the row as well as waiting for our worker.
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if remaining == 0.0:
                raise TimeoutError(f"document {document_id} is still being indexed")
            step = (
                self.poll_interval_s if remaining is None else min(remaining, self.poll_interval_s)
            )
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(future), step)
            doc = await asyncio.to_thread(self.store.get_document, document_id)
            if doc is None:
                raise LookupError(f"document {document_id} no longer exists")
            if doc.status in ("ready", "failed"):
                return doc

    # -- the worker -------------------------------------------------------------------------

    async def forget(self, document_id: int, history_window: int) -> Forgotten | None:
        """Delete a document and its chunks, and its stored bytes unless another document uses them.

        ``history_window`` is how many turns after an answer that quoted the document
        go with it (answers written with it in their history may repeat it).  None when
        the document was already gone.
        """
        gone = await asyncio.to_thread(self.store.forget_document, document_id, history_window)
        if gone is None:
            return None
        doc, chunks, still_used = gone
        bytes_deleted = False
        # Checked again just before deleting: the same bytes may have been shared meanwhile.
        if not still_used and not await asyncio.to_thread(self.store.sha_in_use, doc.sha256):
            bytes_deleted = await asyncio.to_thread(self.files.delete, doc.sha256)
        return Forgotten(doc, chunks, still_used, bytes_deleted)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Index queued documents until ``stop`` is set (or forever)."""
        stop = stop or asyncio.Event()
        try:
            await self.index_large_workspaces()
            while not stop.is_set():
                try:
                    worked = await self.process_next()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a bug or a lost database: log it, keep serving
                    if is_unavailable(exc):
                        # An outage passes: one line per poll, not a traceback.
                        log.warning("ingest worker: the database is unavailable (%s)", _first(exc))
                    else:
                        log.exception("ingest worker error")
                    worked = False
                if worked or await self.upgrade_one_index():
                    continue
                self._wake.clear()
                await self._idle(stop)
        finally:
            await self.close()

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for a document to be submitted, ``stop``, or the next poll (another process
        may queue one), whichever comes first: ``librarian ingest`` sets ``stop`` once its
        files are indexed, and returns then, not at the next poll."""
        waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(
                waits, timeout=self.poll_interval_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiting in waits:
                waiting.cancel()

    async def drain(self) -> int:
        """Index everything queued now; return how many documents were processed."""
        done = 0
        while await self.process_next():
            done += 1
        return done

    async def process_next(self) -> bool:
        """Index one queued document; False when the queue is empty.

        While a document is embedded, the next queued one is claimed, extracted and
        chunked in the background (extraction runs in the sandbox's process, so it
        fills the gaps the embedder leaves on the cores); the next call picks it up.
        Serially, extraction, chunking and the write cost ~15% of the indexing time
        of 12-page PDFs (``librarian bench ingest``).
        """
        model_id, _dims, _name = await self.embedding_model()
        job = await self._take_prefetched()
        if (
            job is not None
            and isinstance(job.work, _Prepared)
            and await asyncio.to_thread(self.store.fairer_waiting, job.doc.workspace_id)
        ):
            # A team shared a file while this one was read ahead for a busier team: it
            # goes first, and the read-ahead (still queued) is given back.
            await asyncio.to_thread(job.claim.__exit__, None, None, None)
            job = None
        if job is None:  # nothing was prefetched, or the queue was empty back then
            job = await self._claim_and_prepare()
            if job is None:
                return False
        try:
            await asyncio.to_thread(self.store.mark_served, job.doc.workspace_id)
            if isinstance(job.work, _Prepared):
                if self._prefetch is None:  # unless another caller runs beside this one
                    self._prefetch = asyncio.create_task(
                        self._claim_and_prepare(), name="ingest-prefetch"
                    )
                try:
                    finished = await self._complete(job.work, model_id, job.held)
                except ClaimLost:
                    # The database restarted while this worker embedded: the document
                    # was free to claim again, and the worker that did writes it.
                    log.warning(
                        "the claim on document %s was lost while it was indexed; "
                        "it is left to the worker that claimed it again",
                        job.doc.id,
                    )
                    finished = None
            else:
                finished = job.work
        except BaseException as exc:
            await asyncio.to_thread(job.claim.__exit__, type(exc), exc, exc.__traceback__)
            raise
        await asyncio.to_thread(job.claim.__exit__, None, None, None)
        if finished is not None:
            await self._finished(finished)
        return True

    async def close(self) -> None:
        """Give back a prefetched document (still queued) and its claim."""
        task, self._prefetch = self._prefetch, None
        if task is None:
            return
        task.cancel()
        try:
            job = await task
        except (asyncio.CancelledError, Exception):
            return  # the task released its own claim
        if job is not None:
            await asyncio.to_thread(job.claim.__exit__, None, None, None)

    async def _take_prefetched(self) -> _Job | None:
        task, self._prefetch = self._prefetch, None
        return None if task is None else await task

    async def _claim_and_prepare(self) -> _Job | None:
        """Claim the next queued document and extract and chunk it, holding the claim."""
        claim = self.store.claim_document()
        entering = asyncio.ensure_future(asyncio.to_thread(claim.__enter__))
        try:
            held = await asyncio.shield(entering)
        except asyncio.CancelledError:
            # The thread goes on and may still take a claim (close() cancels a read-ahead
            # at any point): wait for it and give it back, so that nothing stays locked.
            with contextlib.suppress(Exception):
                if await entering is not None:
                    await asyncio.to_thread(claim.__exit__, None, None, None)
            raise
        if held is None:
            await asyncio.to_thread(claim.__exit__, None, None, None)
            return None
        try:
            work = await self._prepare(held.document)
        except BaseException as exc:
            await asyncio.to_thread(claim.__exit__, type(exc), exc, exc.__traceback__)
            raise
        return _Job(claim, held, work)

    async def _prepare(self, doc: Document) -> _Prepared | Document | None:
        """Extract and chunk a claimed document; a Document when it failed instead.

        The document stays 'queued' here: a prefetched one is still waiting.  A refusal
        (the file's fault, or over a limit) fails it at once; any other failure counts
        an attempt and returns None, so the worker moves on (the document goes behind
        its workspace's others) until ``max_attempts``, when it is failed.
        """
        if doc.attempts >= self.max_attempts:
            return await self._fail(
                doc,
                f"{display_name(doc.file_name)} stopped the indexer {doc.attempts} times "
                "and was given up on",
                counted=False,
            )
        try:
            return await self._extract_and_chunk(doc)
        except ExtractionRefused as refused:
            return await self._fail(doc, refused.message)
        except FileNotFoundError:
            return await self._fail(
                doc, "its stored bytes are missing; share it again", counted=False
            )
        except Exception as exc:  # the sandbox, the tokenizer, a bug: not this file's turn
            attempts = await asyncio.to_thread(self.store.count_attempt, doc.id)
            log.warning(
                "preparing document %s failed (attempt %s of %s)",
                doc.id,
                attempts,
                self.max_attempts,
                exc_info=True,
            )
            if attempts < self.max_attempts:
                return None
            return await self._fail(
                doc,
                f"{display_name(doc.file_name)} could not be prepared for indexing in "
                f"{attempts} attempts ({type(exc).__name__}: {exc}); it was given up on",
            )

    async def _extract_and_chunk(self, doc: Document) -> _Prepared | Document | None:
        """Read a document's text in the sandbox and cut it into chunks, within limits."""
        size, overlap = await asyncio.to_thread(self._workspace_of, doc.workspace_id)
        data = await asyncio.to_thread(self.files.get, doc.sha256)
        extracted = await asyncio.to_thread(
            self.sandbox.extract,
            data,
            doc.file_name,
            doc.media_type,
            timeout_s=self.parse_timeout_s,
            memory_mb=self.parse_memory_mb,
            max_mb=self.max_file_mb,
            limits=self.limits,
        )
        tokenizer = _SyncTokenizer(self.inference, asyncio.get_running_loop())
        chunks = await asyncio.to_thread(_chunk_by_page, extracted.pages, tokenizer, size, overlap)
        if not chunks:
            return await self._fail(doc, f"{display_name(doc.file_name)} holds no text to index")
        self.limits.check_chunks(len(chunks), doc.file_name)
        held = await asyncio.to_thread(
            self.store.workspace_chunks_held, doc.workspace_id, excluding=doc.id
        )
        self.limits.check_workspace(held, len(chunks), doc.file_name)
        return _Prepared(doc, extracted.page_count, chunks, list(extracted.warnings))

    async def _fail(self, doc: Document, reason: str, counted: bool = True) -> Document | None:
        await asyncio.to_thread(self.store.fail_document, doc.id, reason)
        if counted:
            self.stats["failed"] += 1
        return await asyncio.to_thread(self.store.get_document, doc.id)

    async def _complete(
        self, job: _Prepared, model_id: int, held: DocumentClaim
    ) -> Document | None:
        """Embed a prepared document's chunks and write them with its status.

        Both writes name the claim: ClaimLost when it no longer holds.
        """
        doc, chunks = job.doc, job.chunks
        await asyncio.to_thread(self.store.set_document_status, doc.id, "indexing", claim=held)
        vectors = await self.inference.embed(
            [c.text for c in chunks], key=f"ingest:{doc.workspace_id}"
        )
        rows = [
            NewChunk(
                ordinal=c.ordinal,
                page_start=c.page_start,
                page_end=c.page_end,
                location=c.location,
                text=c.text,
                embedding=[float(x) for x in vectors[i]],
            )
            for i, c in enumerate(chunks)
        ]
        await asyncio.to_thread(
            self.store.complete_document,
            doc.id,
            page_count=job.page_count,
            chunks=rows,
            embedding_model_id=model_id,
            notes=" ".join(job.warnings) or None,
            claim=held,
        )
        self.stats["documents"] += 1
        self.stats["pages"] += job.page_count
        self.stats["chunks"] += len(rows)
        await self._index_large_workspace(doc.workspace_id, model_id)
        return await asyncio.to_thread(self.store.get_document, doc.id)

    async def _index_large_workspace(self, workspace_id: int, model_id: int) -> None:
        """Give a workspace that outgrew the exact scan its own HNSW index (once)."""
        dims = self._model[1] if self._model else None
        if dims is None:
            return
        try:
            built = await asyncio.to_thread(
                self.store.ensure_workspace_index, workspace_id, model_id, dims
            )
        except Exception:  # searches scan the workspace exactly meanwhile
            log.exception("building the HNSW index of workspace %s failed", workspace_id)
            return
        if built:
            log.info("workspace %s got an HNSW index of its own", workspace_id)

    async def index_large_workspaces(self) -> list[int]:
        """Build the missing indexes of workspaces that outgrew the exact scan; their ids.

        The worker does this when it starts: a build that failed (or a database
        upgraded from before per-workspace indexes) would otherwise leave a large
        workspace on exact scans until its next document is indexed.
        """
        try:
            model_id, dims, _name = await self.embedding_model()
            built = await asyncio.to_thread(self.store.ensure_workspace_indexes, model_id, dims)
        except Exception:  # searches scan those workspaces exactly meanwhile
            log.exception("building the missing HNSW indexes failed")
            return []
        for workspace_id in built:
            log.info("workspace %s got an HNSW index of its own", workspace_id)
        return built

    async def upgrade_one_index(self) -> bool:
        """When idle, replace one workspace index of the older kind (``vector``, on a
        server with pgvector 0.8) by one of the server's kind; whether one was.

        A home made before the 0.8 path has such indexes; each keeps serving searches
        until its replacement is ready (``Store.upgrade_workspace_index``), and queued
        documents go first (the worker comes here only when it found none).
        """
        if self._outdated == []:
            return False
        try:
            model_id, dims, _name = await self.embedding_model()
            if self._outdated is None:
                self._outdated = await asyncio.to_thread(
                    self.store.outdated_workspace_indexes, model_id
                )
                if self._outdated:
                    log.info(
                        "%d workspace HNSW indexes are of the older kind; each is rebuilt "
                        "as %s while the worker is idle, and serves searches meanwhile",
                        len(self._outdated),
                        self.store.index_kind.type,
                    )
            if not self._outdated:
                return False
            ws = self._outdated.pop(0)
            await asyncio.to_thread(self.store.upgrade_workspace_index, ws, model_id, dims)
        except Exception:  # the old index keeps serving; tried again at the next start
            log.exception("upgrading a workspace's HNSW index failed")
            self._outdated = []
            return False
        log.info("workspace index upgrades: %d left", len(self._outdated))
        return True

    def _workspace_of(self, workspace_id: int) -> tuple[int, int]:
        ws = self.store.workspace(workspace_id)
        return ws.chunk_tokens, ws.chunk_overlap

    async def _finished(self, doc: Document) -> None:
        for future in self._waiters.pop(doc.id, []):
            if not future.done():
                future.set_result(doc)
        for callback in self._callbacks:
            try:
                await callback(doc)
            except Exception:
                log.exception("document callback failed")
