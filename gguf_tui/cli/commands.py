"""The command line's argument table: every subcommand and its options.

Kept apart from the commands' code so that parsing `gguf-tui ls` or `--version` does not import
the download engine or the Hub client (aiohttp alone costs about 0.15 s of start-up). Each parser
names its implementation as "module:function"; `gguf_tui.cli.main` imports it only when it runs.
"""

from __future__ import annotations

import argparse

# How a command uses the store (checked once in `gguf_tui.cli.main`): READS needs it to exist;
# the default, writes, may create it; NO_STORE does not touch it.
READS = "read"
NO_STORE = "none"


def register_all(subparsers: argparse._SubParsersAction) -> None:
    """Every subcommand, in help order."""
    _pull_commands(subparsers)
    _store_commands(subparsers)
    _other_store_commands(subparsers)
    _hub_commands(subparsers)
    _engine_commands(subparsers)


def _pull_commands(subparsers: argparse._SubParsersAction) -> None:
    pull = subparsers.add_parser(
        "pull",
        help="download models into the store without the UI",
        description="Download into the store. REF: an http(s) URL, owner/repo:QUANT, "
        "owner/repo/path/file.gguf (hf.co/ and https://huggingface.co/ prefixes accepted).",
    )
    pull.add_argument("refs", nargs="+", metavar="REF")
    pull.add_argument("--sha256", metavar="HEX", help="expected SHA-256 (one REF only)")
    pull.add_argument("--name", help="model name in the store (one REF only)")
    pull.add_argument("--no-mmproj", action="store_true", help="skip the vision projector")
    pull.add_argument("--connections", type=int, metavar="N",
                      help="connections per file, for this pull's downloads")  # fmt: skip
    pull.add_argument("--max-rate", metavar="RATE",
                      help="rate limit of each of this pull's downloads, e.g. 50M "
                      "(downloads.max_rate still caps them all)")  # fmt: skip
    pull.add_argument("--json", action="store_true", help="one JSON event per line on stdout")
    pull.add_argument(
        "--detach", action="store_true",
        help="return once queued in the engine service; print the job ids",
    )  # fmt: skip
    pull.set_defaults(func="gguf_tui.cli.pull:run_pull")

    status = subparsers.add_parser(
        "status", help="downloads in the engine service, and partial downloads on disk"
    )
    status.add_argument("--json", action="store_true")
    status.set_defaults(func="gguf_tui.cli.jobs_cmds:run_status", store_use=READS)

    for action, text in (
        ("pause", "pause downloads (resume state saved)"),
        ("resume", "resume paused downloads"),
        ("cancel", "cancel downloads and delete their partial files"),
    ):
        job = subparsers.add_parser(action, help=text, description=f"{text[0].upper()}{text[1:]}. "
                                    "JOB: a download's id (see 'gguf-tui status') or its name.")
        job.add_argument("jobs", nargs="*", metavar="JOB", help="job ids or model names")
        job.add_argument("--all", action="store_true", help=f"every download there is to {action}")
        job.add_argument("--json", action="store_true", help="print JSON")
        job.set_defaults(func="gguf_tui.cli.jobs_cmds:run_job_action", job_action=action)


def _store_commands(subparsers: argparse._SubParsersAction) -> None:
    ls = subparsers.add_parser("ls", help="list the store's models, their size and state")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--all", action="store_true",
                    help="also the models of other tools (HF cache, llama.cpp, LM Studio, Ollama)")
    ls.set_defaults(func="gguf_tui.cli.store_cmds:run_ls", store_use=READS)

    info = subparsers.add_parser("info", help="one model: manifest and GGUF header facts")
    info.add_argument("model", metavar="MODEL", help="a name, a path, or a unique prefix")
    info.add_argument("--json", action="store_true")
    _fit_options(info)
    info.set_defaults(func="gguf_tui.cli.store_cmds:run_info", store_use=READS)

    verify = subparsers.add_parser("verify", help="re-hash files against their recorded SHA-256")
    verify.add_argument("models", nargs="*", metavar="MODEL", help="default: every managed model")
    verify.add_argument("--json", action="store_true")
    verify.add_argument(
        "--repair", action="store_true",
        help="download the files that fail again, from the source the manifest recorded",
    )
    verify.set_defaults(func="gguf_tui.cli.store_cmds:run_verify", store_use=READS)

    rm = subparsers.add_parser("rm", help="delete models with all their files (parts, mmproj)")
    rm.add_argument("models", nargs="+", metavar="MODEL")
    rm.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    rm.add_argument("--json", action="store_true")
    rm.add_argument("--from", dest="from_tool", choices=("hf", "lmstudio", "ollama", "llama.cpp"),
                    help="delete from another tool's store, the way that tool would")
    rm.set_defaults(func="gguf_tui.cli.delete_cmds:run_rm", store_use=READS)

    prune = subparsers.add_parser("prune", help="free space by policy")
    prune.add_argument(
        "--max-size", metavar="SIZE", help="delete least recently used until the models fit (200G)"
    )
    prune.add_argument(
        "--unused-for", metavar="DURATION", help="delete models not used for this long (30d)"
    )
    prune.add_argument("--partials", action="store_true", help="delete abandoned partial downloads")
    prune.add_argument("--dry-run", action="store_true", help="only list what would go")
    prune.add_argument("--all", action="store_true",
                       help="also the other tools' models not used for --unused-for")
    prune.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    prune.add_argument("--json", action="store_true")
    prune.set_defaults(func="gguf_tui.cli.delete_cmds:run_prune", store_use=READS)

    imp = subparsers.add_parser("import", help="adopt GGUF files already on disk")
    imp.add_argument("paths", nargs="*", metavar="PATH",
                     help="GGUF files or folders holding them (with --from: one MODEL, optional)")
    imp.add_argument("--from", dest="from_tool", choices=("hf", "lmstudio", "ollama", "llama.cpp"),
                     help="adopt models from another tool's store (hard link unless --copy)")
    how = imp.add_mutually_exclusive_group()
    for mode, text in (
        ("link", "hard-link, else stop and say why (default: link if possible, else copy)"),
        ("move", "move the files into the store"),
        ("copy", "copy the files, leaving the originals"),
    ):
        how.add_argument(f"--{mode}", dest="mode", action="store_const", const=mode, help=text)
    imp.add_argument("--name", help="import every PATH as one model with this name")
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(func="gguf_tui.cli.store_cmds:run_import", mode="auto")

    path = subparsers.add_parser("path", help="print a model's file path (for scripts)")
    path.add_argument("model", metavar="MODEL")
    which = path.add_mutually_exclusive_group()
    which.add_argument("--mmproj", action="store_true", help="the vision projector's path")
    which.add_argument("--all", action="store_true", help="every file, one per line")
    path.set_defaults(func="gguf_tui.cli.store_cmds:run_path", store_use=READS)


def _other_store_commands(subparsers: argparse._SubParsersAction) -> None:
    dedupe = subparsers.add_parser(
        "dedupe", help="replace duplicate model files across stores with hard links",
        description="Find files with the same bytes in our store and the other tools' stores "
        "and replace extra copies on one filesystem with hard links (hashes checked first).",
    )
    dedupe.add_argument("--dry-run", action="store_true", help="only show what would be linked")
    dedupe.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    dedupe.add_argument("--json", action="store_true")
    dedupe.set_defaults(func="gguf_tui.cli.others_cmds:run_dedupe")

    link = subparsers.add_parser(
        "link", help="expose a model to LM Studio or the HF cache (hard link), or Ollama",
        description="lmstudio / hf-cache: hard links in that tool's layout, no bytes copied; "
        "ollama: write a Modelfile and print the 'ollama create' command.",
    )
    link.add_argument("model", metavar="MODEL")
    link.add_argument("--to", required=True, choices=("lmstudio", "hf-cache", "ollama"))
    link.add_argument("--json", action="store_true")
    link.set_defaults(func="gguf_tui.cli.others_cmds:run_link", store_use=READS)


def _hub_commands(subparsers: argparse._SubParsersAction) -> None:
    search = subparsers.add_parser(
        "search",
        help="search the Hub for GGUF repos",
        description="Search the Hugging Face Hub for GGUF repos, most downloaded first.",
    )
    search.add_argument("query", metavar="QUERY")
    search.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                        help="at most N results (default: hub.search_limit)")  # fmt: skip
    search.add_argument("--json", action="store_true", help="print JSON")
    search.set_defaults(func="gguf_tui.cli.hub_cmds:run_search", store_use=NO_STORE)

    files = subparsers.add_parser(
        "files",
        help="list a Hub repo's GGUF files by quantisation",
        description="List a repo's GGUF files grouped by quant, with sizes, split parts and "
        "whether an mmproj exists. REPO: owner/repo, optionally @REVISION or an hf.co prefix.",
    )
    files.add_argument("repo", metavar="REPO")
    files.add_argument("--revision", default=None, metavar="REV", help="branch, tag or commit")
    files.add_argument("--json", action="store_true", help="print JSON")
    _fit_options(files)
    files.set_defaults(func="gguf_tui.cli.hub_cmds:run_files", store_use=NO_STORE)

    gpus = subparsers.add_parser(
        "gpus",
        help="the GPUs and RAM that models are judged against",
        description="What this box has: NVIDIA GPUs (NVML, else nvidia-smi), AMD GPUs (sysfs), "
        "RAM (/proc/meminfo), or the devices stated in GGUF_TUI_GPUS / fit.gpus (e.g. 24G,24G).",
    )
    gpus.add_argument("--json", action="store_true", help="print JSON")
    gpus.set_defaults(func="gguf_tui.cli.fit_cmds:run_gpus", store_use=NO_STORE)


def _fit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fit", action="store_true",
        help="estimate memory (weights, KV cache, overhead) and whether it fits this box's GPUs",
    )  # fmt: skip
    parser.add_argument("--ctx", type=_positive_int, default=None, metavar="N",
                        help="context length for --fit, implies it (default: fit.context, else 8192)")  # fmt: skip


def _engine_commands(subparsers: argparse._SubParsersAction) -> None:
    engine = subparsers.add_parser(
        "engine",
        help="the background download engine (one per user and store)",
        description="The engine service: downloads go on after the terminal closes.",
    )
    engine.set_defaults(func="gguf_tui.cli.engine_cmds:run_engine_action")
    actions = engine.add_subparsers(dest="engine_command", metavar="ACTION", required=True)
    run = actions.add_parser("run", help="run the service in the foreground (for systemd)")
    run.add_argument("--detached", action="store_true", help=argparse.SUPPRESS)
    run.set_defaults(engine_func="run")
    start = actions.add_parser("start", help="start the service in the background")
    start.set_defaults(engine_func="start")
    stop = actions.add_parser("stop", help="pause and save every download, then stop the service")
    stop.set_defaults(engine_func="stop")
    status = actions.add_parser("status", help="is the service running, and what is it doing")
    status.add_argument("--json", action="store_true")
    status.set_defaults(engine_func="status")
    unit = actions.add_parser("unit", help="print a systemd user unit for the service")
    unit.set_defaults(engine_func="unit")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
