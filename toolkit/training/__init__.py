"""The trainer and its callbacks."""
