"""Code benchmarks: problems, answer extraction, a sandbox, and grading with pass@k."""
