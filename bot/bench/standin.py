"""A stand-in OpenAI-compatible chat server that streams a fixed answer at a fixed rate.

For the load simulation (``librarian bench load``) and the multi-process tests: it
answers ``/v1/chat/completions`` with ``stream: true`` like llama.cpp's server does
(server-sent events in HTTP/1.1 chunked encoding, a ``[DONE]`` at the end), one token
every ``1 / rate`` seconds, sleeping in between, so it uses next to no CPU and any
number of them fit on a small machine.  With ``--llama-cpp`` it also serves
``/health`` and ``/slots`` (``is_processing`` per slot) like llama.cpp's server;
without, it is a plain OpenAI server (``/health`` is 404).  Run it with
``python -m bot.bench.standin --port 8081``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from typing import Any

DEFAULT_ANSWER = (
    "The documents describe this in the passages quoted below, which hold the details "
    "you asked about."
)


class StandIn:
    """The server: ``slots`` answers at once (more wait, like llama.cpp's queue)."""

    def __init__(self, *, rate: float, answer: str, slots: int, llama_cpp: bool, model: str):
        self.delay = 1.0 / rate if rate > 0 else 0.0
        self.tokens = answer.split(" ")
        self.slots = [False] * slots
        self._free = asyncio.Semaphore(slots)
        self.llama_cpp = llama_cpp
        self.model = model
        self.served = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One HTTP request."""
        try:
            line = await reader.readline()
            headers: dict[str, str] = {}
            while True:
                header = await reader.readline()
                if header in (b"\r\n", b"\n", b""):
                    break
                name, _, value = header.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = b""
            if int(headers.get("content-length", "0") or 0):
                body = await reader.readexactly(int(headers["content-length"]))
            parts = line.decode("latin-1").split()
            method, path = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
            await self._route(method, path, body, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _route(self, method: str, path: str, body: bytes, writer: Any) -> None:
        if path == "/v1/models":
            return self._json(writer, 200, {"object": "list", "data": [{"id": self.model}]})
        if path == "/health" and self.llama_cpp:
            return self._json(writer, 200, {"status": "ok"})
        if path == "/slots" and self.llama_cpp:
            slots = [{"id": i, "is_processing": busy} for i, busy in enumerate(self.slots)]
            return self._json(writer, 200, slots)
        if path == "/v1/chat/completions" and method == "POST":
            return await self._chat(json.loads(body or b"{}"), writer)
        return self._json(writer, 404, {"error": {"message": "not found", "code": 404}})

    @staticmethod
    def _json(writer: Any, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        reason = "OK" if status == 200 else "Not Found"
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
            + data
        )

    async def _chat(self, request: dict[str, Any], writer: Any) -> None:
        limit = int(request.get("max_tokens") or len(self.tokens))
        tokens = self.tokens[:limit]
        async with self._free:
            slot = self.slots.index(False)
            self.slots[slot] = True
            try:
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                )
                created = int(time.time())
                for i, token in enumerate(tokens):
                    await asyncio.sleep(self.delay)
                    piece = token if i == 0 else " " + token
                    last = i == len(tokens) - 1
                    chunk = {
                        "id": "chatcmpl-standin",
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": self.model,
                        "choices": [
                            {
                                "index": 0,
                                "delta": {"content": piece},
                                "finish_reason": "stop" if last else None,
                            }
                        ],
                    }
                    self._event(writer, json.dumps(chunk))
                    await writer.drain()
                self._event(writer, "[DONE]")
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                self.served += 1
            finally:
                self.slots[slot] = False

    @staticmethod
    def _event(writer: Any, data: str) -> None:
        payload = f"data: {data}\n\n".encode()
        writer.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")


async def serve(args: argparse.Namespace) -> None:
    """Listen until killed."""
    standin = StandIn(
        rate=args.rate,
        answer=args.answer,
        slots=args.slots,
        llama_cpp=args.llama_cpp,
        model=args.model,
    )
    server = await asyncio.start_server(standin.handle, args.host, args.port, backlog=1024)
    print(f"listening on {args.host}:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    """Command line: ``python -m bot.bench.standin --port 8081 --rate 20``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate", type=float, default=20.0, help="tokens per second per answer")
    parser.add_argument("--slots", type=int, default=4, help="answers generated at once")
    parser.add_argument("--answer", default=DEFAULT_ANSWER)
    parser.add_argument("--model", default="standin")
    parser.add_argument("--llama-cpp", action="store_true", help="serve /health and /slots")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
