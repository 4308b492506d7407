"""Backbone registry, builders and the offline weights store."""
