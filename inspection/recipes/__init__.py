"""Recipes (products): each names its golden image, the regions to ignore and how to align."""

from inspection.recipes.model import AlignSettings, Golden, GoldenBook, Recipe, RegionMask, StaticGoldenBook

__all__ = ["AlignSettings", "Golden", "GoldenBook", "Recipe", "RegionMask", "StaticGoldenBook"]
