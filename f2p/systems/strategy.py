"""A DDP strategy for per-photo fitting: processes without a DistributedDataParallel wrapper."""

from __future__ import annotations

from lightning.pytorch.strategies import DDPStrategy


class IndependentDDPStrategy(DDPStrategy):
    """Distributed processes whose models share nothing: every rank optimises the parameters of its own photos,
    so there are no gradients to synchronise and the module is not wrapped in DistributedDataParallel (which
    refuses modules without trainable weights). Collectives (barriers, gathers) work as in DDP."""

    def configure_ddp(self) -> None:
        """Keep the LightningModule unwrapped."""
