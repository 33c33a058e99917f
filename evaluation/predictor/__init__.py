"""The learned robustness predictor: genotype graph features, its inputs and estimator."""
