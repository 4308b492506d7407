"""Recipe schema and loader (loaded on first use: `import toolkit.config.tasks` stays light)."""

__all__ = ["load_recipe", "parse_overrides", "recipe_to_yaml"]


def __getattr__(name):
    if name in __all__:
        from toolkit.config import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'toolkit.config' has no attribute {name!r}")
