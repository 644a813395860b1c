from slimkit.bench.measure import BenchResult, Candidate, benchmark

__all__ = ["BenchResult", "Candidate", "benchmark"]
