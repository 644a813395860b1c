"""Measured cost, below the techniques that spend it: the measurement core (measure.py: one
process, interleaved rounds, medians), the machine a number was measured on (machine.py), and
the per-layer latency model — layer files (graphs.py, spec.py), their sessions
(sessions.py), the cached, calibrated table (table.py) and channel-count steps
(channel_steps.py) — that pruning's round_to='auto', mixed precision's latency cost and the
architecture search read."""
