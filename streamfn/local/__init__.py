"""`streamfn up` and its parts: the pipeline as child processes on this machine."""
