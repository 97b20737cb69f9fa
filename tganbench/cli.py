"""Command line: ``tganbench run``, ``export-source``, ``report``, ``compare``, ``list`` and ``check-plugin``."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path

from tganbench.config import PROFILES, RunConfig, default_cache_dir, parse_seeds, parse_shots, resolve_config
from tganbench.config_file import config_file_arguments
from tganbench.errors import UsageError
from tganbench.plugins import Registered, Registry, load_plugins


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _build_parser() -> argparse.ArgumentParser:
    plugin_option = _Parser(add_help=False)
    plugin_option.add_argument(
        "--plugin", action="append", default=[], metavar="MODULE",
        help="load a plugin from a module path or a .py file (repeatable)",
    )
    parser = _Parser(prog="tganbench", description="Compare GAN transfer strategies on identical source/target pairs.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", parents=[plugin_option], help="run strategies and write a results folder")
    run.add_argument("--strategies", default="all", help="'all' or NAME[key=value,...] items, comma-separated")
    _add_source_options(run)
    run.add_argument("--shots", default=None, help="target training images: a count or a list (10,100,1000); default 100")
    run.add_argument("--seeds", default=None, help="a count (3 -> seeds 0,1,2) or a list (0,5,7; one seed: 4,)")
    run.add_argument("--source-seeds", type=int, default=None, metavar="N",
                     help="source checkpoints (default 1); N > 1 pretrains N in the run, with seeds 0 .. N-1; every "
                          "transfer cell runs on each, and intervals cover both sources of variance")
    run.add_argument("--target-steps", type=int, default=None)
    run.add_argument("--eval-every", type=int, default=None)
    run.add_argument("--n-generated", type=int, default=None, help="generated images per evaluation")
    run.add_argument("--n-reference", type=int, default=None,
                     help="held-out test images: every reported value is scored on them (default 1000)")
    run.add_argument("--n-validation", type=int, default=None,
                     help="further held-out images that only choose the best step (default 1000)")
    run.add_argument("--augment", default=None, metavar="NAME[k=v],...",
                     help="augmentations of every D input, each crossed with every adversarial strategy "
                          "(e.g. none,diffaugment[policy=color]); default none. A list of DiffAugment policies "
                          "(color,translation,cutout) means diffaugment with that policy")
    run.add_argument("--executor", default=None, metavar="serial|local:N|submitit[k=v,...]|ray[k=v,...][:ADDRESS]",
                     help="where the cells execute: serial (default: one after another in this process), "
                          "local:N (N worker processes, each with this process's torch threads divided by N) or "
                          "submitit[partition=P,time=MIN,cpus=C,gpus=G,mem=GB,array=K,account=A,cluster=slurm|local] "
                          "(one Slurm job per cell) or ray[cpus=C,gpus=G][:ADDRESS] (one Ray task per cell)")
    run.add_argument("--executor-setup", action="append", default=None, metavar="LINE",
                     help="a shell line every Slurm job runs before its cell (repeatable)")
    run.add_argument("--feature-extractor", default=None, help="shapes (default) or inception")
    run.add_argument("--feature-extractor-weights", default=None, metavar="PATH",
                     help="local weights file for the feature extractor (no download)")
    run.add_argument("--fd-target", type=float, default=None, metavar="FD",
                     help="FD for time-to-quality (default: scratch's final FD of the same seed and shots)")
    run.add_argument("--out", default=None, help="results folder (default: results/<date>-<time>-<pair>)")
    run.add_argument("--force-new", action="store_true", default=None,
                     help="discard results of another protocol in --out instead of refusing")

    parser.run_options = run._actions  # noqa: SLF001 - the `run` flags, for config files
    export = commands.add_parser(
        "export-source", parents=[plugin_option],
        help="write the source checkpoint a run would start from as a tganbench source file",
    )
    export.add_argument("output", metavar="OUT.pt", help="the file to write (docs/checkpoints.md)")
    _add_source_options(export)
    parser.export_options = export._actions  # noqa: SLF001 - the `export-source` flags, for config files

    report = commands.add_parser("report", help="rebuild summary.md, plots and report.html of a results folder")
    report.add_argument("results_dir", metavar="RESULTS_DIR", help="a folder written by tganbench run")

    compare = commands.add_parser("compare", help="regression gate: compare a results folder with a baseline")
    compare.add_argument("baseline", metavar="BASELINE", help="results folder to compare against")
    compare.add_argument("current", metavar="CURRENT", help="results folder of the run under test")
    compare.add_argument(
        "--max-regression", action="append", default=[], metavar="METRIC=LIMIT",
        help="allowed worsening per metric (a recorded metric's name or a cells.csv column): fd=10%%, "
             "fd_best=10%%, kid=0.5 (absolute), train_seconds=50%%, recognised=0.1 (a drop in the share "
             "recognised as the target), time=off (repeatable; defaults: each metric's own threshold, as "
             "fd=10%%, fd_best=10%%, recognised=0.1, and train_seconds=50%%)",
    )
    compare.add_argument("--allow-protocol-change", action="store_true",
                         help="compare even when steps, extractor, N generated/reference ... differ")
    compare.add_argument("--output", metavar="FILE.md", help="also write the Markdown table to this file")

    listing = commands.add_parser(
        "list", parents=[plugin_option], help="show what is registered: strategies, pairs, extractors, ..."
    )
    listing.add_argument("section", nargs="?", choices=list_sections(), metavar="SECTION",
                         help=f"show one section: {', '.join(list_sections())} (default: all)")

    check = commands.add_parser(
        "check-plugin", parents=[plugin_option], help="run one strategy through the plugin contract (smoke profile)"
    )
    check.add_argument("strategy", help="NAME or NAME[key=value,...]")
    check.add_argument("--architecture", action="append", default=None, metavar="NAME",
                       help="check on this registered architecture only (repeatable; default: every one)")
    check.add_argument("--cache-dir", default=None, help="source checkpoint cache (as for run)")
    return parser


def _add_source_options(command: argparse.ArgumentParser) -> None:
    """The flags of ``run`` that decide the source checkpoint, which ``export-source`` shares."""
    command.add_argument("--config", default=None, metavar="FILE.toml",
                         help="settings from a TOML file (keys are the run flags); flags given here override it")
    command.add_argument("--pair", default=None, help="registered source/target pair (default: shapes)")
    command.add_argument("--source", dest="source_dir", default=None, metavar="DIR",
                         help="folder of source images (with --target: an image-folder pair)")
    command.add_argument("--target", dest="target_dir", default=None, metavar="DIR", help="folder of target images")
    command.add_argument("--held-out", type=int, default=None, metavar="N",
                         help="target images held out for evaluation (folders; default: half, at most 2000)")
    command.add_argument("--data-root", default=None, metavar="DIR",
                         help="where torchvision datasets are stored (default: <cache-dir>/data)")
    command.add_argument("--profile", default="quick", help=f"settings preset: {', '.join(PROFILES)} (default: quick)")
    command.add_argument("--source-checkpoint", default=None, metavar="shipped|pretrain|PATH",
                         help="shipped (default): start from the checkpoint shipped for the pair when one fits the "
                              "architecture, else pretrain; pretrain: always pretrain in the run; PATH: start every "
                              "transfer strategy from the weights in that file (a tganbench source file, a "
                              "rosinality/stylegan2-pytorch checkpoint, or a format a plugin adds)")
    command.add_argument("--source-steps", type=int, default=None,
                         help="source pretraining steps (implies --source-checkpoint pretrain)")
    command.add_argument("--source-seed", type=int, default=None, metavar="S",
                         help="seed of the (first) source checkpoint pretrained (default 0)")
    command.add_argument("--batch-size", type=int, default=None)
    command.add_argument("--architecture", default=None, metavar="NAME[k=v]",
                         help="G and D: a registered architecture with parameters (default: dcgan)")
    command.add_argument("--width", type=int, default=None, help="the architecture's width parameter (base channels)")
    command.add_argument("--resolution", type=int, default=None, help="16, 32 (default) or 64")
    command.add_argument("--z-dim", type=int, default=None, metavar="N",
                         help="length of G's latent vectors (default 64)")
    command.add_argument("--lr", type=float, default=None)
    command.add_argument("--d-norm", default=None,
                         help="the architecture's d_norm parameter: spectral (default) or none")
    command.add_argument("--real-symmetries", default=None, metavar="LIST",
                         help="random mirrors / quarter turns of the real images D sees (xflip, rot90): auto (default: "
                              "what the pair declares its images invariant to), none, or a comma-separated list")
    command.add_argument("--r1-gamma", type=float, default=None, metavar="GAMMA",
                         help="weight of the R1 gradient penalty on real images (0: off)")
    command.add_argument("--ema-beta", type=float, default=None, metavar="BETA",
                         help="evaluate a moving average of G's weights with this decay (0: evaluate G itself)")
    command.add_argument("--device", default=None, help="auto (default), cpu or cuda")
    command.add_argument("--precision", default=None, help="fp32 (default) or bf16 (autocast; meant for CUDA)")
    command.add_argument("--compile", action="store_true", default=None, help="torch.compile G and D")
    command.add_argument("--cuda-graph", action="store_true", default=None,
                         help="capture each training step once as a CUDA graph and replay it (CUDA only; "
                              "experimental: this form has not yet run on a GPU)")
    command.add_argument("--memory-format", default=None,
                         help="layout of G's and D's activations: channels-last (default) or contiguous")
    command.add_argument("--cache-dir", default=None,
                         help="source checkpoint cache (default: $TGANBENCH_CACHE or ~/.cache/tganbench)")
    command.add_argument("--quiet", action="store_true", default=None,
                         help="no progress bars: plain progress lines every 30 s")

def _warn(registry: Registry) -> None:
    for warning in registry.warnings:
        print(f"tganbench: warning: {warning}", file=sys.stderr)


@dataclass(frozen=True)
class RunSettings:
    """Everything ``tganbench run`` was asked to do, resolved from the flags (and a config file)."""

    config: RunConfig
    out: str | None
    cache_dir: str | None
    quiet: bool
    force_new: bool


def run_settings(args: argparse.Namespace) -> RunSettings:
    """Resolve and validate the parsed ``run`` (or ``export-source``) arguments (no data is loaded)."""
    # Every flag named like a RunConfig field is a setting; None means "not given".
    settings = {f.name: getattr(args, f.name) for f in fields(RunConfig) if f.name in vars(args)}
    seeds, shots, setup = (getattr(args, name, None) for name in ("seeds", "shots", "executor_setup"))
    settings["seeds"] = parse_seeds(seeds) if seeds is not None else None
    settings["shots"] = parse_shots(shots) if shots is not None else None
    settings["plugins"] = tuple(args.plugin)
    settings["executor_setup"] = tuple(setup) if setup else None
    return RunSettings(resolve_config(**settings), getattr(args, "out", None), args.cache_dir, bool(args.quiet),
                       bool(getattr(args, "force_new", False)))


def _command_run(args: argparse.Namespace) -> int:
    from tganbench.reporting.tables import compact_caption, compact_table, compact_warnings, summary_table
    from tganbench.runner import run
    from tganbench.store import read_results

    settings = run_settings(args)
    config = settings.config
    registry = load_plugins(list(config.plugins))
    _warn(registry)
    out_dir = Path(settings.out) if settings.out else Path("results") / f"{datetime.now():%Y%m%d-%H%M%S}-{config.pair}"
    cache_dir = Path(settings.cache_dir) if settings.cache_dir else default_cache_dir()
    cells, _ = run(config, registry, out_dir, cache_dir, quiet=settings.quiet, force_new=settings.force_new)
    results = read_results(out_dir)
    print(compact_caption(results.cells, results.metrics, references=results.references))
    print(compact_table(summary_table(results.cells, results.evals, config.fd_target, results.metrics,
                                      results.references)))
    warnings = compact_warnings(results.cells, results.metrics)
    if warnings:
        print(warnings)
    print(f"\nresults: {out_dir}", file=sys.stderr)
    return 1 if (cells["status"] == "failed").any() else 0


def _command_export_source(args: argparse.Namespace) -> int:
    from tganbench.checkpoints import shown
    from tganbench.runner import export_source

    settings = run_settings(args)
    config = settings.config
    output = Path(args.output)
    if output.is_dir():
        raise UsageError(f"{output} is a folder; export-source writes one file (give its name, e.g. source.pt)")
    registry = load_plugins(list(config.plugins))
    _warn(registry)
    cache_dir = Path(settings.cache_dir) if settings.cache_dir else default_cache_dir()
    plan, checkpoint, checksum = export_source(config, registry, output, cache_dir,
                                               log=lambda message: print(message, file=sys.stderr),
                                               quiet=settings.quiet)
    if checkpoint.file is not None:
        origin = f"the {checkpoint.file.format} checkpoint {shown(checkpoint.file.path)}"
    elif checkpoint.shipped is not None:
        origin = f"the checkpoint shipped for {plan.data.name} ({checkpoint.shipped.file})"
    else:
        origin = f"{plan.config.source_steps} source steps on {plan.data.name}, seed {plan.config.source_seed}"
    model = plan.model
    print(f"export-source: wrote {output} (tganbench source file: {model.architecture.label} at {model.resolution} px, "
          f"z_dim {model.z_dim}, from {origin}, checksum {checksum})")
    return 0


# `tganbench list SECTION`: the Registry field (with - for _), the table's headers and which columns wrap to fit.
LIST_SECTIONS = {
    "strategies": (["strategy", "defaults", "description", "plugin"], {"defaults", "description"}),
    "pairs": (["pair", "source / shot pool / held out", "from", "description", "plugin"], {"from", "description"}),
    "extractors": (["feature extractor", "metric", "description", "plugin"], {"description"}),
    "architectures": (["architecture", "parameters", "description", "plugin"], {"parameters", "description"}),
    "metrics": (["metric", "better", "evaluated", "description", "plugin"], {"description"}),
    "augmentations": (["augmentation", "parameters", "description", "plugin"], {"parameters", "description"}),
    "checkpoint-formats": (["checkpoint format", "description", "plugin"], {"description"}),
}


def list_sections() -> list[str]:
    """The sections ``tganbench list`` can show: those this version's registry holds."""
    registry_fields = {field.name for field in fields(Registry)}
    return [name for name in LIST_SECTIONS if name.replace("-", "_") in registry_fields]


def _list_row(section: str, name: str, entry: Registered) -> list[str]:
    """One row of a ``list`` section: the name, what the section shows of the object, its plugin."""
    obj = entry.obj
    if section == "pairs":
        sizes = " / ".join(f"{n:,}" for n in obj.sizes) if obj.sizes else "?"
        shown = [sizes, obj.origin]
    elif section == "extractors":
        shown = [obj.metric]
    elif section == "metrics":
        shown = [obj.direction, "every evaluation" if obj.every_evaluation else "final"]
    elif section == "checkpoint-formats":
        shown = []
    else:
        shown = [", ".join(f"{k}={v}" for k, v in getattr(obj, "parameters", {}).items())]
    return [name, *shown, getattr(obj, "description", ""), entry.plugin]


def _command_list(args: argparse.Namespace) -> int:
    from tganbench.reporting.tables import fit_to_width

    registry = load_plugins(args.plugin)
    _warn(registry)
    tables = []
    for section in [args.section] if args.section else list_sections():
        headers, wrap = LIST_SECTIONS[section]
        registered = getattr(registry, section.replace("-", "_"), {})
        rows = [_list_row(section, name, entry) for name, entry in registered.items()]
        tables.append(fit_to_width(rows, headers, wrap, numbers=False))
    print("\n\n".join(tables))
    return 0


def _command_check_plugin(args: argparse.Namespace) -> int:
    from tganbench.check import check_strategy

    registry = load_plugins(args.plugin)
    _warn(registry)
    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    checks = check_strategy(args.strategy, registry, cache_dir, args.architecture)
    for check in checks:
        print(check.line())
    failed = sum(not check.passed for check in checks)
    skipped = sum(check.skipped for check in checks)
    counted = len(checks) - skipped
    print(f"check-plugin {args.strategy}: {counted - failed} of {counted} checks passed"
          + (f", {skipped} architecture{'s' if skipped > 1 else ''} refused" if skipped else ""))
    return 0 if failed == 0 else 1


def _command_report(args: argparse.Namespace) -> int:
    from tganbench.reporting.build import build_report

    for path in build_report(Path(args.results_dir)):
        print(path)
    return 0


def _command_compare(args: argparse.Namespace) -> int:
    from tganbench.reporting.compare import compare

    comparison = compare(Path(args.baseline), Path(args.current), args.max_regression, args.allow_protocol_change)
    text = comparison.markdown()
    print(text)
    if args.output:
        try:
            Path(args.output).write_text(text)
        except OSError as error:
            raise UsageError(f"cannot write {args.output}: {error.strerror or error}") from None
    print(f"compare: {comparison.regressions} regression(s)", file=sys.stderr)
    return 1 if comparison.regressions else 0


COMMANDS = {
    "run": _command_run,
    "export-source": _command_export_source,
    "report": _command_report,
    "compare": _command_compare,
    "list": _command_list,
    "check-plugin": _command_check_plugin,
}


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; for ``run --config FILE`` the file's settings come first, so typed flags override them.

    ``export-source --config FILE`` reads the same files: it takes the keys of
    the flags it has and leaves the others (strategies, shots, ...), which do
    not decide the source checkpoint.
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command in ("run", "export-source") and args.config:
        options = parser.run_options if args.command == "run" else parser.export_options
        flags = {flag for action in parser.run_options for flag in action.option_strings if flag.startswith("--")}
        keep = {flag for action in options for flag in action.option_strings if flag.startswith("--")}
        args = parser.parse_args([args.command, *config_file_arguments(args.config, flags, keep), *argv[1:]])
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tganbench`` console script; returns the exit code."""
    try:
        args = parse_arguments(sys.argv[1:] if argv is None else argv)
        return COMMANDS[args.command](args)
    except UsageError as error:
        print("tganbench: error: " + " ".join(str(error).split()), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tganbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`tganbench list | head`): silence the final flush and stop.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
