"""Learning.

Corpus training of supervised networks, the training loops shared with scene-adaptive
training, checkpoints.
"""
