"""Training data at scale: a compact index of labelled files decoded lazily in DataLoader workers
(:mod:`facevox.datasets.index`), and tar shards in webdataset layout with a deterministic,
resumable reader (:mod:`facevox.datasets.shards`, :mod:`facevox.datasets.stream`)."""
