"""Command line: LightningCLI for training/fitting systems plus friendly subcommands.

``python -m f2p fit|validate|test|predict ...`` goes to LightningCLI with f2p's hooks (``F2PHooks``; configs
name classes by ``class_path``). Friendly commands (``reconstruct``, ``prepare``, ``evaluate``, ``model``) live
one per module in ``f2p.commands``; each module has a docstring (its help), ``add_arguments(parser)`` and
``run(args) -> int``."""

from __future__ import annotations

import argparse
import importlib
import logging
import pickle
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from f2p.errors import ModelFileError, PathError

PROG = "python -m f2p"
LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")
CHECKPOINT_SUBCOMMANDS = ("validate", "test", "predict")
"""Subcommands that evaluate or apply trained weights: a regressor needs ``--ckpt_path`` for them."""
REGRESSOR_CLASS = "f2p.systems.regressor.RegressorSystem"
FOLLOW_THE_MODEL = ("image_size", "face_model")
"""Data arguments that follow the model's when the model comes from a checkpoint."""
QUIET_WARNINGS = (r"`isinstance\(treespec, LeafSpec\)` is deprecated",)
"""Lightning-internal warnings printed on every run that a user can do nothing about."""

# name -> module in f2p.commands; imported lazily so `--help` stays fast.
FRIENDLY_COMMANDS: dict[str, str] = {
    "reconstruct": "f2p.commands.reconstruct",
    "prepare": "f2p.commands.prepare",
    "model": "f2p.commands.model",
    "evaluate": "f2p.commands.evaluate",
}


class CommandLineError(ValueError):
    """A Lightning subcommand that cannot run as given; ``str(error)`` is one line saying what to add."""


def _friendly_parser(name: str) -> tuple[argparse.ArgumentParser, object]:
    module = importlib.import_module(FRIENDLY_COMMANDS[name])
    parser = argparse.ArgumentParser(prog=f"{PROG} {name}", description=module.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(parser)
    return parser, module


def _top_level_help() -> str:
    lines = [f"usage: {PROG} <command> [options]", "", "Face-to-parameter translation.", "", "Commands:"]
    for name, module_name in FRIENDLY_COMMANDS.items():
        doc = (importlib.import_module(module_name).__doc__ or "").strip().splitlines()
        lines.append(f"  {name:<12} {doc[0] if doc else ''}")
    for name in LIGHTNING_SUBCOMMANDS:
        lines.append(f"  {name:<12} LightningCLI: {name} a system from a YAML config (--config configs/*.yaml)")
    lines += ["", "Run `python -m f2p <command> --help` for the options of a command."]
    return "\n".join(lines)


class F2PHooks:
    """f2p's hooks of ``LightningCLI`` (mixed into it by ``run_lightning``, which imports Lightning lazily).

    - ``validate``/``test``/``predict`` of a ``RegressorSystem`` need ``--ckpt_path``: without it they would
      evaluate untrained weights.
    - With ``--ckpt_path``, the model is rebuilt from the checkpoint's hyper-parameters (for a regressor only
      from plain values and f2p's own classes, ``regressor_checkpoint_config``); the data module's
      ``image_size`` and ``face_model`` follow the model's (a regressor trained at 64 px predicts photos
      cropped at 64 px, whatever the config says).
    - W&B runs without the two warnings of every offline run (see ``_quiet_wandb``).
    - ``python -m f2p fit --help`` names the program so.
    - ``fit`` ends with one line naming the checkpoints it wrote (global rank 0).
    - A fresh machine online fetches the configured open face model and MediaPipe's files before the trainer
      starts (``first_run.fetch_for_arguments``, as ``reconstruct``); offline, one line says what to copy where.
    """

    def setup_parser(self, add_subcommands: bool, main_kwargs: dict, subparser_kwargs: dict) -> None:
        super().setup_parser(add_subcommands, main_kwargs, subparser_kwargs)
        for name, parser in getattr(self, "_subcommand_parsers", {}).items():
            parser.prog = f"{PROG} {name}"  # jsonargparse's own: "python -m f2p [options] fit"

    def parse_arguments(self, parser: object, args: Sequence[str]) -> None:
        # LightningCLI's, without its warning that ``args`` was given while ``sys.argv`` is set: f2p always passes
        # ``args`` (``main``'s, or ``sys.argv[1:]``)
        self.config = parser.parse_args(list(args))
        command = self.config["subcommand"]
        config = self.config[command]
        ckpt_path = config.get("ckpt_path")
        if ckpt_path is not None and not Path(ckpt_path).is_file():
            raise ModelFileError(ckpt_path, "no such checkpoint")
        if command in CHECKPOINT_SUBCOMMANDS and ckpt_path is None and _is_regressor(config):
            raise CommandLineError(f"{command} needs the trained weights: add --ckpt_path CHECKPOINT (fit prints "
                                   "where it wrote last.ckpt)")
        if command != "fit":  # checkpoint callbacks restored from another run's folder: nothing to resume here
            warnings.filterwarnings("ignore", message="The dirpath has changed from")

    def _parse_ckpt_path(self) -> None:
        """LightningCLI's (2.6) rebuilds the model config from the checkpoint's hyper-parameters, importing any
        class they name; a regressor's is rebuilt from ``regressor_checkpoint_config`` instead."""
        command = self.config.get("subcommand")
        config = self.config[command] if command else None
        if config is None or config.get("ckpt_path") is None or not _is_regressor(config):
            super()._parse_ckpt_path()
            return
        init_args = regressor_checkpoint_config(Path(config["ckpt_path"]))
        self.config = self.parser.parse_object(
            {command: {"model": {"class_path": REGRESSOR_CLASS, "init_args": init_args}}}, self.config)

    def before_instantiate_classes(self) -> None:
        from f2p.commands.first_run import fetch_for_arguments

        config = self.config[self.config["subcommand"]]
        model, data = config.get("model"), config.get("data")
        if config.get("ckpt_path") is not None and _is_regressor(config) and data and data.get("init_args"):
            for name in FOLLOW_THE_MODEL:
                if name in data.init_args and name in model.init_args:
                    data.init_args[name] = model.init_args[name]
        fetch_for_arguments(part.init_args.as_dict() for part in (model, data) if part and part.get("init_args"))

    def after_instantiate_classes(self) -> None:
        _quiet_wandb(self.trainer.loggers)

    def after_fit(self) -> None:
        line = checkpoint_line(self.trainer)
        if line and self.trainer.is_global_zero:
            print(line, flush=True)


def _is_regressor(config: object) -> bool:
    model = config.get("model")
    return model is not None and model.get("class_path") == REGRESSOR_CLASS


def regressor_checkpoint_config(path: Path) -> dict:
    """The model arguments a regressor checkpoint decides, limited to what cannot steer imports or file reads (the
    rules of ``f2p.systems.checkpoints``): the system's scalar arguments (a face model only by registry name), its
    loss weights, and networks of ``ALLOWED_NETWORKS`` with plain arguments, file arguments left out.

    Raises:
        ModelFileError: not a regressor checkpoint, or one naming a class outside the allow-list (one line).
    """
    from f2p.morphable.registry import MODEL_NAMES
    from f2p.systems.checkpoints import allowed_arguments
    from f2p.torch_files import read_checkpoint

    hparams = read_checkpoint(path, "a checkpoint", ("hyper_parameters",))["hyper_parameters"]
    if hparams.get("_class_path", REGRESSOR_CLASS) != REGRESSOR_CLASS:
        raise ModelFileError(path, f"a checkpoint of {hparams['_class_path']!r}, not of {REGRESSOR_CLASS}")
    kept = allowed_arguments(path, hparams)
    if kept.get("face_model") not in MODEL_NAMES:
        kept.pop("face_model", None)  # a file the checkpoint names is not read: the config's model is used
    return kept


def checkpoint_line(trainer: object) -> str:
    """``f2p fit: checkpoints: last PATH, best (val/loss 0.123) PATH``: what the trainer's ``ModelCheckpoint``
    callbacks wrote ("last" for one without a monitor), or "" when none wrote anything."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    last, best = [], []
    for callback in trainer.checkpoint_callbacks:
        if not isinstance(callback, ModelCheckpoint) or not callback.best_model_path:
            continue
        if callback.monitor is None:
            last.append(callback.best_model_path)
        else:
            score = callback.best_model_score
            value = f" {float(score):.4g}" if score is not None else ""
            best.append(f"best ({callback.monitor}{value}) {callback.best_model_path}")
        if callback.last_model_path:
            last.append(callback.last_model_path)
    parts = [f"last {path}" for path in dict.fromkeys(last)] + best
    return f"f2p fit: checkpoints: {', '.join(parts)}" if parts else ""


def _quiet_wandb(loggers: list) -> None:
    """W&B loggers without the warnings wandb prints on every run: ``anonymous`` (Lightning passes it, as None,
    and wandb warns that the setting is deprecated whenever it is passed) and a missing git root (wandb looks for
    the repository from the save folder before creating it)."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        init = getattr(logger, "_wandb_init", None) if isinstance(logger, WandbLogger) else None
        if init is None:
            continue
        if init.get("anonymous") is None:
            init.pop("anonymous", None)
        if init.get("dir"):
            Path(init["dir"]).mkdir(parents=True, exist_ok=True)


class _DropTip(logging.Filter):
    """Drops Lightning's advertisement for LitLogger, logged on every run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in str(record.msg)


def run_lightning(args: Sequence[str]) -> object:
    """Run LightningCLI with f2p's hooks on ``args`` (starting with fit/validate/test/predict); return the CLI
    object."""
    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    from f2p.systems.config_callback import LoggerSaveConfigCallback

    logging.basicConfig(level=logging.INFO, format="%(message)s")  # f2p's lines: downloads, photos ok
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    tip_logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropTip) for f in tip_logger.filters):
        tip_logger.addFilter(_DropTip())
    cli_class = type("F2PCLI", (F2PHooks, LightningCLI), {})
    return cli_class(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=LoggerSaveConfigCallback,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": PROG},
        args=list(args),
        auto_configure_optimizers=False,
    )


def _lightning_exit_code(command: str, argv: list[str]) -> int:
    """Run a Lightning subcommand; its exit code is the system's ``exit_code`` where it has one (the fitting
    system: 1 when a photo failed), 0 otherwise. A checkpoint that cannot be loaded, or a command that needs one
    and has none, is one line and exit 2."""
    try:
        cli = run_lightning(argv)
    except (pickle.UnpicklingError, EOFError) as error:
        checkpoint = next((a.split("=", 1)[1] for a in argv if a.startswith("--ckpt_path=")),
                          next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--ckpt_path"), "checkpoint"))
        detail = " ".join(str(error).split())[:200]
        print(f"f2p {command}: {checkpoint}: not a checkpoint f2p can load ({detail})", file=sys.stderr)
        return 2
    except (CommandLineError, PathError) as error:
        print(f"f2p {command}: {error}", file=sys.stderr)
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
