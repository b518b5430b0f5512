"""The metric engine: per-image counting kernel, accumulators, co-occurrence, assignment, inputs, reports."""
