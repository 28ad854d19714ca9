"""``optarena peephole ...``: build the corpus, score predicted blocks."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from rich.console import Console

from optarena.experiments.config_file import ConfigError


def add_commands(commands: argparse._SubParsersAction) -> None:
    peephole = commands.add_parser("peephole", help="AArch64 peephole corpus and metrics")
    sub = peephole.add_subparsers(dest="peephole_command", required=True)
    build = sub.add_parser("build-corpus", help="compile C (or take .s) into block pairs")
    build.add_argument("sources", nargs="*", type=Path, help="C/.s files or directories")
    build.add_argument("--out", type=Path, required=True, help="directory for corpus.jsonl")
    build.add_argument("--opt", default="O0,O1,O2", help="optimization levels, comma-separated")
    build.add_argument("--csmith", type=int, default=0, help="also generate N csmith programs")
    build.add_argument("--csmith-seed", type=int, default=1)
    build.add_argument("--unchanged-share", type=float, default=0.25,
                       help="share of unchanged blocks kept")
    build.add_argument("--clang", default="clang-14")
    score = sub.add_parser("score", help="BLEU, exact match, syntactic and IO accuracy")
    score.add_argument("predictions", type=Path, help='JSONL lines {"id": ..., "asm": ...}')
    score.add_argument("--corpus", type=Path, help="corpus.jsonl (default: the shipped corpus)")
    score.add_argument("--mcpu", default="neoverse-n1")
    score.add_argument("--json", type=Path, help="write the scores as JSON")
    score.add_argument("--markdown", type=Path, help="write the scores as a Markdown table")


def run(args: argparse.Namespace, console: Console) -> int:
    from optarena.envs.aarch64_peephole import corpus, metrics

    named = [*args.sources] if args.peephole_command == "build-corpus" else \
        [path for path in (args.predictions, args.corpus) if path is not None]
    missing = [str(path) for path in named if not path.exists()]
    if missing:
        raise ConfigError(f"no such file or directory: {', '.join(missing)}")
    if args.peephole_command == "build-corpus":
        sources = list(args.sources)
        if not sources and not args.csmith:
            raise ConfigError("name C/.s sources or pass --csmith N")
        if args.csmith:
            sources += corpus.generate_csmith(args.csmith, args.csmith_seed, args.out / "csmith")
        opts = tuple(f"-{level.strip().lstrip('-')}" for level in args.opt.split(","))
        pairs = corpus.build_corpus(sources, args.out / "corpus.jsonl", opts=opts,
                                    unchanged_share=args.unchanged_share, clang=args.clang)
        changed = Counter(p.flags for p in pairs if p.oracle is not None and p.input != p.oracle)
        console.print(f"{len(pairs)} blocks ({sum(changed.values())} changed by LLVM's pairing: "
                      f"{dict(changed)}) -> {args.out / 'corpus.jsonl'}")
        return 0
    entries = corpus.load_corpus(args.corpus) if args.corpus else corpus.load_corpus()
    scores = metrics.score(metrics.read_predictions(str(args.predictions)), entries,
                           mcpu=args.mcpu)
    console.print(scores.to_markdown(str(args.predictions)))
    if args.json:
        args.json.write_text(scores.to_json())
    if args.markdown:
        args.markdown.write_text(scores.to_markdown(str(args.predictions)))
    return 0
