"""Training on the user's own data (torch lives here): classify, detect, segment.

See ``docs/design/learning.md`` for the contract between training, evaluation and analyze.
"""
