"""Worked examples — not library API. The library, benchmarks and tests never import them
(tests of the examples themselves excepted); `slimkit demo` runs them."""
