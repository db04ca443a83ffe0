"""Parameters of the built-in backbones and the smallest images they accept (torch-free).

Each block of Conv4 and ResNet-12 ends in a 2x2 max-pool that floors the side, so ``b`` blocks
need images of at least ``2**b`` pixels a side (:meth:`min_image_size`). ``validate`` calls
:func:`memcomp.backbones.backbone_input_problem` to refuse a backbone/image-size pair before any
data is loaded or model built.
"""

from __future__ import annotations

from pydantic import Field

from memcomp.registry import Params


class BackboneParams(Params):
    """Options of a backbone; :meth:`input_problem` says whether it accepts an input shape."""

    def min_image_size(self) -> int:
        """The smallest image side accepted (1: any)."""
        return 1

    def input_problem(self, in_shape: tuple[int, int, int]) -> str | None:
        """Why images of ``in_shape`` (C, H, W) cannot go through this backbone, or None."""
        side = self.min_image_size()
        if min(in_shape[1:]) < side:
            return (
                f"images {in_shape[1]}x{in_shape[2]} are too small: this backbone's pooling "
                f"needs at least {side}x{side}; raise the dataset's image_size or use fewer blocks"
            )
        return None


class Conv4Params(BackboneParams):
    hidden: int = Field(32, ge=1, description="filters per conv layer (paper: 32 or 64)")
    blocks: int = Field(4, ge=1, le=8, description="number of conv blocks")

    def min_image_size(self) -> int:
        return 2**self.blocks


class ResNet12Params(BackboneParams):
    widths: list[int] = Field(
        default_factory=lambda: [64, 160, 320, 640],
        min_length=1,
        description="output channels of each residual block (standard: 64,160,320,640)",
    )
    avg_pool: bool = Field(True, description="global average pool (feat_dim = last width)")
    negative_slope: float = Field(0.1, ge=0.0, description="LeakyReLU slope")

    def min_image_size(self) -> int:
        return 2 ** len(self.widths)
