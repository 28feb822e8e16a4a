"""Scoring: the Scorer protocol, the models in memory, single, batch and stream scoring."""
