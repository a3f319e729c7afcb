"""The sink: the bucket, its layout, the row formats and the write-once steps."""
