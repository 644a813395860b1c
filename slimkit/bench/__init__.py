from slimkit.bench.machine import environment, machine_line
from slimkit.bench.measure import BenchResult, Candidate, benchmark

__all__ = ["BenchResult", "Candidate", "benchmark", "environment", "machine_line"]
