"""Evaluation: benchmark datasets (MBXP, HumanEval-X, MultiPL-E) read into problems."""
