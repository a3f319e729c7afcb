"""streamfn: real-time ML inference over a Redis Stream, as serverless-style functions."""

__version__ = "0.1.0"
