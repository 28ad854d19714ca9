"""``optarena llm models | serve | check``: local models and OpenAI-compatible endpoints."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def add_commands(commands: argparse._SubParsersAction) -> None:
    llm = commands.add_parser("llm", help="local LLM serving and endpoint checks")
    sub = llm.add_subparsers(dest="llm_command", required=True)
    sub.add_parser("models", help="the registered local models and whether they are installed")
    serve = sub.add_parser("serve", help="serve a registered model on 127.0.0.1")
    serve.add_argument("--model", default="qwen2.5-coder-0.5b")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--threads", type=int, default=2)
    serve.add_argument("--ctx", type=int, default=4096, help="context window in tokens")
    serve.add_argument("--log", type=Path, help="file for the server's output")
    check = sub.add_parser("check", help="one completion: latency and tokens")
    check.add_argument("--base-url", default="http://127.0.0.1:8080/v1")
    check.add_argument("--model", default="qwen2.5-coder-0.5b")
    check.add_argument("--api-key-env", help="environment variable with the API key (hosted APIs)")


def run(args: argparse.Namespace, console: Console) -> int:
    """Execute one ``optarena llm`` command."""
    from optarena.llm.client import LLMConfig, LLMUnavailable
    from optarena.llm.models import MODELS, ModelUnavailable, model_file
    from optarena.llm.server import LocalServer, ServerFailed, check_endpoint

    if args.llm_command == "models":
        table = Table(title="registered local models")
        for column in ("name", "size", "status", "description"):
            table.add_column(column, overflow="fold")
        for model in MODELS.values():
            try:
                status = f"ready: {model_file(model.name)}"
            except ModelUnavailable as err:
                status = f"[yellow]{escape(str(err))}[/yellow]"
            table.add_row(model.name, f"{model.size / 1e6:.0f} MB", status, model.description)
        console.print(table)
        return 0
    if args.llm_command == "serve":
        server = LocalServer(args.model, port=args.port, threads=args.threads, context=args.ctx,
                             log=args.log)
        try:
            base_url = server.start()
        except (ModelUnavailable, ServerFailed) as err:
            console.print(f"[red]cannot serve {args.model}[/red]: {escape(str(err))}")
            return 2
        console.print(f"serving {args.model}; put this in a config's llm: section\n"
                      f"  base_url: {base_url}\n  model: {args.model}\n(Ctrl-C stops it)")
        return server.wait()
    config = LLMConfig(base_url=args.base_url, model=args.model, api_key_env=args.api_key_env)
    try:
        result = check_endpoint(config)
    except LLMUnavailable as err:
        console.print(f"[red]unavailable[/red]: {escape(str(err))}")
        return 2
    console.print(f"{args.model} at {args.base_url}: {result.seconds:.2f} s, "
                  f"{result.prompt_tokens} prompt + {result.completion_tokens} completion tokens "
                  f"({result.tokens_per_s:.1f} tokens/s)\nreply: {result.text!r}", markup=False)
    return 0
