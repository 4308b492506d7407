"""Recipe schema and loader."""

from toolkit.config.loader import load_recipe, parse_overrides, recipe_to_yaml

__all__ = ["load_recipe", "parse_overrides", "recipe_to_yaml"]
