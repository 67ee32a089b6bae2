"""csim: an experiment runner for sentence-embedding research (SimCSE and Sentence-BERT ablations)."""

__version__ = "0.1.0"
