"""The model registry: versions, aliases, loading, promotion, rollback and evaluation."""
