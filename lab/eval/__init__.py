"""Evaluation: reconstruction and video metrics, the benchmark harness."""
