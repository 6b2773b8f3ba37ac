"""Settings of the small checkpoint series the tests train (seconds on 2 cores)."""

SMALL_SERIES = dict(
    steps=40, num_checkpoints=4, vocab_size=600, hidden_size=64, layers=2, heads=2, seq_len=64, batch_size=8, lr=3e-3
)
