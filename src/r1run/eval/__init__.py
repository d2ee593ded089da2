"""Evaluations of what a model writes: the Flappy Bird test (prompt, extraction, a headless harness, the scorer)."""
