"""How many CPU threads PyTorch uses, chosen once per command before any parallel work.

More intra-op threads than free cores slow PyTorch's many small operations down badly (a fit on a 2-core machine
with other work running took 172 s per photo with PyTorch's default of one thread per core, 27 s with one thread).
The policy, in order:

1. ``--threads N`` (N >= 1) wins;
2. else a valid ``OMP_NUM_THREADS`` (the variable PyTorch itself reads);
3. else the cores this process may run on (``os.sched_getaffinity``, not the machine's count) minus the machine's
   load (1-minute average, ``os.getloadavg``), rounded, at least 1: when other work already fills the cores, 1.

Inter-op threads (parallel independent operators, which f2p's sequential fits do not use) are always 1.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass

THREADS_HELP = ("PyTorch CPU threads (default 0: automatic, from the usable cores and the machine's load; "
                "an OMP_NUM_THREADS setting is respected)")
log = logging.getLogger("f2p")


@dataclass(frozen=True)
class ThreadChoice:
    """Intra-op thread count and why it was chosen (one line for the log)."""

    threads: int
    reason: str


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity; the machine's count where affinity is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _omp_threads() -> int | None:
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def choose_threads(requested: int | None) -> ThreadChoice:
    """The intra-op thread count for ``requested`` (``--threads``; None or 0: automatic), with the reason."""
    if requested:
        return ThreadChoice(requested, f"--threads {requested}")
    omp = _omp_threads()
    if omp is not None:
        return ThreadChoice(omp, f"OMP_NUM_THREADS={omp}")
    cores = usable_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on this system
        return ThreadChoice(cores, f"{cores} usable cores, machine load unknown")
    free = max(0.0, cores - load)
    threads = max(1, min(cores, round(free)))
    return ThreadChoice(threads, f"{cores} usable cores, machine load {load:.1f}: about {free:.1f} free")


def apply_threads(threads: int) -> None:
    """Set PyTorch's intra-op threads to ``threads`` and its inter-op threads to 1.

    The inter-op count can be set only once per process, before inter-op work starts; where it is already fixed
    (a second command in the same process) it is left as it is.
    """
    import torch

    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != 1:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or inter-op work has started: keep it
            pass


def thread_count(text: str) -> int:
    """argparse type of ``--threads``: an integer >= 0 (0: automatic)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of threads >= 0 (0: automatic)")
    return value


def set_threads(requested: int | None) -> ThreadChoice:
    """Choose (``choose_threads``), apply (``apply_threads``) and log the thread count; returns the choice."""
    choice = choose_threads(requested)
    apply_threads(choice.threads)
    log.info("threads: %d (%s), 1 inter-op", choice.threads, choice.reason)
    return choice
