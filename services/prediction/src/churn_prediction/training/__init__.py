"""Training: training sets, the two model families, calibration, evaluation, model cards."""
