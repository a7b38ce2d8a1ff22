"""Training machinery: optimisers, learning-rate schedules and gradient clipping
(:mod:`qdaed.train.optim`), batching, the training loop and the schedules of docs/method/schedules.md."""
