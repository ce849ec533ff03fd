"""Quality of a result.

Metrics, assessment of a fused image against a reference, reports, self-validation
one scale down.
"""
