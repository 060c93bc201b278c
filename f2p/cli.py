"""Command line: LightningCLI for training/fitting systems plus friendly subcommands.

``python -m f2p fit|validate|test|predict ...`` goes to ``F2PCLI`` (LightningCLI, configs name classes by
``class_path``). Friendly commands (``reconstruct``, ``prepare``, ``evaluate``, ``model``) live one per module
in ``f2p.commands``; each module has a docstring (its help), ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import pickle
import sys
from collections.abc import Sequence

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")

# name -> module in f2p.commands; imported lazily so `--help` stays fast.
FRIENDLY_COMMANDS: dict[str, str] = {
    "reconstruct": "f2p.commands.reconstruct",
    "prepare": "f2p.commands.prepare",
    "model": "f2p.commands.model",
    "evaluate": "f2p.commands.evaluate",
}


def _friendly_parser(name: str) -> tuple[argparse.ArgumentParser, object]:
    module = importlib.import_module(FRIENDLY_COMMANDS[name])
    parser = argparse.ArgumentParser(prog=f"python -m f2p {name}", description=module.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(parser)
    return parser, module


def _top_level_help() -> str:
    lines = ["usage: python -m f2p <command> [options]", "", "Face-to-parameter translation.", "", "Commands:"]
    for name, module_name in FRIENDLY_COMMANDS.items():
        doc = (importlib.import_module(module_name).__doc__ or "").strip().splitlines()
        lines.append(f"  {name:<12} {doc[0] if doc else ''}")
    for name in LIGHTNING_SUBCOMMANDS:
        lines.append(f"  {name:<12} LightningCLI: {name} a system from a YAML config (--config configs/*.yaml)")
    lines += ["", "Run `python -m f2p <command> --help` for the options of a command."]
    return "\n".join(lines)


def run_lightning(args: Sequence[str]) -> object:
    """Run LightningCLI on ``args`` (starting with fit/validate/test/predict); return the CLI object."""
    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    from f2p.systems.config_callback import LoggerSaveConfigCallback

    return LightningCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=LoggerSaveConfigCallback,
        save_config_kwargs={"overwrite": True},
        args=list(args),
        auto_configure_optimizers=False,
    )


def _lightning_exit_code(command: str, argv: list[str]) -> int:
    """Run a Lightning subcommand; its exit code is the system's ``exit_code`` where it has one (the fitting
    system: 1 when a photo failed), 0 otherwise. A checkpoint that cannot be loaded is one line and exit 2."""
    try:
        cli = run_lightning(argv)
    except (pickle.UnpicklingError, EOFError) as error:
        checkpoint = next((a.split("=", 1)[1] for a in argv if a.startswith("--ckpt_path=")),
                          next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--ckpt_path"), "checkpoint"))
        detail = " ".join(str(error).split())[:200]
        print(f"f2p {command}: {checkpoint}: not a checkpoint f2p can load ({detail})", file=sys.stderr)
        return 2
    return int(getattr(cli.model, "exit_code", 0))


def main(args: Sequence[str] | None = None) -> int:
    """Entry point; ``args`` defaults to ``sys.argv[1:]``. Returns the process exit code."""
    argv = list(sys.argv[1:] if args is None else args)
    if not argv or argv[0] in ("-h", "--help"):
        print(_top_level_help())
        return 0
    command = argv[0]
    if command in FRIENDLY_COMMANDS:
        parser, module = _friendly_parser(command)
        return int(module.run(parser.parse_args(argv[1:])))
    if command in LIGHTNING_SUBCOMMANDS:
        return _lightning_exit_code(command, argv)
    print(f"f2p: unknown command {command!r}\n\n{_top_level_help()}", file=sys.stderr)
    return 2
