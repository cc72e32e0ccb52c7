"""What a generation costs in credits, from the settings: size tiers, per-model prices, steps and image-to-image.

One image's price is its tier's credits (or the model's own price for that tier), times the steps factor for each
step above the included ones, times the image-to-image factor; rounded up to whole credits, so a factor never makes
a paid image free. A request costs ``count`` times that. The arithmetic is decimal: ``2 * 1.1`` is 2.2 (3 credits),
never 2.2000000000000002 rounded differently on another day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal

from rupali.config import Settings, parsed_model_prices, parsed_size_tiers


@dataclass(frozen=True)
class SizeTier:
    """Images up to ``most_pixels`` (None: any size) cost ``credits`` each."""

    most_pixels: int | None
    credits: int


@dataclass(frozen=True)
class Pricing:
    tiers: tuple[SizeTier, ...]
    model_prices: dict[str, tuple[int, ...]] = field(default_factory=dict)  # model key -> credits per tier
    steps_included: int = 30
    steps_factor: Decimal = Decimal(0)
    img2img_factor: Decimal = Decimal(1)

    @classmethod
    def from_settings(cls, settings: Settings) -> Pricing:
        tiers = tuple(SizeTier(pixels, credits) for pixels, credits in parsed_size_tiers(settings.credits_size_tiers))
        return cls(tiers=tiers, model_prices=parsed_model_prices(settings.credits_model_prices, len(tiers)),
                   steps_included=settings.credits_steps_included,
                   # Through str: the decimal the operator wrote, not the binary float nearest to it.
                   steps_factor=Decimal(str(settings.credits_steps_factor)),
                   img2img_factor=Decimal(str(settings.credits_img2img_factor)))

    def tier(self, width: int, height: int) -> int:
        """Index of the size tier an image of ``width`` by ``height`` falls in."""
        pixels = max(width, 0) * max(height, 0)
        for index, tier in enumerate(self.tiers):
            if tier.most_pixels is None or pixels <= tier.most_pixels:
                return index
        return len(self.tiers) - 1  # unreachable with parsed tiers (the last one takes any size)

    def base(self, model_key: str, width: int, height: int) -> int:
        """Credits per image before the steps and image-to-image factors."""
        index = self.tier(width, height)
        own = self.model_prices.get(model_key)
        if own is not None:
            return own[0] if len(own) == 1 else own[index]
        return self.tiers[index].credits

    def per_image(self, *, model_key: str, width: int, height: int, steps: int, image_to_image: bool = False) -> int:
        base = self.base(model_key, width, height)
        if base == 0:
            return 0
        price = Decimal(base) * (1 + self.steps_factor * max(0, steps - self.steps_included))
        if image_to_image:
            price *= self.img2img_factor
        return int(price.to_integral_value(rounding=ROUND_CEILING))

    def quote(self, *, model_key: str, width: int, height: int, steps: int, count: int,
              image_to_image: bool = False) -> int:
        """Credits a request for ``count`` images costs."""
        return self.per_image(model_key=model_key, width=width, height=height, steps=steps,
                              image_to_image=image_to_image) * max(count, 0)
