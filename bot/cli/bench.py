"""``librarian bench retrieval|ingest|grounding``: how well and how fast, on this machine.

Each command runs on a scratch database beside the configured one (dropped at the
end) with the configured models, prints a table (or JSON with --json), and has a
--quick variant small enough for CI.
"""

from __future__ import annotations

from pathlib import Path

import typer

from bot.bench import sizes

app = typer.Typer(no_args_is_help=True)

_EVAL_HELP = "Folder holding squad-v1.1-dev/ and squad-v2.0-dev/ (default: ../shared/eval)."


def _emit(title: str, results: dict, json_out: bool, goals: dict[str, str]) -> None:
    from bot.bench.report import format_table, to_json

    typer.echo(to_json(results) if json_out else format_table(title, results, goals))


def _log(json_out: bool):
    from bot.bench.common import quiet_log, stderr_log

    return quiet_log if json_out else stderr_log


@app.command("retrieval")
def retrieval(
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    quick: bool = typer.Option(False, "--quick", help="A small run for CI (about a minute)."),
    eval_dir: Path | None = typer.Option(None, "--eval-dir", help=_EVAL_HELP),
    scale: int | None = typer.Option(
        None, "--scale", help="Filler chunks for the latency part (default 200,000)."
    ),
    workspaces: int | None = typer.Option(
        None, "--workspaces", help="Workspaces they fill (default 50; one per 2,000 above 200k)."
    ),
    seed: int | None = typer.Option(
        None,
        "--seed",
        help="Draw the filler and the questions from another seed (for calibration; "
        "reported figures use the default).",
    ),
) -> None:
    """Recall@1/5/10 on SQuAD v1.1 (dense, keyword, hybrid), and latency and recall
    against an exact scan at 200k chunks in 50 workspaces (or --scale/--workspaces),
    with index build time and the disk the chunks and indexes take."""
    from bot.bench import retrieval as bench
    from bot.config import load_settings

    try:
        results = bench.run_bench(
            load_settings(),
            eval_dir=eval_dir,
            quick=quick,
            log=_log(json_out),
            scale=scale,
            workspaces=workspaces,
            seed=bench.SEED if seed is None else seed,
        )
    except ValueError as exc:
        typer.echo(f"librarian bench retrieval: {exc}", err=True)
        raise typer.Exit(2) from None
    goals = {
        "squad.hybrid.recall@5": ">= 0.95",
        "scale.latency_ms.p95": "<= 25",
        "scale.recall_vs_exact_min": ">= 0.98",
        "scale.fewest_rows": ">= 10 (k)",
    }
    _emit("Retrieval benchmark", results, json_out, goals)


@app.command("ingest")
def ingest(
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    quick: bool = typer.Option(False, "--quick", help="A small run for CI."),
    eval_dir: Path | None = typer.Option(None, "--eval-dir", help=_EVAL_HELP),
) -> None:
    """End-to-end pages/s on multi-page PDFs next to the embedder alone; pages/s per format."""
    from bot.bench import ingest as bench
    from bot.config import load_settings

    results = bench.run_bench(load_settings(), eval_dir=eval_dir, quick=quick, log=_log(json_out))
    if json_out:
        _emit("Ingest benchmark", results, json_out, {})
        return
    summary = {k: v for k, v in results.items() if k not in ("formats", "corpus")}
    _emit("Ingest benchmark", summary, json_out, {"ratio": ">= 0.9"})
    typer.echo("\n" + bench.formats_table(results))


@app.command("grounding")
def grounding(
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    quick: bool = typer.Option(
        False,
        "--quick",
        help=f"{sizes.QUICK_PER_KIND} + {sizes.QUICK_PER_KIND} SQuAD questions and "
        f"{sizes.QUICK_REALDOCS} on one real PDF, for CI.",
    ),
    eval_dir: Path | None = typer.Option(None, "--eval-dir", help=_EVAL_HELP),
    sample: int | None = typer.Option(
        None,
        "--sample",
        help=f"SQuAD questions of each kind (default {sizes.SQUAD_PER_KIND}; "
        f"{sizes.QUICK_PER_KIND} with --quick).",
    ),
    split: str = typer.Option(
        "report", "--split", help="Real-document split: report, calibrate or all."
    ),
    only: str | None = typer.Option(
        None,
        "--set",
        help=f"Only one set: {', '.join(sizes.GROUNDING_SETS)} (by default "
        f"{' and '.join(sizes.GROUNDING_DEFAULT_SETS)}).",
    ),
    dump: Path | None = typer.Option(
        None, "--dump", help="Write every question's reply and verdicts to this JSON file."
    ),
    conversation: bool = typer.Option(
        False,
        "--conversation",
        help="Ask each kind's questions in one remembered thread, as a team asks in a "
        "channel (the model reads the earlier exchanges).",
    ),
) -> None:
    """Grounded answers on SQuAD v2.0 and on real PDFs: facts, evidence, pages, not found."""
    from bot.bench import grounding as bench
    from bot.config import load_settings

    if only is not None and only not in sizes.GROUNDING_SETS:
        choices = ", ".join(sizes.GROUNDING_SETS)
        raise typer.BadParameter(f"no set {only!r}: choose one of {choices}")
    sets = (only,) if only else sizes.GROUNDING_DEFAULT_SETS
    results = bench.run_bench(
        load_settings(),
        eval_dir=eval_dir,
        quick=quick,
        sample=sample,
        split=split,
        sets=sets,
        log=_log(json_out),
        dump=dump,
        conversation=conversation,
    )
    _emit("Grounding benchmark (reported, no targets)", results, json_out, {})


@app.command("load")
def load(
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    quick: bool = typer.Option(
        False,
        "--quick",
        help=f"{sizes.QUICK_LOAD_MENTIONS} mentions over {sizes.QUICK_LOAD_CHANNELS} channels, "
        f"{' and '.join(map(str, sizes.QUICK_LOAD_SERVERS))} servers.",
    ),
    mentions: int = typer.Option(sizes.LOAD_MENTIONS, help="Questions asked at once."),
    channels: int = typer.Option(sizes.LOAD_CHANNELS, help="Channels they are spread over."),
    rate: float = typer.Option(
        sizes.LOAD_RATE, help="Tokens per second each stand-in answer streams."
    ),
) -> None:
    """Load simulation without a model: stand-in chat servers streaming at a fixed rate, as
    a pool of 1, 2 and 4; throughput, its ratio, fairness, loop lag, bot CPU per answer."""
    from bot.bench import load as bench
    from bot.bench.common import run_on_scratch
    from bot.config import load_settings

    options: dict = {"mentions": mentions, "channels": channels, "rate": rate}
    if quick:
        options.update(
            mentions=sizes.QUICK_LOAD_MENTIONS,
            channels=sizes.QUICK_LOAD_CHANNELS,
            servers=sizes.QUICK_LOAD_SERVERS,
        )
    results = run_on_scratch(load_settings(), bench.run_bench, log=_log(json_out), **options)
    goals = {
        "servers_2.throughput_ratio": ">= 1.8",
        "servers_4.throughput_ratio": ">= 3.2",
        "servers_4.loop_lag_max_ms": "< 3000 (Slack's ack limit)",
    }
    _emit("Load simulation (stand-in chat servers)", results, json_out, goals)
