"""Evaluation: benchmark datasets (MBXP, HumanEval-X, MultiPL-E, HumanEval) read into
problems, pass@k, the results table from execution outcomes, and its reports."""
